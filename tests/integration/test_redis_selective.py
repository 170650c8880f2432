"""Selective restore of Redis keys (the accidental deletion) against real redis-server processes."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from bdr import api
from bdr.config import Config, RedisInstance
from bdr.engines.base import RestoreRequest, RestoreResult, Step, StepStatus
from bdr.engines.redis import ENGINE
from bdr.engines.redis.selective import CopyCounts, KeyCopier, KeySelection, find_keys
from bdr.engines.redis.temporary import temporary_instance
from bdr.engines.selection import Conflict, RedisSelection
from bdr.errors import BackupDoesNotLoad, NothingToRestore, RestoreRolledBack, SelectionConflict
from bdr.repository import Repository
from bdr.runtime.process import RedisProcess, spawn_redis
from bdr.util.waiting import wait_for
from tests.redis_data import HOUR_MS, Snapshot, assert_same_data, client_for_db, dump_everything, load_every_type

STEPS = ["fetch", "check", "safety backup", "replace", "verify", "finish"]
"""The runbook's steps for a selective restore: no stop and start (the live instance keeps running)."""
SLACK_MS = 250
"""A copied key's TTL is re-armed on arrival: its absolute expiry may move by the copy's latency."""


def backup_files(server: RedisProcess, dest: Path, aof: bool = True) -> Path:
    """The 'backup': BGSAVE, then a copy of dump.rdb (and of the AOF directory when there is one)."""
    client = server.client()
    saves = int(client.info("persistence")["rdb_saves"])
    client.bgsave()
    assert wait_for(lambda: int(client.info("persistence")["rdb_saves"]) > saves
                    and not int(client.info("persistence")["rdb_bgsave_in_progress"]), 30)
    dest.mkdir(parents=True)
    shutil.copy2(server.data_path() / "dump.rdb", dest / "dump.rdb")
    if aof and (server.data_path() / "appendonlydir").is_dir():
        shutil.copytree(server.data_path() / "appendonlydir", dest / "appendonlydir")
    return dest


def request_for(tmp_path: Path, keys: str = "user:*", db: int | None = None, conflict: str = Conflict.FAIL,
                dry_run: bool = False, config: Config | None = None) -> RestoreRequest:
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    config = config or Config(repository=str(repo))
    return RestoreRequest(config=config, repository=Repository.open(config.repository_path()), backup=None,
                          legacy_path=tmp_path / "backup", selection=RedisSelection(keys, db),
                          conflict=Conflict(conflict), dry_run=dry_run)


def only(snapshot: Snapshot, prefix: bytes) -> Snapshot:
    return {name: state for name, state in snapshot.items() if name[1].startswith(prefix)}


def delete_matching(client: redis.Redis, pattern: str, dbs: tuple[int, ...] = (0, 1, 5)) -> int:
    """The accident: ``DEL`` every key matching ``pattern``."""
    deleted = 0
    for db in dbs:
        db_client = client_for_db(client, db)
        keys = list(db_client.scan_iter(match=pattern))
        deleted += int(db_client.delete(*keys)) if keys else 0
    return deleted


@pytest.fixture
def production(redis_server: RedisProcess, tmp_path: Path) -> tuple[RedisProcess, Path, Snapshot]:
    """A live server holding user:* and other:* data, its backup, and a snapshot of the backed-up data."""
    client = redis_server.client()
    load_every_type(client, prefix="user:")
    load_every_type(client, prefix="other:")
    snapshot = dump_everything(client)
    backup_files(redis_server, tmp_path / "backup")
    return redis_server, tmp_path / "backup", snapshot


