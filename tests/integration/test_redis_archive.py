"""Continuous archiving and point-in-time restore against real redis-servers (and moto's S3).

The archiver runs in a thread of the test process (the drills run it as ``bdr archive redis`` and
kill it with SIGKILL); every restore goes through ``api.restore(..., to_time=...)``, the runbook
and a temporary redis-server, exactly as ``bdr restore redis --to-time`` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bdr import api
from bdr.config import ArchiveSettings, Config, RemoteSettings
from bdr.engines.redis.archive.archiver import Archiver
from bdr.engines.redis.archive.destinations import destinations_for
from bdr.engines.redis.archive.layout import list_segments
from bdr.engines.redis.archive.report import archive_status
from bdr.errors import BdrError, PointInTimeUnreachable, SegmentCorrupt
from bdr.repository import Repository
from bdr.runtime.process import RedisProcess
from bdr.util.waiting import wait_for
from tests.fixtures import config_for

WAIT = 30.0


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def quiet_moment(margin: float = 0.05) -> str:
    """A moment with nothing written ``margin`` seconds around it: what was written before it had reached the
    archiver by then (in this process the archiver shares the GIL with the test; as a process of its own it
    receives a write within a millisecond)."""
    time.sleep(margin)
    moment = now_iso()
    time.sleep(margin)
    return moment


def contents(server: RedisProcess, dbs: tuple[int, ...] = (0,)) -> dict[tuple[int, bytes], tuple[bytes, int]]:
    """Every key of ``dbs`` as (DUMP, has a TTL): equal contents, byte for byte."""
    out: dict[tuple[int, bytes], tuple[bytes, int]] = {}
    for db in dbs:
        client = server.client(db=db)
        keys = list(client.scan_iter(count=1000))
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
            pipe.pttl(key)
        replies = pipe.execute()
        for i, key in enumerate(keys):
            out[(db, key)] = (replies[2 * i], 1 if replies[2 * i + 1] > 0 else 0)
    return out


def archived_config(tmp_path: Path, server: RedisProcess, **settings: Any) -> Config:
    config = config_for(tmp_path, server)
    archive = ArchiveSettings("production", **{"segment_seconds": 0.5, **settings})
    return dataclasses.replace(config, archive={"production": archive})


@contextlib.contextmanager
def archiving(config: Config, name: str = "production") -> Iterator[Archiver]:
    """The archiver in a thread, once its first base is stored and it streams in real time; stopped after."""
    stop = threading.Event()
    archiver = Archiver(config, name, destinations_for(config, config.archive[name]), stop)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            archiver.run()
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, name="test-archiver")
    thread.start()
    try:
        assert wait_for(lambda: bool(failed) or (bool(archiver.progress.bases_stored) and archiver.progress.connected
                                                 and not archiver.progress.catching_up), WAIT, 0.05), \
            "the archiver did not take its first base"
        if failed:
            raise failed[0]
        yield archiver
    finally:
        stop.set()
        thread.join(60)
    if failed:
        raise failed[0]


def wait_archived(archiver: Archiver, after: float | None = None) -> None:
    """Until a restore from the repository reaches ``after`` (default: now)."""
    moment = int((after if after is not None else time.time()) * 1e6)
    assert wait_for(lambda: archiver.covered_until_us() >= moment, WAIT, 0.05), \
        f"the archive did not reach {moment} ({archiver.status()})"


def test_a_restore_to_a_moment_brings_back_what_was_there_then_and_nothing_written_after(
        tmp_path: Path, redis_server: RedisProcess) -> None:
    config = archived_config(tmp_path, redis_server)
    client = redis_server.client()
    client.set("before:archiving", "kept")
    with archiving(config) as archiver:
        for i in range(300):
            client.set(f"user:{i}", f"u{i}")
            client.hset(f"rbac:{i}", mapping={"role": "admin" if i % 7 == 0 else "viewer"})
        client.expire("user:1", 3600)
        pipe = client.pipeline(transaction=True)
        pipe.incr("counter")
        pipe.lpush("queue", "a", "b")
        pipe.execute()
        redis_server.client(db=3).set("other:db", "three")
        wanted = contents(redis_server, (0, 3))
        moment = quiet_moment()
        client.delete(*[f"user:{i}" for i in range(300)])  # the bad DEL
        client.set("written:after", "must not come back")
        wait_archived(archiver)

        dry = api.restore(config, "redis", None, to_time=moment, dry_run=True)
        assert dry.dry_run and dry.ok
        would = dry.facts["would"][0]
        assert "point in time" in would and "segment(s)" in would and "last command received at" in would
        assert dry.facts["point_in_time"]["to_time"] == moment
        assert client.exists("written:after")  # a dry run changes nothing

        result = api.restore(config, "redis", None, to_time=moment)
    assert result.ok, [c for c in result.checks if not c.ok]
    assert result.safety_id is not None
    assert contents(redis_server, (0, 3)) == wanted
    assert not redis_server.client().exists("written:after")
    facts = result.facts["point_in_time"]
    assert facts["last_command_at"] <= moment and facts["precision_seconds"] < 1.0
    assert "replayed by a temporary redis-server" in result.facts["installed_from"]


def test_a_selective_restore_to_a_moment_copies_only_the_matching_keys_as_they_were(
        tmp_path: Path, redis_rdb: RedisProcess) -> None:
    config = archived_config(tmp_path, redis_rdb)
    client = redis_rdb.client()
    with archiving(config) as archiver:
        for i in range(100):
            client.set(f"user:{i}", f"old{i}")
            client.set(f"session:{i}", f"s{i}")
        moment = quiet_moment()
        client.delete(*[f"user:{i}" for i in range(0, 100, 2)])
        client.set("user:new", "created after")
        client.set("session:0", "changed after")
        wait_archived(archiver)
        result = api.restore(config, "redis", None, to_time=moment, keys="user:*", conflict="skip")
    assert result.ok and result.counts["copied"] == 50 and result.counts["skipped"] == 50
    assert [client.get(f"user:{i}") for i in range(100)] == [f"old{i}".encode() for i in range(100)]
    assert client.get("user:new") == b"created after"  # a live key the restore does not touch
    assert client.get("session:0") == b"changed after"


def test_a_backup_taken_while_archiving_is_a_base_and_shortens_the_replay(tmp_path: Path,
                                                                         redis_rdb: RedisProcess) -> None:
    config = archived_config(tmp_path, redis_rdb)
    client = redis_rdb.client()
    with archiving(config) as archiver:
        for i in range(200):
            client.set(f"a:{i}", i)
        outcome = api.backup(config, "redis")
        aux = outcome.manifest.facts["content"]["aux"]
        assert aux["repl-offset"] not in ("", "-1") and len(aux["repl-id"]) == 40
        for i in range(50):
            client.set(f"b:{i}", i)
        wanted = contents(redis_rdb)
        moment = quiet_moment()
        wait_archived(archiver)
        dry = api.restore(config, "redis", None, to_time=moment, dry_run=True)
        assert dry.facts["point_in_time"]["base"] == outcome.manifest.id
        forced = api.restore(config, "redis", archiver.progress.bases_stored[0], to_time=moment, dry_run=True)
        assert forced.facts["point_in_time"]["base"] != outcome.manifest.id
        assert forced.facts["point_in_time"]["stream_bytes"] > dry.facts["point_in_time"]["stream_bytes"]
        result = api.restore(config, "redis", None, to_time=moment)
    assert result.ok and contents(redis_rdb) == wanted


def test_a_dropped_link_resumes_by_psync_and_a_backlog_that_moved_on_takes_a_new_base_and_says_so(
        tmp_path: Path, redis_rdb: RedisProcess) -> None:
    config = archived_config(tmp_path, redis_rdb)
    client = redis_rdb.client()
    client.config_set("repl-backlog-size", 16 * 1024)
    with archiving(config) as archiver:
        client.set("first", "1")
        client.client_kill_filter(_type="replica")
        client.set("second", "2")
        assert wait_for(lambda: archiver.progress.reconnects >= 1 and archiver.progress.connected, WAIT, 0.05)
        before_gap = quiet_moment()
        wait_archived(archiver)
        assert archiver.progress.new_bases == 0, "a short drop must resume from the backlog"

        pipe = client.pipeline(transaction=False)
        pipe.client_kill_filter(_type="replica")
        pipe.set("big", "x" * (64 * 1024))  # more than the backlog holds before the archiver is back
        pipe.execute()
        assert wait_for(lambda: archiver.progress.new_bases == 1 and archiver.progress.connected
                        and not archiver.progress.catching_up and len(archiver.progress.bases_stored) == 2, WAIT, 0.05)
        assert "could not continue the stream" in str(archiver.progress.last_new_base)
        client.set("third", "3")
        after_gap = quiet_moment()
        wait_archived(archiver)
        status = archive_status(config, config.archive["production"])
        # the first drop: "second" was written while the link was down, so its moment is a blind span; the
        # second drop lost the stream: a new base opens the last window
        assert status.new_bases == 1 and [w.opened_by for w in status.windows] == ["base", "blind span", "base"]
        gap_from, gap_to = status.windows[-2].to_us, status.windows[-1].from_us
        inside = datetime.fromtimestamp((gap_from + gap_to) / 2e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with pytest.raises(PointInTimeUnreachable, match=r"the earliest .* the latest"):
            api.restore(config, "redis", None, to_time=inside, dry_run=True)
        assert api.restore(config, "redis", None, to_time=before_gap, dry_run=True).ok
        result = api.restore(config, "redis", None, to_time=after_gap)
    assert result.ok
    restored = redis_rdb.client()
    assert [restored.get(k) for k in ("first", "second", "third")] == [b"1", b"2", b"3"]


def test_times_the_archive_cannot_reach_are_refused_with_the_reachable_ones(tmp_path: Path,
                                                                            redis_rdb: RedisProcess) -> None:
    config = archived_config(tmp_path, redis_rdb)
    before = now_iso()
    with archiving(config) as archiver:
        redis_rdb.client().set("a", "1")
        wait_archived(archiver)
    for moment in (before, "2099-01-01T00:00:00Z"):
        with pytest.raises(PointInTimeUnreachable) as refused:
            api.restore(config, "redis", None, to_time=moment, dry_run=True)
        assert "reachable: the earliest" in refused.value.message and refused.value.exit_code == 4
    with pytest.raises(BdrError, match="time zone"):
        api.restore(config, "redis", None, to_time="2026-12-02T14:04:59", dry_run=True)


def test_a_corrupt_segment_is_refused_before_anything_live_is_touched(tmp_path: Path,
                                                                      redis_rdb: RedisProcess) -> None:
    config = archived_config(tmp_path, redis_rdb)
    client = redis_rdb.client()
    with archiving(config) as archiver:
        for i in range(50):
            client.set(f"k:{i}", "v" * 100)
        moment = quiet_moment()
        wait_archived(archiver)
    client.set("live", "untouched")
    repo = Repository.open(config.repository_path())
    biggest = max(list_segments(repo, "production"), key=lambda s: s.name.size)
    path = repo.storage.local_path(biggest.key)  # type: ignore[attr-defined]
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SegmentCorrupt) as refused:
        api.restore(config, "redis", None, to_time=moment)
    assert refused.value.exit_code == 6
    assert client.get("live") == b"untouched"
    assert not api.interrupted_restores(config)


def test_an_encrypted_archive_goes_to_s3_and_restores_from_there(tmp_path: Path, redis_rdb: RedisProcess,
                                                                 s3_bucket: Any) -> None:
    from bdr.crypto import generate_key_file

    key = tmp_path / "backup.key"
    generate_key_file(key)
    base = config_for(tmp_path, redis_rdb)
    config = dataclasses.replace(
        base, remote=s3_bucket.settings(), encryption=dataclasses.replace(base.encryption, key_file=str(key)),
        archive={"production": ArchiveSettings("production", segment_seconds=0.5, to=("local", "s3"),
                                               encrypt=True)})
    assert isinstance(config.remote, RemoteSettings)
    client = redis_rdb.client()
    with archiving(config) as archiver:
        for i in range(100):
            client.set(f"k:{i}", i)
        wanted = contents(redis_rdb)
        moment = quiet_moment()
        client.flushall()
        wait_archived(archiver)
    keys = s3_bucket.keys("repo/archive/redis/production/")
    assert keys and all(k.endswith(".seg") for k in keys)
    first = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=keys[0])["Body"].read(4)
    assert first == b"BDRE"  # encrypted
    local = Repository.open(config.repository_path())
    assert all(local.storage.local_path(s.key).read_bytes()[:4] == b"BDRE"  # type: ignore[attr-defined]
               for s in list_segments(local, "production"))
    result = api.restore(config, "redis", None, to_time=moment, remote=s3_bucket.url())
    assert result.ok and contents(redis_rdb) == wanted


def test_status_and_metrics_show_the_window_and_the_lag(tmp_path: Path, redis_rdb: RedisProcess) -> None:
    from bdr.monitoring.metrics import exposition

    config = dataclasses.replace(archived_config(tmp_path, redis_rdb, max_lag=60.0),
                                 metrics_textfile=str(tmp_path / "metrics" / "bdr.prom"))
    with archiving(config) as archiver:
        redis_rdb.client().set("a", "1")
        wait_archived(archiver)
        report = api.status(config, source="redis")
        (archive,) = report.archives
        assert archive.running and len(archive.windows) == 1 and archive.lag_seconds is not None
        assert archive.lag_seconds < 60 and not archive.problems()
        text = exposition(config)
        assert 'backup_archive_up{instance="production",source="redis"} 1' in text
        assert "backup_archive_covered_timestamp{" in text and "backup_archive_lag_seconds{" in text
    stopped = api.status(config, source="redis")
    assert any("archiver is not running" in p for p in stopped.problems)
    assert 'backup_archive_up{instance="production",source="redis"} 0' in exposition(config)


def test_a_second_archiver_of_the_same_instance_is_refused(tmp_path: Path, redis_rdb: RedisProcess) -> None:
    from bdr.errors import ArchiverRunning

    config = archived_config(tmp_path, redis_rdb)
    with archiving(config):
        second = Archiver(config, "production", destinations_for(config, config.archive["production"]))
        with pytest.raises(ArchiverRunning):
            second.run()



def test_a_password_and_a_disk_based_full_sync(tmp_path: Path) -> None:
    from bdr.runtime.process import spawn_redis

    server = spawn_redis(tmp_path / "secret" / "data", name="production", password="archiver-secret",
                         extra=["--repl-diskless-sync", "no"])
    try:
        config = archived_config(tmp_path, server)
        client = server.client()
        client.set("a", "1")
        with archiving(config) as archiver:
            client.set("b", "2")
            wanted = contents(server)
            moment = quiet_moment()
            client.set("c", "3")
            wait_archived(archiver)
            result = api.restore(config, "redis", None, to_time=moment)
        assert result.ok and contents(server) == wanted
    finally:
        server.stop()
