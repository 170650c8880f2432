"""What an operator sees when the off-site repository is out of reach: one line naming the cause and the fix.

Needs ``tests.s3_fixtures`` as a pytest plugin (top-level conftest, or ``-p tests.s3_fixtures``).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from click.testing import CliRunner, Result

from bdr.cli.main import cli
from bdr.config import RemoteSettings
from bdr.errors import (
    BackupNotFound,
    ConfigError,
    ObjectArchived,
    RemoteAccessDenied,
    RemoteBucketNotFound,
    ServiceUnavailable,
)
from bdr.repository import Repository, extract_set
from bdr.repository.manifest import MANIFEST_NAME
from tests.s3_fixtures import REGION, TEST_SECRET_KEY, MotoServer, S3Bucket

pytestmark = pytest.mark.s3


def s3_repo(bucket: S3Bucket, **changes: object) -> Repository:
    return Repository.open(bucket.url(), settings=bucket.settings(**changes))


def small_set(repo: Repository, tmp_path: Path) -> str:
    source = tmp_path / "dump.rdb"
    source.write_bytes(b"REDIS0011" + bytes(range(256)) * 64)
    with repo.lock("backup"), repo.new_set("redis", "production", "rdb") as writer:
        writer.add_file(source, "dump.rdb")
        writer.commit()
    return writer.id


def bdr(*args: str, config: Path) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def write_config(tmp_path: Path, settings: RemoteSettings) -> Path:
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump({"repository": str(tmp_path / "local"), "remote": {
        "url": settings.url, "endpoint_url": settings.endpoint_url, "region": settings.region,
        "part_size_mib": settings.part_size_mib, "max_attempts": settings.max_attempts,
    }}))
    return path


@pytest.fixture
def auth_required(moto_server: MotoServer) -> Iterator[MotoServer]:
    """The server checks keys and signatures for the duration of the test."""
    moto_server.require_auth(0)
    try:
        yield moto_server
    finally:
        moto_server.require_auth(float("inf"))


def test_unknown_access_key_names_the_bucket_and_the_fix(s3_bucket: S3Bucket, auth_required: MotoServer) -> None:
    repo = s3_repo(s3_bucket)
    with pytest.raises(RemoteAccessDenied) as raised:
        repo.sets()
    message = str(raised.value)
    assert "InvalidAccessKeyId" in message and s3_bucket.name in message
    assert "AWS_PROFILE" in message and "AWS_ACCESS_KEY_ID" in message
    assert raised.value.exit_code == 7
    with pytest.raises(RemoteAccessDenied), repo.lock("backup"):
        pass


def test_wrong_secret_is_the_same_clear_error_and_never_shows_the_secret(
    s3_bucket: S3Bucket, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    iam = boto3.client("iam", endpoint_url=moto_server.endpoint, region_name=REGION)
    iam.create_user(UserName="backup")
    key = iam.create_access_key(UserName="backup")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-" + key["SecretAccessKey"])
    moto_server.require_auth(0)
    try:
        with pytest.raises(RemoteAccessDenied) as raised:
            s3_repo(s3_bucket).sets()
    finally:
        moto_server.require_auth(float("inf"))
    assert "SignatureDoesNotMatch" in str(raised.value)
    assert key["SecretAccessKey"] not in str(raised.value) and TEST_SECRET_KEY not in str(raised.value)


def test_no_credentials_at_all(s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(RemoteAccessDenied, match="no usable credentials"):
        s3_repo(s3_bucket).sets()


def test_unknown_profile_is_a_configuration_error(s3_bucket: S3Bucket) -> None:
    with pytest.raises(ConfigError, match="'offsite' not found"):
        s3_repo(s3_bucket, profile="offsite")


def test_missing_bucket(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    repo = Repository.open(f"s3://{s3_bucket.name}-gone/repo", settings=s3_bucket.settings())
    with pytest.raises(RemoteBucketNotFound, match=f"aws s3 mb s3://{s3_bucket.name}-gone"):
        repo.sets()
    with pytest.raises(RemoteBucketNotFound), repo.lock("backup"):
        pass

    config = write_config(tmp_path, s3_bucket.settings(url=f"s3://{s3_bucket.name}-gone/repo"))
    result = bdr("list", "--remote", f"s3://{s3_bucket.name}-gone/repo", config=config)
    assert result.exit_code == 7
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("bdr: error: bucket ") and "does not exist" in line


def test_unreachable_endpoint(aws_env: None) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    repo = Repository.open("s3://backups/repo", settings=RemoteSettings(
        endpoint_url=f"http://127.0.0.1:{port}", region=REGION, max_attempts=1))
    with pytest.raises(ServiceUnavailable, match=f"cannot reach S3 at http://127.0.0.1:{port}"):
        repo.sets()


def test_missing_object_is_not_found(s3_bucket: S3Bucket) -> None:
    storage = s3_repo(s3_bucket).storage
    with pytest.raises(BackupNotFound):
        storage.open_read("redis/nothing/dump.rdb")
    assert storage.exists("redis/nothing/dump.rdb") is False


def test_archived_object_explains_the_thaw_and_thaw_makes_it_readable(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    repo = s3_repo(s3_bucket)
    set_id = small_set(repo, tmp_path)
    key = f"repo/redis/{set_id}/dump.rdb"
    # what the lifecycle rule does after archive_after_days
    s3_bucket.client.copy_object(Bucket=s3_bucket.name, Key=key, CopySource={"Bucket": s3_bucket.name, "Key": key},
                                 StorageClass="GLACIER", MetadataDirective="COPY")

    [backup] = repo.sets()  # the manifest stays readable: the set is still listed
    with pytest.raises(ObjectArchived) as raised:
        extract_set(repo, backup, tmp_path / "out")
    message = str(raised.value)
    assert "GLACIER" in message
    assert f"bdr s3 thaw {set_id} --remote s3://{s3_bucket.name}/repo" in message
    assert f"aws s3api restore-object --bucket {s3_bucket.name} --key {key}" in message
    with pytest.raises(ObjectArchived):
        repo.check_objects(backup)

    config = write_config(tmp_path, s3_bucket.settings())
    first = bdr("s3", "thaw", set_id, "--json", config=config)
    assert first.exit_code == 0, first.output
    states = {Path(o["key"]).name: o["state"] for o in json.loads(first.stdout)["objects"]}
    assert states == {"dump.rdb": "requested", MANIFEST_NAME: "readable"}

    again = json.loads(bdr("s3", "thaw", set_id, "--json", config=config).stdout)
    dump = next(o for o in again["objects"] if o["key"].endswith("dump.rdb"))
    assert dump["state"] == "restored" and dump["expiry"]  # moto restores at once
    assert again["ready"] is True
    assert repo.check_objects(backup) == []
    extract_set(repo, backup, tmp_path / "out")
    assert (tmp_path / "out" / "dump.rdb").read_bytes() == (tmp_path / "dump.rdb").read_bytes()
