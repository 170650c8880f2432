"""The sweep removes only bdr's own leftovers: sets whose writing marker proves the writer dead.

A set without a manifest is removed by the next writer holding the lock only when its
``.bdr-writing.json`` names a process that is certainly gone (a dead or reused pid of this
host, another boot, or a marker of another host older than 7 days); anything else is left
alone (and listed as damaged when nothing proves bdr left it). On S3 the pending multipart
uploads of a swept set are aborted. Read markers of dead restores go too. The crash cases
end with a real ``bdr backup`` process killed with SIGKILL mid-copy.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import yaml

from bdr.config import RemoteSettings
from bdr.repository import REMOTE_WRITER_TIMEOUT, WRITING_MARKER, LockInfo, Repository, WriterMarker
from bdr.repository.manifest import MANIFEST_NAME, utcnow
from bdr.runtime.process import RedisProcess
from bdr.storage.s3 import MIB
from bdr.util.host import process_start_time
from tests.backup_sets import leave_crashed_set, leave_read_marker, make_manifest, store_set
from tests.s3_fixtures import S3Bucket

LEFTOVER = "redis-20250101T000000Z-dead00"
BDR = str(Path(sys.executable).parent / "bdr")


@pytest.fixture(params=["local", "s3"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Repository]:
    if request.param == "local":
        yield Repository.open(tmp_path / "repo")
        return
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    yield Repository.open(bucket.url(), settings=bucket.settings())


def sweep(repo: Repository) -> None:
    with repo.lock("backup redis"):  # what the next backup (or prune) does first
        pass


def present(repo: Repository, set_id: str, name: str = "") -> bool:
    prefix = f"redis/{set_id}" + (f"/{name}" if name else "")
    return any(True for _ in repo.storage.list(prefix))


# --- what is swept ---------------------------------------------------------------------------------------


def test_the_leftover_of_a_dead_writer_is_swept(repo: Repository) -> None:
    leave_crashed_set(repo, "redis", LEFTOVER, {"appendonly.aof": b"x" * 100})
    assert repo.sets() == [] and repo.damaged() == []  # neither good nor damaged: unfinished
    assert repo.incomplete() == [LEFTOVER]
    sweep(repo)
    assert not present(repo, LEFTOVER) and repo.incomplete() == []


def test_a_swept_s3_set_loses_its_pending_multipart_upload(s3_bucket: S3Bucket) -> None:
    repo = Repository.open(s3_bucket.url(), settings=s3_bucket.settings())
    leave_crashed_set(repo, "redis", LEFTOVER, {"appendonly.aof": b"x" * 100})
    sink = repo.storage.open_write(f"redis/{LEFTOVER}/dump.rdb")  # a part sent, never completed
    sink.write(os.urandom(5 * MIB))
    assert s3_bucket.pending_uploads() == [f"repo/redis/{LEFTOVER}/dump.rdb"]
    sweep(repo)
    assert s3_bucket.pending_uploads() == []
    stored = s3_bucket.keys()
    assert not any(LEFTOVER in key for key in stored)


def test_a_reused_pid_or_another_boot_does_not_keep_a_leftover(repo: Repository) -> None:
    me = os.getpid()
    start = process_start_time(me)
    assert start is not None
    reused = "redis-20250101T000000Z-a00001"
    rebooted = "redis-20250101T000000Z-a00002"
    leave_crashed_set(repo, "redis", reused, {"dump.rdb": b"x"}, pid=me)
    leave_crashed_set(repo, "redis", rebooted, {"dump.rdb": b"x"}, pid=me)
    for set_id, change in ((reused, {"process_start": start + 1000}), (rebooted, {"boot_id": "another-boot"})):
        marker = WriterMarker.from_json(repo.storage.read_bytes(f"redis/{set_id}/{WRITING_MARKER}"))
        repo.storage.put_bytes(f"redis/{set_id}/{WRITING_MARKER}",
                               dataclasses.replace(marker, **{"process_start": start, **change}).to_json())
    sweep(repo)
    assert not present(repo, reused) and not present(repo, rebooted)


def test_another_hosts_leftover_is_swept_only_after_the_bound(repo: Repository) -> None:
    days = REMOTE_WRITER_TIMEOUT / 86400
    assert days == 7
    young = "redis-20250101T000000Z-b00001"
    old = "redis-20250101T000000Z-b00002"
    leave_crashed_set(repo, "redis", young, {"dump.rdb": b"x"}, pid=1, host="elsewhere",
                      started=utcnow() - timedelta(days=days - 1))
    leave_crashed_set(repo, "redis", old, {"dump.rdb": b"x"}, pid=1, host="elsewhere",
                      started=utcnow() - timedelta(days=days + 1))
    sweep(repo)
    assert present(repo, young) and not present(repo, old)
    assert repo.damaged() == []  # may still be at work on its host: not damaged either


def test_a_complete_set_keeps_its_data_and_loses_a_stale_marker(repo: Repository) -> None:
    backup = store_set(repo, make_manifest(utcnow() - timedelta(hours=1)))
    leave_crashed_set(repo, "redis", backup.id, {})  # died between the manifest and removing the marker
    assert [s.id for s in repo.sets()] == [backup.id]
    sweep(repo)
    assert not present(repo, backup.id, WRITING_MARKER)
    assert [s.id for s in repo.sets()] == [backup.id]


def test_an_empty_set_directory_is_swept(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    (tmp_path / "repo" / "redis" / LEFTOVER).mkdir(parents=True)
    assert repo.damaged() == []
    sweep(repo)
    assert not (tmp_path / "repo" / "redis" / LEFTOVER).exists()


# --- what is left alone ------------------------------------------------------------------------------------


def test_a_live_writer_is_left_alone(repo: Repository) -> None:
    leave_crashed_set(repo, "redis", LEFTOVER, {"dump.rdb": b"x"}, pid=os.getpid())
    marker = WriterMarker.from_json(repo.storage.read_bytes(f"redis/{LEFTOVER}/{WRITING_MARKER}"))
    repo.storage.put_bytes(f"redis/{LEFTOVER}/{WRITING_MARKER}",
                           dataclasses.replace(marker, process_start=process_start_time(os.getpid())).to_json())
    sweep(repo)
    assert present(repo, LEFTOVER, "dump.rdb")
    assert repo.damaged() == [] and repo.incomplete() == [LEFTOVER]


def test_a_set_without_marker_or_with_a_bad_marker_is_left_alone(repo: Repository) -> None:
    bare, garbled = "redis-20250101T000000Z-c00001", "redis-20250101T000000Z-c00002"
    repo.storage.put_bytes(f"redis/{bare}/dump.rdb", b"REDIS0011 not from bdr")
    repo.storage.put_bytes(f"redis/{garbled}/dump.rdb", b"x")
    repo.storage.put_bytes(f"redis/{garbled}/{WRITING_MARKER}", b"{not json")
    sweep(repo)
    assert present(repo, bare, "dump.rdb") and present(repo, garbled, "dump.rdb")
    reasons = {d.id: d.reason for d in repo.damaged()}
    assert reasons[bare].startswith("no manifest: not left by a crashed bdr run; bdr leaves it alone; delete ")
    assert reasons[garbled].startswith("no manifest, and its writing marker is unreadable; bdr leaves it alone")


# --- read markers -------------------------------------------------------------------------------------------


def test_read_markers_of_dead_restores_are_removed(repo: Repository) -> None:
    backup = store_set(repo, make_manifest(utcnow() - timedelta(hours=1)))
    dead = leave_read_marker(repo, backup.id)
    elsewhere = f"locks/read-{backup.id}-1-far.json"
    repo.storage.put_bytes(elsewhere, LockInfo(1, "elsewhere", "2020-01-01T00:00:00.000000Z",
                                               f"read {backup.id}").to_json())
    fresh = f"locks/read-{backup.id}-2-near.json"
    repo.storage.put_bytes(fresh, LockInfo(2, "elsewhere", LockInfo.here("x").since, f"read {backup.id}").to_json())
    assert repo.sets_being_read() == {backup.id}  # only the other host's recent marker counts
    with repo.reading(backup.id):
        sweep(repo)
        assert repo.sets_being_read() == {backup.id}
        names = set(repo.storage.children("locks"))
    assert Path(dead).name not in names and Path(elsewhere).name not in names
    assert Path(fresh).name in names
    assert sum(name.startswith(f"read-{backup.id}-{os.getpid()}-") for name in names) == 1  # our own, live


# --- a real bdr backup, killed ---------------------------------------------------------------------------------


def fill(client: redis.Redis, megabytes: int) -> None:
    pipe = client.pipeline(transaction=False)
    for n in range(megabytes * 4):
        pipe.set(f"blob:{n}", os.urandom(256 * 1024))
    pipe.execute()


def write_config(tmp_path: Path, server: RedisProcess, remote: RemoteSettings | None = None) -> Path:
    instance = server.instance
    data: dict[str, object] = {
        "repository": str(tmp_path / "repo"),
        "redis": {"production": {"url": instance.url, "data_dir": instance.data_dir,
                                 "start_args": list(instance.start_args), "password_env": None}},
    }
    if remote is not None:
        data["remote"] = {"url": remote.url, "endpoint_url": remote.endpoint_url, "region": remote.region,
                          "part_size_mib": remote.part_size_mib}
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def wait_until(what: str, check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_sigkilled_backup_is_swept_by_the_next_backup(redis_aof: RedisProcess, tmp_path: Path) -> None:
    """Killed between two data files: a marker, one object, no manifest; the next backup removes it."""
    fill(redis_aof.client(), 16)
    config = write_config(tmp_path, redis_aof)
    set_dirs = tmp_path / "repo" / "redis"
    # pause before the second data file: the first is in the set, the copy not done; then SIGKILL
    env = {**os.environ, "BDR_FAILPOINTS": "backup.copy:sleep=120@2"}
    proc = subprocess.Popen([BDR, "-c", str(config), "backup", "redis"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def copying() -> bool:
            return any((d / WRITING_MARKER).exists() and len([p for p in d.rglob("*") if p.is_file()]) >= 2
                       for d in (set_dirs.iterdir() if set_dirs.is_dir() else ()))

        wait_until("the backup to be mid-copy", copying)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    [leftover] = list(set_dirs.iterdir())
    assert not (leftover / MANIFEST_NAME).exists()
    assert json.loads((leftover / WRITING_MARKER).read_text())["pid"] == proc.pid
    repo = Repository.open(tmp_path / "repo")
    assert repo.sets() == [] and repo.damaged() == [] and repo.incomplete() == [leftover.name]

    again = subprocess.run([BDR, "-c", str(config), "backup", "redis", "--json"], capture_output=True, text=True,
                           timeout=300, check=False, stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr
    assert not leftover.exists()
    assert [s.id for s in repo.sets()] == [json.loads(again.stdout)["id"]]
    assert repo.incomplete() == [] and repo.damaged() == []


def test_a_sigkilled_offsite_backup_leaves_an_upload_the_next_backup_aborts(
        redis_rdb: RedisProcess, s3_bucket: S3Bucket, flaky_proxy: object, tmp_path: Path) -> None:
    """Killed mid-upload to S3: a marker and a pending multipart upload; the next backup aborts and removes both."""
    from tests.s3_fixtures import FlakyProxy

    assert isinstance(flaky_proxy, FlakyProxy)
    fill(redis_rdb.client(), 24)  # a dump of about 24 MiB: five 5 MiB parts
    through_proxy = s3_bucket.settings(endpoint_url=flaky_proxy.endpoint)
    config = write_config(tmp_path, redis_rdb, through_proxy)
    argv = [BDR, "-c", str(config), "backup", "redis", "--remote", s3_bucket.url(), "--allow-plaintext"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until("a multipart upload to start", lambda: bool(s3_bucket.pending_uploads()))
        flaky_proxy.cut("stall")  # the upload hangs where it is
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        flaky_proxy.restore()
    [upload] = s3_bucket.pending_uploads()
    set_id = upload.split("/")[2]
    stored = s3_bucket.keys()
    assert f"repo/redis/{set_id}/{WRITING_MARKER}" in stored
    assert f"repo/redis/{set_id}/{MANIFEST_NAME}" not in stored
    repo = Repository.open(s3_bucket.url(), settings=s3_bucket.settings())
    assert repo.sets() == [] and repo.damaged() == []

    direct = write_config(tmp_path, redis_rdb, s3_bucket.settings())
    again = subprocess.run([BDR, "-c", str(direct), "backup", "redis", "--remote", s3_bucket.url(),
                            "--allow-plaintext", "--json"], capture_output=True, text=True, timeout=300, check=False,
                           stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr
    assert s3_bucket.pending_uploads() == []
    left = s3_bucket.keys()
    assert not any(set_id in key for key in left)
    assert [s.id for s in repo.sets()] == [json.loads(again.stdout)["id"]]



def test_a_stray_file_in_a_source_directory_is_left_alone(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    (tmp_path / "repo" / "redis").mkdir(parents=True)
    (tmp_path / "repo" / "redis" / "README").write_text("the operator's notes")
    sweep(repo)
    assert (tmp_path / "repo" / "redis" / "README").read_text() == "the operator's notes"
    assert [d.id for d in repo.damaged()] == ["README"]
