"""The network between bdr and S3 drops mid-transfer: a short drop is ridden out, a long one is exit 7 and clean.

A real TCP proxy on 127.0.0.1 (``tests.s3_fixtures.FlakyProxy``) stands between bdr and
moto's S3 server; a test cuts it (every connection reset, connections refused, or a stall
the client times out on) at a byte count, so the cut lands inside a part or a download.

Needs ``tests.s3_fixtures`` as a pytest plugin (top-level conftest, or ``-p tests.s3_fixtures``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bdr.errors import ServiceUnavailable
from bdr.repository import Repository, extract_set
from bdr.repository.manifest import MANIFEST_NAME
from bdr.runtime.process import RedisProcess
from bdr.storage.s3 import MIB, S3Storage
from tests.s3_fixtures import FlakyProxy, S3Bucket

pytestmark = pytest.mark.s3

PART = 5 * MIB
BDR = [sys.executable, "-m", "bdr.cli.main"]


def through(proxy: FlakyProxy, bucket: S3Bucket, **options: Any) -> Repository:
    """The repository in ``bucket``, reached through ``proxy``."""
    return Repository.open(bucket.url(), settings=bucket.settings(endpoint_url=proxy.endpoint), **options)


def big_file(path: Path, size: int = 2 * PART + 2 * MIB) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def make_set(repo: Repository, source: Path) -> str:
    with repo.lock("backup"), repo.new_set("redis", "production", "rdb") as writer:
        writer.add_file(source, "dump.rdb")
        writer.commit()
    return writer.id


def digest_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- a short drop is ridden out -------------------------------------------------------------------------------

QUICK_TIMEOUTS = {"connect_timeout": 1.0, "read_timeout": 1.0}
"""1 s timeouts, so a stall is noticed soon (urllib3 sends a request body under the connect timeout)."""
DROPS = [("reset", 2.0), ("refuse", 3.0), ("stall", 5.0)]
"""How the network breaks and for how long: each outlasts botocore's own two tries (with a 1 s read timeout)."""


@pytest.mark.parametrize(("mode", "seconds"), DROPS, ids=[m for m, _ in DROPS])
def test_a_short_drop_mid_upload_is_ridden_out(s3_bucket: S3Bucket, flaky_proxy: FlakyProxy, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture, mode: str, seconds: float) -> None:
    caplog.set_level(logging.WARNING, "bdr")
    source = big_file(tmp_path / "dump.rdb")
    repo = through(flaky_proxy, s3_bucket, **QUICK_TIMEOUTS)
    flaky_proxy.cut_after(up=PART + 2 * MIB, mode=mode, seconds=seconds)  # inside the second part

    set_id = make_set(repo, source)

    assert flaky_proxy.cuts == 1
    assert "trying again" in caplog.text
    [backup] = repo.sets()
    assert backup.id == set_id
    assert len(backup.manifest.object("dump.rdb").parts) == 3
    assert repo.check_objects(backup) == []  # complete and checksummed
    assert s3_bucket.pending_uploads() == []
    extract_set(repo, backup, tmp_path / "out")
    assert digest_of(tmp_path / "out" / "dump.rdb") == digest_of(source)


@pytest.mark.parametrize(("mode", "seconds"), DROPS, ids=[m for m, _ in DROPS])
def test_a_short_drop_mid_download_resumes_where_it_stopped(s3_bucket: S3Bucket, flaky_proxy: FlakyProxy,
                                                            tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                            mode: str, seconds: float) -> None:
    caplog.set_level(logging.WARNING, "bdr")
    source = big_file(tmp_path / "dump.rdb")
    repo = through(flaky_proxy, s3_bucket, **QUICK_TIMEOUTS)
    set_id = make_set(repo, source)
    backup = repo.get(set_id)
    flaky_proxy.cut_after(down=PART, mode=mode, seconds=seconds)  # a third of the way into the object

    extract_set(repo, backup, tmp_path / "out")

    assert flaky_proxy.cuts == 1
    assert "resuming" in caplog.text
    assert digest_of(tmp_path / "out" / "dump.rdb") == digest_of(source)


# --- a long one is exit 7, and leaves nothing ------------------------------------------------------------------


