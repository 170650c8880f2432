"""The off-site repository a drill restores from: the configured S3 bucket, or moto's S3 on 127.0.0.1.

When bdr.yaml names a remote (``remote.url``), the off-site drill uses it, with the
credentials of the usual AWS chain. Otherwise it starts moto's S3 server on a free
loopback port with throw-away credentials (the one stand-in allowed: no cloud is
reachable from CI), or skips with the reason when moto is not installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from collections.abc import Iterator

from bdr.config import Config
from bdr.util.host import free_port

MOTO_ENV = {"AWS_ACCESS_KEY_ID": "AKIABDRDRILL00000000", "AWS_SECRET_ACCESS_KEY": "bdr-drill-secret",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@contextlib.contextmanager
def offsite_repository(config: Config) -> Iterator[tuple[Config, str, str]]:
    """The config to use, the remote url, and what it is (for the evidence)."""
    if config.remote.url:
        yield config, config.remote.url, "configured remote"
        return
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in MOTO_ENV}
    os.environ.update(MOTO_ENV)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        bucket = f"bdr-drill-{secrets.token_hex(4)}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        url = f"s3://{bucket}/offsite"
        remote = dataclasses.replace(config.remote, url=url, endpoint_url=endpoint, region="us-east-1",
                                     part_size_mib=5)
        yield dataclasses.replace(config, remote=remote), url, f"moto S3 server on 127.0.0.1:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
