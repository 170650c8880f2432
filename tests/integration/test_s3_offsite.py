"""The off-site path end to end, as an operator runs it: a real redis-server backed up to S3 (moto) and back.

Needs ``tests.s3_fixtures`` as a pytest plugin (top-level conftest, or ``-p tests.s3_fixtures``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from bdr.cli.main import cli
from bdr.engines.redis.info import digest
from bdr.runtime.process import RedisProcess
from tests.redis_data import load_every_type
from tests.s3_fixtures import S3Bucket

pytestmark = pytest.mark.s3


def write_config(tmp_path: Path, server: RedisProcess, bucket: S3Bucket) -> Path:
    instance = server.instance
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump({
        "repository": str(tmp_path / "local"),
        "redis": {"production": {"url": instance.url, "data_dir": instance.data_dir,
                                 "start_args": list(instance.start_args), "password_env": None}},
        "encryption": {"key_env": "BDR_TEST_NO_KEY", "passphrase_env": "BDR_TEST_NO_PASSPHRASE"},
        "remote": {"url": bucket.url("prod"), "endpoint_url": bucket.server.endpoint, "region": "us-east-1",
                   "part_size_mib": 5},
    }))
    return path


def bdr(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def test_backup_to_s3_list_and_restore_from_it(redis_rdb: RedisProcess, s3_bucket: S3Bucket, tmp_path: Path) -> None:
    config = write_config(tmp_path, redis_rdb, s3_bucket)
    client = redis_rdb.client()
    load_every_type(client)
    expected = digest(client)
    remote = s3_bucket.url("prod")

    made = bdr(config, "backup", "redis", "--remote", remote, "--allow-plaintext", "--json")
    assert made.exit_code == 0, made.output
    backup = json.loads(made.stdout)
    assert backup["location"] == "s3" and backup["repository"] == remote

    listed = json.loads(bdr(config, "list", "--remote", remote, "--json").stdout)
    assert [s["id"] for s in listed] == [backup["id"]]
    assert bdr(config, "list", "--json").stdout.strip() == "[]"  # the local repository is separate

    verified = bdr(config, "verify", backup["id"], "--remote", remote)
    assert verified.exit_code == 0, verified.output

    client.flushall()
    restored = bdr(config, "restore", "redis", "latest", "--remote", remote, "--yes")
    assert restored.exit_code == 0, restored.output
    assert digest(redis_rdb.client()) == expected
    assert s3_bucket.pending_uploads() == []


def test_offsite_backup_without_a_key_is_refused(redis_rdb: RedisProcess, s3_bucket: S3Bucket,
                                                  tmp_path: Path) -> None:
    pytest.importorskip("bdr.crypto")
    config = write_config(tmp_path, redis_rdb, s3_bucket)
    redis_rdb.client().set("session:1", "secret-ish")
    refused = bdr(config, "backup", "redis", "--remote", s3_bucket.url("prod"))
    assert refused.exit_code == 2, refused.stderr
    assert "encrypted" in refused.stderr and "--allow-plaintext" in refused.stderr
    assert s3_bucket.keys() == []  # nothing went out in plaintext