def test_an_outage_outlasting_the_retries_is_service_unavailable_and_leaves_no_set(
    s3_bucket: S3Bucket, flaky_proxy: FlakyProxy, tmp_path: Path
) -> None:
    """Down for longer than bdr tries the part, back in time for the abort: nothing stays in the bucket."""
    repo = through(flaky_proxy, s3_bucket, transfer_pauses=(0.1,))  # the part: two tries, 0.1 s apart
    flaky_proxy.cut_after(up=PART + 2 * MIB, mode="refuse", seconds=1.5)  # the abort tries at ~0.25, 0.75, 2.3 s
    with pytest.raises(ServiceUnavailable) as raised:
        make_set(repo, big_file(tmp_path / "dump.rdb"))
    message = raised.value.message
    assert raised.value.exit_code == 7
    assert message.startswith(f"cannot reach S3 at http://127.0.0.1:{flaky_proxy.port}: connection refused "
                              "(upload of redis/")
    assert "gave up after 2 tries" in message and "\n" not in message
    assert s3_bucket.pending_uploads() == []  # the upload was aborted
    assert s3_bucket.keys("repo/") == []  # no manifest, no object, no lock
    assert repo.sets() == []


def test_an_endpoint_that_stays_away_leaves_an_upload_the_sweep_can_abort(
    s3_bucket: S3Bucket, flaky_proxy: FlakyProxy, tmp_path: Path
) -> None:
    repo = through(flaky_proxy, s3_bucket, transfer_pauses=(0.1, 0.1))
    flaky_proxy.cut_after(up=PART + 2 * MIB, mode="refuse")  # until the test restores it
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match=f"cannot reach S3 at http://127.0.0.1:{flaky_proxy.port}"):
        make_set(repo, big_file(tmp_path / "dump.rdb"))
    assert time.monotonic() - started < 30  # bounded: botocore's attempts, bdr's tries, the abort's
    flaky_proxy.restore()

    assert not [k for k in s3_bucket.keys("repo/") if k.endswith(MANIFEST_NAME)]
    assert repo.sets() == []
    [pending] = s3_bucket.pending_uploads()  # the abort could not reach S3 either
    storage = repo.storage
    assert isinstance(storage, S3Storage)
    key = pending.removeprefix("repo/")
    assert storage.stale_uploads(0) == [key]
    # moto dates every upload 2010-11-10 (real S3 gives the start time): a cutoff before that excludes it
    assert storage.stale_uploads(100 * 365 * 86400) == []
    set_prefix = key.rsplit("/", 1)[0]  # what the repository's sweep passes: redis/<set-id>
    assert storage.abort_uploads(set_prefix) == 1
    assert s3_bucket.pending_uploads() == []


# --- uploads left by other runs ------------------------------------------------------------------------------------


def start_upload(bucket: S3Bucket, key: str) -> None:
    upload = bucket.client.create_multipart_upload(Bucket=bucket.name, Key=key)
    bucket.client.upload_part(Bucket=bucket.name, Key=key, UploadId=upload["UploadId"], PartNumber=1,
                              Body=b"x" * 1024)


def test_stale_and_abort_uploads_select_by_set_key_and_repository(s3_bucket: S3Bucket) -> None:
    for key in ("repo/redis/redis-a/dump.rdb", "repo/redis/redis-a/appendonlydir/x.aof",
                "repo/redis/redis-ab/dump.rdb", "repo-old/redis/redis-a/dump.rdb"):
        start_upload(s3_bucket, key)
    storage = Repository.open(s3_bucket.url(), settings=s3_bucket.settings()).storage
    assert isinstance(storage, S3Storage)
    assert storage.stale_uploads() == ["redis/redis-a/appendonlydir/x.aof", "redis/redis-a/dump.rdb",
                                       "redis/redis-ab/dump.rdb"]  # not the other repository's
    assert storage.abort_uploads("redis/redis-ab/dump.rdb") == 1  # one key
    assert storage.abort_uploads("redis/redis-a") == 2  # a set, not the set whose id merely starts alike
    assert storage.abort_uploads("redis/redis-a") == 0
    assert s3_bucket.pending_uploads() == ["repo-old/redis/redis-a/dump.rdb"]


@pytest.mark.parametrize("request_line", [b"POST /", b"PUT /"], ids=["CompleteMultipartUpload", "PutObject"])
def test_an_answer_lost_after_s3_stored_the_object_is_not_a_failure(
    s3_bucket: S3Bucket, flaky_proxy: FlakyProxy, tmp_path: Path, request_line: bytes
) -> None:
    """The connection drops after S3 stored the object: the retry is not a failure and leaves one object.

    moto (like S3 for a while) answers a repeated completion with success; a store that answers
    ``NoSuchUpload`` instead is covered by bdr comparing the object's size and multipart ETag
    (:meth:`S3Sink._landed`, checked against moto below)."""
    repo = through(flaky_proxy, s3_bucket)
    storage = repo.storage
    assert isinstance(storage, S3Storage)
    data = os.urandom(2 * PART + 100 if request_line == b"POST /" else 1000)
    sink = storage.open_write("redis/x/dump.rdb")
    sink.write(data)
    flaky_proxy.lose_answer_to(request_line)  # the next POST is the completion; the next PUT the PutObject
    written = sink.commit()
    assert flaky_proxy.answers_lost == 1
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    body = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key="repo/redis/x/dump.rdb")["Body"].read()
    assert body == data
    assert s3_bucket.pending_uploads() == []