def port_closed(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def selective_restore(request: RestoreRequest, files: Path, target: RedisInstance) -> RestoreResult:
    """Restore the keys of ``request`` from the data files in ``files`` into ``target``, through the runbook."""
    config = dataclasses.replace(request.config, redis={target.name: target}, redis_default=target.name)
    return ENGINE.restore(dataclasses.replace(request, config=config, legacy_path=files, target=target.name))


def temporary_url(steps: list[Step]) -> str:
    detail = next(s.detail for s in steps if s.name == "check")
    return detail.rsplit("temporary server ", 1)[1].rstrip(")")


def test_restores_deleted_keys_of_every_type_and_leaves_other_keys_alone(
        production: tuple[RedisProcess, Path, Snapshot], tmp_path: Path) -> None:
    server, files, backed_up = production
    client = server.client()
    assert delete_matching(client, "user:*") == len(only(backed_up, b"user:"))
    client.set("other:db0:string:text", "changed after the backup")  # live data newer than the backup
    client.set("other:new", "written after the backup")
    others_before = dump_everything(client)

    result = selective_restore(request_for(tmp_path), files, server.instance)

    after = dump_everything(client)
    assert_same_data(only(after, b"user:"), only(backed_up, b"user:"), ttl_slack_ms=SLACK_MS)
    assert only(after, b"other:") == only(others_before, b"other:")  # byte for byte, expiry to the ms
    restored = len(only(backed_up, b"user:"))
    assert result.counts == {"matched": restored, "copied": restored, "replaced": 0, "skipped": 0,
                             "conflicts": 0, "expired": 0}
    assert [s.name for s in result.steps] == STEPS
    assert result.ok, result.checks
    assert port_closed(temporary_url(result.steps))


def test_streams_keep_groups_and_pending_entries_and_ttls_keep_milliseconds(
        production: tuple[RedisProcess, Path, Snapshot], tmp_path: Path) -> None:
    server, files, _ = production
    client = server.client()
    groups_before = client.xinfo_groups("user:db0:stream:events")
    pending_before = client.xpending("user:db0:stream:events", "workers")
    delete_matching(client, "user:*")

    selective_restore(request_for(tmp_path), files, server.instance)

    assert client.xinfo_groups("user:db0:stream:events") == groups_before
    assert client.xpending("user:db0:stream:events", "workers") == pending_before
    assert [g["pending"] for g in groups_before] == [7, 6]
    millis = client.pttl("user:db0:ttl:millis")
    assert HOUR_MS - 60_000 < millis <= HOUR_MS + 123
    assert client.pttl("user:db0:string:text") == -1
    assert client.get(b"user:db0:string:bin:\x00\xff\xfe\r\n*") == bytes(range(256))


def test_db_option_restores_one_database_only(production: tuple[RedisProcess, Path, Snapshot],
                                             tmp_path: Path) -> None:
    server, files, backed_up = production
    client = server.client()
    delete_matching(client, "user:*")

    result = selective_restore(request_for(tmp_path, db=1), files, server.instance)

    after = dump_everything(client)
    assert_same_data(only(after, b"user:"), {k: v for k, v in only(backed_up, b"user:").items() if k[0] == 1},
                     ttl_slack_ms=SLACK_MS)
    assert result.counts["copied"] == len([k for k in backed_up if k[0] == 1 and k[1].startswith(b"user:")])


def test_conflict_fail_refuses_before_writing_anything(production: tuple[RedisProcess, Path, Snapshot],
                                                      tmp_path: Path) -> None:
    server, files, _ = production
    client = server.client()
    delete_matching(client, "user:*")
    client_for_db(client, 5).set("user:db5:string:text", "recreated by the application")
    before = dump_everything(client)

    with pytest.raises(SelectionConflict):
        selective_restore(request_for(tmp_path, dry_run=True), files, server.instance)  # the dry run says so too
    with pytest.raises(SelectionConflict) as caught:
        selective_restore(request_for(tmp_path), files, server.instance)

    assert dump_everything(client) == before
    assert "1 matching keys already exist in Redis production" in caught.value.message
    assert "'user:db5:string:text' (db 5)" in caught.value.message
    assert "--conflict skip" in caught.value.message


def test_conflict_skip_keeps_the_live_keys(production: tuple[RedisProcess, Path, Snapshot], tmp_path: Path) -> None:
    server, files, backed_up = production
    client = server.client()
    delete_matching(client, "user:*")
    client.hset("user:db0:hash:small", "name", "live value")
    client.set("user:db0:string:int", "live")

    result = selective_restore(request_for(tmp_path, conflict="skip"), files, server.instance)

    assert client.hgetall("user:db0:hash:small") == {b"name": b"live value"}
    assert client.get("user:db0:string:int") == b"live"
    users = len(only(backed_up, b"user:"))
    assert result.counts["skipped"] == 2
    assert result.counts["copied"] == users - 2
    assert client.get("user:db0:string:text") == b"hello world"
    assert result.ok


def test_conflict_replace_overwrites_after_a_safety_backup(production: tuple[RedisProcess, Path, Snapshot],
                                                          tmp_path: Path, make_config: Callable[..., Config]) -> None:
    server, files, backed_up = production
    client = server.client()
    client.set("user:db0:string:text", "overwritten by the application")
    client.delete("user:db0:list:large")
    config = make_config(server)

    result = selective_restore(request_for(tmp_path, conflict="replace", config=config), files, server.instance)

    assert client.get("user:db0:string:text") == b"hello world"
    users = len(only(backed_up, b"user:"))
    assert result.counts["replaced"] == users - 1 and result.counts["copied"] == 1
    assert_same_data(only(dump_everything(client), b"user:"), only(backed_up, b"user:"), ttl_slack_ms=SLACK_MS)
    assert result.safety_id is not None
    safety = Repository.open(config.repository_path()).get(result.safety_id)
    assert "safety" in safety.tags
    assert [s.name for s in result.steps] == STEPS
    assert result.steps[2].status is StepStatus.OK


def test_dry_run_counts_and_writes_nothing(production: tuple[RedisProcess, Path, Snapshot], tmp_path: Path) -> None:
    server, files, backed_up = production
    client = server.client()
    delete_matching(client, "user:*")
    client.set("user:db0:string:text", "live")
    before = dump_everything(client)

    result = selective_restore(request_for(tmp_path, conflict="skip", dry_run=True), files, server.instance)

    assert dump_everything(client) == before
    users = len(only(backed_up, b"user:"))
    assert result.dry_run
    assert result.counts["copied"] == users - 1 and result.counts["skipped"] == 1
    assert [s.name for s in result.steps] == ["fetch", "check"]  # a dry run stops after the check


def test_a_pattern_that_matches_nothing_fails_its_check(production: tuple[RedisProcess, Path, Snapshot],
                                                       tmp_path: Path) -> None:
    server, files, _ = production
    before = dump_everything(server.client())

    with pytest.raises(NothingToRestore, match="no key of the backup matches 'usr:\\*' in all dbs: check the pattern; "
                       "nothing was changed") as raised:
        selective_restore(request_for(tmp_path, keys="usr:*"), files, server.instance)

    assert raised.value.exit_code == 4
    assert dump_everything(server.client()) == before


def test_temporary_instance_is_gone_when_the_copy_fails(production: tuple[RedisProcess, Path, Snapshot],
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, files, _ = production
    client = server.client()
    delete_matching(client, "user:*")
    client.config_set("maxmemory", "1")  # every write is refused: OOM
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    request = request_for(tmp_path)

    with pytest.raises(RestoreRolledBack) as caught:
        selective_restore(request, files, server.instance)

    client.config_set("maxmemory", "0")
    assert "failed at step 'replace'" in caught.value.message
    assert "refused RESTORE" in caught.value.message and "maxmemory" in caught.value.message
    assert "the keys added (missing before) are left" in caught.value.message
    steps = {s.name: s for s in request.log.steps}
    assert steps["replace"].status is StepStatus.FAILED
    assert steps["rollback"].status is StepStatus.OK
    assert port_closed(temporary_url(request.log.steps))
    assert list(scratch.iterdir()) == []


def test_temporary_instance_is_gone_after_ctrl_c(production: tuple[RedisProcess, Path, Snapshot],
                                                tmp_path: Path) -> None:
    _, files, _ = production
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    with pytest.raises(KeyboardInterrupt), temporary_instance(files, scratch_parent=scratch) as server:
        url = server.instance.url
        assert server.client().dbsize() > 0
        raise KeyboardInterrupt

    assert port_closed(url)
    assert list(scratch.iterdir()) == []


def test_temporary_instance_needs_its_private_password_and_never_changes_the_files(
        production: tuple[RedisProcess, Path, Snapshot]) -> None:
    _, files, _ = production
    before = {p.relative_to(files): p.read_bytes() for p in files.rglob("*") if p.is_file()}

    with temporary_instance(files) as server:
        host, port = server.address()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host=host, port=port, retry=Retry(NoBackoff(), 0)).ping()
        assert server.client().ping()
        password = server.instance.password()
        assert password and password not in " ".join(server.argv)
        server.client().set("written-in-the-temporary-server", "x")

    assert {p.relative_to(files): p.read_bytes() for p in files.rglob("*") if p.is_file()} == before


def test_temporary_instance_loads_an_aof_only_set_with_a_torn_tail(redis_aof: RedisProcess, tmp_path: Path) -> None:
    client = redis_aof.client()
    load_every_type(client, prefix="user:")
    client.set("last-write", "x" * 100)
    expected = dump_everything(client)
    del expected[(0, b"last-write")]
    files = tmp_path / "aof-only"
    shutil.copytree(redis_aof.data_path() / "appendonlydir", files / "appendonlydir")
    incr = next((files / "appendonlydir").glob("*.incr.aof"))
    os.truncate(incr, incr.stat().st_size - 50)  # the last SET is cut in the middle

    stream = "user:db0:stream:events"
    entries, groups = client.xrange(stream), [(g["name"], g["pending"]) for g in client.xinfo_groups(stream)]

    with temporary_instance(files) as server:
        loaded = server.client()
        # AOF replay re-creates consumers at replay time, so a stream's DUMP differs; its content does not
        assert_same_data({k: v for k, v in dump_everything(loaded).items() if b":stream:" not in k[1]},
                         {k: v for k, v in expected.items() if b":stream:" not in k[1]})
        assert loaded.xrange(stream) == entries
        assert [(g["name"], g["pending"]) for g in loaded.xinfo_groups(stream)] == groups
        assert loaded.get("last-write") is None


def test_a_corrupt_backup_is_an_integrity_error(tmp_path: Path) -> None:
    files = tmp_path / "corrupt"
    files.mkdir()
    (files / "dump.rdb").write_bytes(b"REDIS0010" + os.urandom(200))

    with pytest.raises(BackupDoesNotLoad) as caught, temporary_instance(files):
        pass

    assert caught.value.exit_code == 6
    assert "do not load into a temporary redis-server" in caught.value.message


def test_keys_whose_ttl_runs_out_before_the_copy_are_counted_expired(tmp_path: Path) -> None:
    source = spawn_redis(tmp_path / "source" / "data")
    target = spawn_redis(tmp_path / "target" / "data")
    try:
        source.client().set("user:short", "gone soon", px=400)
        source.client().set("user:long", "stays")
        files = backup_files(source, tmp_path / "backup")
        with temporary_instance(files) as server:
            counts = CopyCounts()
            selection = KeySelection("user:*", None, Conflict.FAIL)
            plans = find_keys(server.client(), lambda db: server.client(db=db),
                              lambda db: target.client(db=db), selection, counts)
            assert counts.matched == 2
            time.sleep(0.5)  # active expiry is off in the temporary server: the key is still listed
            for plan in plans:
                KeyCopier(server.client(db=plan.db), target.client(db=plan.db), Conflict.FAIL,
                          "target").copy(plan, counts)
        assert (counts.copied, counts.expired) == (1, 1)
        assert target.client().keys("*") == [b"user:long"]
    finally:
        source.stop()
        target.stop()


@pytest.mark.parametrize(("conflict", "counted"), [(Conflict.SKIP, "skipped"), (Conflict.FAIL, "conflicts")])
def test_a_key_created_in_the_target_during_the_copy_is_never_overwritten(tmp_path: Path, conflict: Conflict,
                                                                         counted: str) -> None:
    source = spawn_redis(tmp_path / "source" / "data")
    target = spawn_redis(tmp_path / "target" / "data", password="target-secret")
    try:
        source.client().mset({"user:1": "backup", "user:2": "backup"})
        files = backup_files(source, tmp_path / "backup")
        with temporary_instance(files) as server:
            counts = CopyCounts()
            plans = find_keys(server.client(), lambda db: server.client(db=db), lambda db: target.client(db=db),
                              KeySelection("user:*", None, conflict), counts)
            target.client().set("user:2", "created by the application meanwhile")
            for plan in plans:
                KeyCopier(server.client(db=plan.db), target.client(db=plan.db), conflict, "target").copy(plan, counts)
        assert target.client().mget("user:1", "user:2") == [b"backup", b"created by the application meanwhile"]
        assert (counts.copied, getattr(counts, counted)) == (1, 1)
    finally:
        source.stop()
        target.stop()


def test_works_without_hiredis(production: tuple[RedisProcess, Path, Snapshot], tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast paths (hiredis packing, reading replies off the parser) are optional."""
    from bdr.engines.redis import wire

    monkeypatch.setattr(wire, "_hiredis_pack", None)
    monkeypatch.setattr(wire, "_INCOMPLETE", None)
    server, files, backed_up = production
    client = server.client()
    delete_matching(client, "user:*")
    client.set("user:db0:string:text", "live")

    result = selective_restore(request_for(tmp_path, conflict="skip"), files, server.instance)

    assert result.counts["skipped"] == 1 and result.counts["copied"] == len(only(backed_up, b"user:")) - 1
    assert client.get("user:db0:string:text") == b"live"


def test_big_and_many_keys_in_adaptive_batches(tmp_path: Path) -> None:
    source = spawn_redis(tmp_path / "source" / "data")
    target = spawn_redis(tmp_path / "target" / "data")
    try:
        client = source.client()
        pipe = client.pipeline(transaction=False)
        for i in range(20_000):
            pipe.set(f"user:{i}", i)
        pipe.execute()
        client.set("user:big", os.urandom(8 << 20))
        files = backup_files(source, tmp_path / "backup")
        result = selective_restore(request_for(tmp_path), files, target.instance)
        assert result.counts["copied"] == 20_001
        assert_same_data(dump_everything(target.client()), dump_everything(client))
    finally:
        source.stop()
        target.stop()


# --- through the service layer and the command line ------------------------------------------------------


def test_api_restore_with_keys_uses_a_backup_set(production: tuple[RedisProcess, Path, Snapshot],
                                                make_config: Callable[..., Config]) -> None:
    server, _, backed_up = production
    config = make_config(server)
    api.backup(config, "redis")
    delete_matching(server.client(), "user:*")

    result: RestoreResult = api.restore(config, "redis", "latest", keys="user:*", db=None,
                                        conflict="skip")

    assert result.ok, result.checks
    assert result.counts["copied"] == len(only(backed_up, b"user:"))
    assert_same_data(only(dump_everything(server.client()), b"user:"), only(backed_up, b"user:"),
                     ttl_slack_ms=SLACK_MS)


def test_cli_dry_run_then_restore(production: tuple[RedisProcess, Path, Snapshot], tmp_path: Path) -> None:
    server, files, backed_up = production
    instance = server.instance
    config = tmp_path / "bdr.yaml"
    config.write_text(yaml.safe_dump({
        "repository": str(tmp_path / "repo"),
        "redis": {"production": {"url": instance.url, "data_dir": instance.data_dir,
                                 "start_args": list(instance.start_args), "password_env": None}},
    }))
    delete_matching(server.client(), "user:*", dbs=(0,))

    def bdr(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bdr.cli.main", "--config", str(config), *args],
                              capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)

    dry = bdr("restore", "redis", str(files), "--keys", "user:*", "--db", "0", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    deleted = [k for k in only(backed_up, b"user:") if k[0] == 0]
    assert json.loads(dry.stdout)["counts"]["copied"] == len(deleted)
    assert server.client().keys("user:*") == []

    conflict = bdr("restore", "redis", str(files), "--keys", "*", "--db", "0", "--yes")
    assert conflict.returncode == 2
    error = conflict.stderr.strip().splitlines()[-1]
    assert error.startswith("bdr: error: ") and "already exist in Redis production" in error

    done = bdr("restore", "redis", str(files), "--keys", "user:*", "--conflict", "skip", "--yes")
    assert done.returncode == 0, done.stderr
    assert "replace" in done.stderr and "keys in" in done.stderr
    assert f"copied: {len(deleted)}" in done.stdout and f"skipped: {len(only(backed_up, b'user:')) - len(deleted)}" \
        in done.stdout
    assert_same_data(only(dump_everything(server.client()), b"user:"), only(backed_up, b"user:"),
                     ttl_slack_ms=SLACK_MS)
