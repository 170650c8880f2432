"""Repair of damaged Redis data files (torn AOF tail, damaged byte, corrupt RDB) with real redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bdr.engines.redis.repair import FileState, Fix, Verdict, apply_repair, inspect_damage
from bdr.errors import RepairImpossible, ServiceError
from bdr.runtime.process import RedisProcess, spawn_redis


@pytest.fixture
def aof_strict(tmp_path: Path) -> Iterator[RedisProcess]:
    """AOF on, refusing to start on a truncated AOF, with AOF timestamp annotations."""
    server = spawn_redis(tmp_path / "strict" / "data", name="production", appendonly=True,
                         extra=["--aof-load-truncated", "no", "--aof-timestamp-enabled", "yes"])
    yield server
    server.stop()


def files_of(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def incr_file(server: RedisProcess) -> Path:
    return max((server.data_path() / "appendonlydir").glob("*.incr.aof"), key=lambda p: p.name)


def write_keys(server: RedisProcess, prefix: str, count: int) -> None:
    client = server.client()
    for i in range(count):
        client.set(f"{prefix}:{i}", f"value {i}")


def refuses_to_start(server: RedisProcess) -> str:
    with pytest.raises(ServiceError) as caught:
        server.start(timeout=20)
    return caught.value.message


def bdr(tmp_path: Path, server: RedisProcess, *args: str) -> subprocess.CompletedProcess[str]:
    instance = server.instance
    config = tmp_path / "bdr.yaml"
    config.write_text(yaml.safe_dump({
        "repository": str(tmp_path / "repo"),
        "redis": {"production": {"url": instance.url, "data_dir": instance.data_dir,
                                 "start_args": list(instance.start_args), "password_env": None}},
    }))
    return subprocess.run([sys.executable, "-m", "bdr.cli.main", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)


def test_torn_aof_tail_is_reported_then_repaired_losing_only_the_last_write(aof_strict: RedisProcess) -> None:
    server = aof_strict
    write_keys(server, "kept", 50)
    server.client().set("last", "x" * 200)
    server.stop()
    incr = incr_file(server)
    size = incr.stat().st_size
    os.truncate(incr, size - 100)  # the crash: the last SET is only partly on disk
    assert "exited with code 1" in refuses_to_start(server)
    live_before = files_of(server.data_path())

    report = inspect_damage(server.instance)

    assert files_of(server.data_path()) == live_before  # checked on a copy
    assert report.verdict is Verdict.FIXABLE and not report.running
    damaged = [f for f in report.findings if f.state is not FileState.OK]
    assert [(f.path, f.state, f.fix) for f in damaged] == [
        (f"appendonlydir/{incr.name}", FileState.TORN_TAIL, Fix.TRUNCATE)]
    assert report.loss is not None
    assert report.loss.torn and report.loss.whole_commands == 0
    assert 0 < report.loss.lost_bytes < 100 + 50
    assert "the last write, which is only partly on disk" in report.advice()

    repaired = apply_repair(server.instance, report)

    client = server.client()
    assert repaired.applied and repaired.facts["keys"] == 50
    assert client.get("kept:49") == b"value 49" and client.get("last") is None
    assert incr.stat().st_size == report.loss.valid_up_to
    aside = Path(repaired.moved_aside or "")
    assert aside.parent == server.data_path() and aside.name.startswith("bdr-repair-")
    assert (aside / "appendonlydir" / incr.name).stat().st_size == size - 100  # the original is kept
    assert not list(server.data_path().glob(".bdr-repair-staging-*"))


def test_default_aof_load_truncated_lets_redis_cut_a_torn_tail_itself(redis_aof: RedisProcess) -> None:
    write_keys(redis_aof, "kept", 10)
    redis_aof.client().set("last", "x" * 200)
    redis_aof.stop()
    incr = incr_file(redis_aof)
    os.truncate(incr, incr.stat().st_size - 100)

    redis_aof.start(timeout=20)  # aof-load-truncated yes: loads with a warning and truncates the file

    assert redis_aof.client().dbsize() == 10
    assert inspect_damage(redis_aof.instance).verdict is Verdict.HEALTHY


def test_damaged_byte_in_the_middle_loses_everything_after_it_with_timestamps(aof_strict: RedisProcess,
                                                                             tmp_path: Path) -> None:
    server = aof_strict
    write_keys(server, "early", 20)
    time.sleep(1.1)  # a new second: a new #TS annotation
    write_keys(server, "late", 30)
    server.stop()
    incr = incr_file(server)
    data = bytearray(incr.read_bytes())
    spot = data.index(b"early:10")
    data[spot - 3] = ord("X")  # the "$" before the key: a damaged byte
    incr.write_bytes(bytes(data))
    refuses_to_start(server)

    checked = bdr(tmp_path, server, "repair", "redis", "--json")

    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    assert report["verdict"] == "fixable"
    loss = report["loss"]
    assert loss["torn"] is False and loss["whole_commands"] >= 30 + 9
    assert loss["timestamps"] is True and loss["last_lost"] is not None and loss["lost_from"] is not None
    assert loss["last_lost"] > loss["lost_from"]  # lost: the end of the first second and all of the next
    assert f"written between {loss['lost_from']} and {loss['last_lost']}" in report["advice"]
    assert "commands written after the damaged byte" in report["advice"]

    applied = bdr(tmp_path, server, "repair", "redis", "--yes")

    assert applied.returncode == 0, applied.stderr
    assert "repaired" in applied.stdout and "bdr-repair-" in applied.stdout
    client = server.client()
    assert client.get("early:9") == b"value 9"
    assert client.get("early:10") is None and client.get("late:0") is None


def test_aof_without_timestamps_says_the_time_is_unknown(redis_aof: RedisProcess) -> None:
    write_keys(redis_aof, "k", 5)
    redis_aof.stop()
    incr = incr_file(redis_aof)
    data = bytearray(incr.read_bytes())
    data[data.index(b"k:3") - 3] = ord("X")
    incr.write_bytes(bytes(data))

    report = inspect_damage(redis_aof.instance)

    assert report.verdict is Verdict.FIXABLE and report.loss is not None
    assert report.loss.timestamps is False and report.loss.last_lost is None
    assert "is unknown" in report.loss.describe() and "aof-timestamp-enabled" in report.loss.describe()


def test_corrupt_rdb_is_not_repairable_and_names_the_restore(redis_rdb: RedisProcess, tmp_path: Path) -> None:
    write_keys(redis_rdb, "k", 100)
    redis_rdb.client().save()
    redis_rdb.stop()
    rdb = redis_rdb.data_path() / "dump.rdb"
    data = bytearray(rdb.read_bytes())
    data[len(data) // 2] ^= 0xFF
    rdb.write_bytes(bytes(data))
    before = files_of(redis_rdb.data_path())

    with pytest.raises(RepairImpossible) as caught:
        apply_repair(redis_rdb.instance, inspect_damage(redis_rdb.instance))
    result = bdr(tmp_path, redis_rdb, "repair", "redis", "--yes")

    assert caught.value.exit_code == 11
    assert result.returncode == 11
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("bdr: error: Redis production cannot be repaired: dump.rdb: corrupt")
    assert "`bdr restore redis latest --target production`" in error
    assert files_of(redis_rdb.data_path()) == before


def test_damaged_base_file_is_not_repairable(redis_aof: RedisProcess) -> None:
    write_keys(redis_aof, "k", 20)
    redis_aof.client().bgrewriteaof()
    time.sleep(0.5)
    redis_aof.stop()
    base = next((redis_aof.data_path() / "appendonlydir").glob("*.base.rdb"))
    data = bytearray(base.read_bytes())
    data[len(data) // 2] ^= 0xFF
    base.write_bytes(bytes(data))

    report = inspect_damage(redis_aof.instance)

    assert report.verdict is Verdict.IMPOSSIBLE
    broken = next(f for f in report.findings if f.fix is Fix.RESTORE)
    assert broken.path.endswith(".base.rdb") and "preamble" in broken.detail
    assert "bdr restore redis latest --target production" in report.advice()


def test_a_torn_incr_file_that_is_not_the_newest_cannot_be_cut(redis_aof: RedisProcess) -> None:
    write_keys(redis_aof, "k", 10)
    redis_aof.stop()
    aof_dir = redis_aof.data_path() / "appendonlydir"
    first = incr_file(redis_aof)
    manifest = next(aof_dir.glob("*.manifest"))
    second = first.name.replace(".1.incr", ".2.incr")
    (aof_dir / second).write_bytes(b"*3\r\n$3\r\nSET\r\n$5\r\nlater\r\n$1\r\n1\r\n")
    manifest.write_text(manifest.read_text() + f"file {second} seq 2 type i\n")
    os.truncate(first, first.stat().st_size - 5)

    report = inspect_damage(redis_aof.instance)

    assert report.verdict is Verdict.IMPOSSIBLE
    states = {Path(f.path).name: (f.state, f.fix) for f in report.findings}
    assert states[first.name] == (FileState.TORN_TAIL, Fix.RESTORE)
    assert states[second] == (FileState.NOT_CHECKED, Fix.NONE)


def test_unused_corrupt_rdb_of_an_aof_instance_is_set_aside_losing_nothing(redis_aof: RedisProcess) -> None:
    write_keys(redis_aof, "k", 30)
    redis_aof.client().save()
    redis_aof.stop()
    rdb = redis_aof.data_path() / "dump.rdb"
    rdb.write_bytes(rdb.read_bytes()[:40])

    report = inspect_damage(redis_aof.instance)
    assert report.verdict is Verdict.FIXABLE and report.loss is None
    assert [(f.path, f.loaded, f.fix) for f in report.findings if f.state is FileState.CORRUPT] == [
        ("dump.rdb", False, Fix.SET_ASIDE)]
    repaired = apply_repair(redis_aof.instance, report)

    assert redis_aof.client().dbsize() == 30
    assert not rdb.exists() and (Path(repaired.moved_aside or "") / "dump.rdb").stat().st_size == 40


def test_healthy_files_and_a_running_server(redis_aof: RedisProcess, tmp_path: Path) -> None:
    write_keys(redis_aof, "k", 5)

    result = bdr(tmp_path, redis_aof, "repair", "redis")

    assert result.returncode == 0, result.stderr
    assert "no damage found" in result.stdout
    assert redis_aof.client().dbsize() == 5