def test_the_completed_uploads_etag_is_the_one_bdr_expects(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    """What recognises a completion whose answer was lost: the multipart ETag computed from the parts."""
    storage = Repository.open(s3_bucket.url(), settings=s3_bucket.settings()).storage
    assert isinstance(storage, S3Storage)
    sink = storage.open_write("redis/x/dump.rdb")
    sink.write(os.urandom(2 * PART + 100))
    sink.commit()
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="repo/redis/x/dump.rdb")
    assert head["ETag"] == sink._expected_etag()
    assert sink._landed()


# --- the real CLI: a drop during `bdr backup redis --remote`, and a run killed mid-upload ---------------------------


def fill_redis(server: RedisProcess, megabytes: int) -> None:
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(megabytes * 1024):
        pipe.set(f"blob:{i}", os.urandom(1024))
    pipe.execute()


def cli_config(tmp_path: Path, server: RedisProcess, bucket: S3Bucket, endpoint: str) -> Path:
    instance = server.instance
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump({
        "repository": str(tmp_path / "local"),
        "redis": {"production": {"url": instance.url, "data_dir": instance.data_dir,
                                 "start_args": list(instance.start_args), "password_env": None}},
        "remote": {"url": bucket.url("prod"), "endpoint_url": endpoint, "region": "us-east-1", "part_size_mib": 5,
                   "max_attempts": 2, "allow_plaintext": True},
    }))
    return path


def bdr(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BDR, "--config", str(config), *args], capture_output=True, text=True, timeout=300,
                          check=False, env=dict(os.environ), stdin=subprocess.DEVNULL)


def test_cli_backup_rides_out_a_drop_mid_upload(redis_rdb: RedisProcess, s3_bucket: S3Bucket,
                                                flaky_proxy: FlakyProxy, tmp_path: Path) -> None:
    fill_redis(redis_rdb, 16)
    config = cli_config(tmp_path, redis_rdb, s3_bucket, flaky_proxy.endpoint)
    remote = s3_bucket.url("prod")
    flaky_proxy.cut_after(up=PART + 2 * MIB, mode="refuse", seconds=3)
    made = bdr(config, "backup", "redis", "--remote", remote, "--json")
    assert made.returncode == 0, made.stderr
    assert flaky_proxy.cuts == 1 and "trying again" in made.stderr
    backup_id = json.loads(made.stdout)["id"]
    verified = bdr(config, "verify", backup_id, "--remote", remote)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert s3_bucket.pending_uploads() == []


def test_cli_backup_killed_mid_upload_leaves_nothing_after_the_next_run(
    redis_rdb: RedisProcess, s3_bucket: S3Bucket, flaky_proxy: FlakyProxy, tmp_path: Path
) -> None:
    fill_redis(redis_rdb, 16)
    config = cli_config(tmp_path, redis_rdb, s3_bucket, flaky_proxy.endpoint)
    remote = s3_bucket.url("prod")
    flaky_proxy.cut_after(up=PART + 2 * MIB, mode="stall")  # holds the run inside its second part
    run = subprocess.Popen([*BDR, "--config", str(config), "backup", "redis", "--remote", remote],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (flaky_proxy.mode == "stall" and s3_bucket.pending_uploads()):
            assert run.poll() is None, "the backup ended before it was killed"
            assert time.monotonic() < deadline, "the backup never got into its upload"
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)
        assert run.wait(timeout=30) == -signal.SIGKILL
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    flaky_proxy.restore()
    [orphan] = s3_bucket.pending_uploads()
    killed_set = orphan.split("/")[2]
    assert not [k for k in s3_bucket.keys("prod/") if k.endswith(MANIFEST_NAME)]

    again = bdr(config, "backup", "redis", "--remote", remote, "--json")  # takes the lock: sweeps first

    assert again.returncode == 0, again.stderr
    assert s3_bucket.client.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", []) == []
    assert not [k for k in s3_bucket.keys("prod/") if killed_set in k]
    listed = json.loads(bdr(config, "list", "--remote", remote, "--json").stdout)
    assert [s["id"] for s in listed] == [json.loads(again.stdout)["id"]]
