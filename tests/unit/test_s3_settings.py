"""The ``remote:`` section of bdr.yaml, s3:// urls, and the encrypted-by-default rule (no server needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bdr.config import RemoteSettings, parse_config
from bdr.errors import ConfigError, PlaintextOffsite, UsageError
from bdr.storage import open_storage
from bdr.storage.s3 import S3Storage, parse_url, require_encryption


class Cipher:
    key_id = "k1"


def test_defaults() -> None:
    remote = parse_config({}).remote
    assert remote.archive_after_days == 90 and remote.archive_class == "GLACIER"
    assert remote.expire_after_days == 365 and remote.part_size_mib == 16
    assert remote.concurrency == 4
    assert remote.allow_plaintext is False


def test_valid_section_parses() -> None:
    remote = parse_config({"remote": {"url": "s3://b/p", "sse": "aws:kms", "kms_key_id": "alias/bdr",
                                      "storage_class": "STANDARD_IA", "archive_after_days": None}}).remote
    assert remote.sse == "aws:kms" and remote.archive_after_days is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"url": "https://bucket/p"}, "must start with s3://"),
        ({"sse": "aes"}, "remote.sse must be one of AES256, aws:kms"),
        ({"kms_key_id": "alias/x"}, "needs remote.sse: aws:kms"),
        ({"storage_class": "COLD"}, "remote.storage_class"),
        ({"archive_class": "STANDARD"}, "remote.archive_class"),
        ({"archive_after_days": 400}, "expire_after_days must be greater"),
        ({"expire_after_days": -1}, "whole number of days"),
        ({"part_size_mib": 4}, "between 5 and 5120"),
        ({"concurrency": 0}, "remote.concurrency must be between 1 and 32, got 0"),
        ({"concurrency": 33}, "remote.concurrency must be between 1 and 32, got 33"),
        ({"max_attempts": 0}, "at least 1"),
        ({"access_key": "AKIA..."}, "unknown key(s) in remote: access_key"),
    ],
)
def test_invalid_section_is_a_config_error(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"/etc/bdr/bdr\.yaml") as raised:
        parse_config({"remote": section}, path=Path("/etc/bdr/bdr.yaml"))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [("s3://bkt", "bkt", ""), ("s3://bkt/", "bkt", ""), ("s3://bkt/a/b/", "bkt", "a/b")],
)
def test_parse_url(url: str, bucket: str, prefix: str) -> None:
    assert parse_url(url) == (bucket, prefix)


@pytest.mark.parametrize("url", ["s3:///p", "s3://key:secret@bkt/p", "s3://bkt/a/../b", "s3://bkt/p?x=1"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(UsageError, match="invalid S3 url"):
        parse_url(url)


def test_open_storage_picks_s3_with_settings_and_keyword_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_PROFILE", raising=False)  # no request is made: only the client is built
    settings = RemoteSettings(region="eu-west-1", endpoint_url="http://127.0.0.1:9", part_size_mib=8)
    storage = open_storage("s3://bkt/site", settings=settings, part_size_mib=32)
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix, storage.url) == ("bkt", "site", "s3://bkt/site")
    assert storage.part_size == 32 * 1024 * 1024
    assert storage.free_space() is None and storage.location == "s3"
    with pytest.raises(UsageError, match="unknown S3 option"):
        open_storage("s3://bkt/site", aws_secret_access_key="x")


def test_retries_and_timeouts_are_bounded_and_adjustable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings = RemoteSettings(endpoint_url="http://127.0.0.1:9", max_attempts=3)
    storage = open_storage("s3://bkt/site", settings=settings)
    assert isinstance(storage, S3Storage)
    config: Any = storage.client.meta.config  # botocore's stubs do not list its fields
    assert config.retries == {"total_max_attempts": 3, "mode": "standard"}  # remote.max_attempts counts them all
    assert (config.connect_timeout, config.read_timeout) == (10.0, 60.0)
    assert storage.transfer_pauses == (1.0, 2.0, 4.0, 8.0)

    quick = open_storage("s3://bkt/site", settings=settings, read_timeout=2, connect_timeout=1,
                         transfer_pauses=(0.1,))
    assert isinstance(quick, S3Storage)
    quick_config: Any = quick.client.meta.config
    assert (quick_config.connect_timeout, quick_config.read_timeout) == (1, 2)
    assert quick.transfer_pauses == (0.1,)
    none = open_storage("s3://bkt/site", settings=settings, transfer_pauses=())
    assert isinstance(none, S3Storage) and none.abort_pauses == ()


def test_which_failures_are_worth_another_try() -> None:
    import botocore.exceptions as boto

    from bdr.storage.retry import is_transient, network_reason

    refused = boto.EndpointConnectionError(endpoint_url="http://127.0.0.1:9",
                                           error=ConnectionRefusedError(111, "Connection refused"))
    assert is_transient(refused) and network_reason(refused) == "connection refused"
    timeout = boto.ReadTimeoutError(endpoint_url="http://127.0.0.1:9", error="timed out")
    assert is_transient(timeout) and network_reason(timeout) == "no answer in time (read timeout)"

    def client_error(code: str, status: int) -> boto.ClientError:
        response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return boto.ClientError(response, "UploadPart")

    assert is_transient(client_error("InternalError", 500)) and is_transient(client_error("SlowDown", 503))
    assert not is_transient(client_error("AccessDenied", 403))
    assert not is_transient(client_error("NoSuchBucket", 404))
    assert not is_transient(boto.FlexibleChecksumError(error_msg="bad"))


def test_plaintext_offsite_needs_an_explicit_yes() -> None:
    with pytest.raises(PlaintextOffsite, match="--allow-plaintext"):
        require_encryption(RemoteSettings(), None, url="s3://bkt/p")
    require_encryption(RemoteSettings(), None, allow_plaintext=True)
    require_encryption(RemoteSettings(allow_plaintext=True), None)
    require_encryption(RemoteSettings(), Cipher())  # type: ignore[arg-type]
