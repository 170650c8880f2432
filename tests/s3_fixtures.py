"""S3 for tests: moto's real S3 server on 127.0.0.1 (a free port), a fresh bucket per test.

A pytest plugin (``pytest_plugins = ["tests.s3_fixtures"]`` in the top-level conftest, or
``-p tests.s3_fixtures``). The server runs in a thread of the test process for the whole
session; each test gets its own bucket, fake credentials in the environment, and no path
to real AWS (no profile files, no instance metadata lookups).
"""

from __future__ import annotations

import logging
import secrets
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from bdr.config import RemoteSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TEST_ACCESS_KEY = "AKIABDRTESTKEY000000"
TEST_SECRET_KEY = "bdr-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class MotoServer:
    """The running server: where it listens and how to switch its authentication on."""

    endpoint: str

    def client(self) -> S3Client:
        """A plain boto3 client, to look at (or tamper with) the bucket behind bdr's back."""
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=TEST_ACCESS_KEY, aws_secret_access_key=TEST_SECRET_KEY)

    def require_auth(self, after_requests: float) -> None:
        """Check signatures and keys after ``after_requests`` more requests (``inf``: never)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", data=str(after_requests).encode(),
                                         method="POST", headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


@dataclass(frozen=True, slots=True)
class S3Bucket:
    """A fresh, empty bucket on the moto server."""

    name: str
    server: MotoServer
    client: S3Client

    def url(self, prefix: str = "repo") -> str:
        return f"s3://{self.name}/{prefix}" if prefix else f"s3://{self.name}"

    def settings(self, **changes: Any) -> RemoteSettings:
        """Remote settings pointing at this bucket, with the smallest part size S3 allows (5 MiB)."""
        values: dict[str, Any] = {"url": self.url(), "endpoint_url": self.server.endpoint, "region": REGION,
                                  "part_size_mib": 5, "max_attempts": 2}
        values.update(changes)
        return RemoteSettings(**values)

    def pending_uploads(self) -> list[str]:
        """Keys of multipart uploads started and neither completed nor aborted (orphaned parts)."""
        return [u["Key"] for u in self.client.list_multipart_uploads(Bucket=self.name).get("Uploads", [])]

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's S3 server, in a thread, on 127.0.0.1 and a port the OS picked."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoServer(endpoint=f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials in the environment and nothing that could reach real AWS."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))


@pytest.fixture
def s3_bucket(moto_server: MotoServer, aws_env: None) -> Iterator[S3Bucket]:
    """A new empty bucket; emptied and removed after the test so the server's memory stays small."""
    client = moto_server.client()
    name = f"bdr-test-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name)
    yield S3Bucket(name, moto_server, client)
    for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
        client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=name)
    for page in pages:
        objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if objects:
            client.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})  # type: ignore[typeddict-item]
    client.delete_bucket(Bucket=name)
