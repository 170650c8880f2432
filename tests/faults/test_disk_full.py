"""Full disks, for real (a small tmpfs filled up), where Redis and bdr write.

- Redis's own data directory is full, so its BGSAVE fails: ``bdr backup redis`` fails with
  Redis's reason and writes no set (it must never copy the old ``dump.rdb`` as if new); the
  safety backup of a restore fails the same way, and the restore refuses before the stop.
- An AOF instance whose disk has room for the restored files but not for an AOF rewrite
  (the disk is filled while bdr is about to stop Redis) restores without a rewrite, AOF on,
  and Redis starts again on it after a shutdown.
- A data directory with no room for the fetched set, or not enough left for Redis to run,
  is refused before anything is stopped.
- The repository's disk fills while the set is written: one line, exit 9, nothing left.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdr.engines.redis.restore import MARGIN_BYTES
from bdr.repository import Repository
from tests.faults.harness import (
    backup_ok,
    bdr,
    bdr_acting,
    fill_disk,
    journal_files,
    listed_ids,
    start_again,
    work_dirs,
    write_config,
)
from tests.mounts import tmpfs
from tests.operators import OperatorRedis, Operators

MIB = 1 << 20


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Path]:
    """A 40 MiB tmpfs (requested before ``operators``, so Redis is gone before it is unmounted)."""
    tmp_path.chmod(0o755)
    with tmpfs(tmp_path / "mnt", "40m") as path:
        yield path


def big_values(op: OperatorRedis, total: int, prefix: str = "big") -> dict[bytes, bytes]:
    """Random (incompressible) values of about ``total`` bytes in all."""
    data = {f"{prefix}:{i}".encode(): os.urandom(20_000) for i in range(total // 20_000)}
    op.client().mset(data)  # type: ignore[arg-type]
    return data


def rdb_instance_on(mount: Path, operators: Operators, tmp_path: Path) -> tuple[OperatorRedis, Path, str]:
    """RDB-only Redis with its data on ``mount`` and its log elsewhere; an old dump.rdb and a set of it."""
    logs = tmp_path / "logs"
    logs.mkdir()
    op = operators.start("shell", data_dir=mount, args=f"--appendonly no --logfile {logs / 'redis.log'}")
    op.fill(100)
    op.client().save()  # the old dump.rdb a broken backup would take for new
    config = write_config(tmp_path / "bdr.yaml", op)
    return op, config, backup_ok(config)


def full_for_bgsave(op: OperatorRedis, mount: Path) -> dict[bytes, bytes]:
    """20 MiB more data, and room for the restore's own needs but not for the RDB a BGSAVE writes."""
    data = big_values(op, 20 * MIB)
    fill_disk(mount, leave=MARGIN_BYTES + MIB)
    return data


def test_bgsave_failing_on_a_full_disk_fails_the_backup(mount: Path, operators: Operators, tmp_path: Path) -> None:
    op, config, first = rdb_instance_on(mount, operators, tmp_path)
    data = full_for_bgsave(op, mount)
    failed = bdr(config, "backup", "redis")
    assert failed.code != 0, failed.output
    assert len(failed.error_lines) == 1, failed.stderr
    assert "nothing was backed up" in failed.error_lines[0]
    assert op.client().info("persistence")["rdb_last_bgsave_status"] == "err", "the BGSAVE did not fail: no test"
    assert listed_ids(config) == [first], "a set was written from a failed BGSAVE"
    assert Repository.open(tmp_path / "repo").incomplete() == []
    assert op.client().mget(list(data)) == list(data.values())


def test_safety_backup_failing_on_a_full_disk_refuses_the_restore_before_the_stop(
        mount: Path, operators: Operators, tmp_path: Path) -> None:
    op, config, first = rdb_instance_on(mount, operators, tmp_path)
    data = full_for_bgsave(op, mount)
    pid = op.pid()
    refused = bdr(config, "restore", "redis", first, "--yes")
    assert refused.code != 0, refused.output
    assert len(refused.error_lines) == 1, refused.stderr
    assert op.pid() == pid, "Redis was stopped (or restarted)"
    assert op.client().mget(list(data)) == list(data.values())
    assert op.client().set("written:after:refusal", "1"), "writes are still paused"
    assert journal_files(tmp_path / "repo") == [], "the refused restore left a journal"
    assert work_dirs(mount) == []
    assert listed_ids(config) == [first], "a safety set was written from a failed BGSAVE"


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_a_failed_bgsave_is_reported_with_redis_own_reason(
        mount: Path, operators: Operators, tmp_path: Path, command: str) -> None:
    op, config, first = rdb_instance_on(mount, operators, tmp_path)
    full_for_bgsave(op, mount)
    failed = bdr(config, "backup", "redis") if command == "backup" else bdr(config, "restore", "redis", first, "--yes")
    (line,) = failed.error_lines
    assert "No space left on device" in line, line
    assert str(mount) in line, "the line does not name the directory to free"
    assert failed.code == 9, failed.output


def test_aof_instance_restores_without_room_for_an_aof_rewrite(
        mount: Path, operators: Operators, tmp_path: Path) -> None:
    op = operators.start("shell", data_dir=mount)  # AOF on, its files on the small disk
    config = write_config(tmp_path / "bdr.yaml", op)
    data = big_values(op, 2 * MIB)
    backup_ok(config)
    op.client().set("written:after:backup", "1")

    def fill() -> None:  # after the safety backup, before the stop: room for nothing the size of the data
        fill_disk(mount, leave=MIB // 2)

    restored = bdr_acting(config, "restore", "redis", "latest", "--yes", failpoints="restore.stop:sleep=0.5",
                          actions={"restore.stop": fill}, timeout=90)
    assert restored.code == 0, restored.output
    client = op.client()
    info = client.info("persistence")
    assert info["aof_enabled"] == 1 and client.config_get("appendonly")["appendonly"] == "yes"
    assert info["aof_rewrites"] == 0 and info["aof_rewrite_scheduled"] == 0, "the restore needed an AOF rewrite"
    assert info["aof_last_write_status"] == "ok"
    assert client.mget(list(data)) == list(data.values()) and client.get("written:after:backup") is None

    client.set("written:after:restore", "1")  # appended to the AOF (appendfsync always)
    client.shutdown()
    start_again(op)
    again = op.client()
    assert again.info("persistence")["aof_enabled"] == 1
    assert again.mget(list(data)) == list(data.values()), "the restored AOF did not load after a restart"
    assert again.get("written:after:restore") == b"1"


@pytest.mark.parametrize("leave", ["no-room-for-the-set", "no-room-to-run"])
def test_a_data_dir_without_room_is_refused_before_the_stop(
        mount: Path, operators: Operators, tmp_path: Path, leave: str) -> None:
    op = operators.start("shell", data_dir=mount)
    config = write_config(tmp_path / "bdr.yaml", op)
    data = big_values(op, 2 * MIB)
    backup_ok(config)  # dump.rdb and the AOF: twice the data
    fill_disk(mount, leave=3 * MIB if leave == "no-room-for-the-set" else MARGIN_BYTES // 2)
    pid = op.pid()
    refused = bdr(config, "restore", "redis", "latest", "--yes")
    assert refused.code != 0, refused.output
    (line,) = refused.error_lines
    assert str(mount) in line, "the line does not name the data directory"
    assert "no space left" in line or "no room" in line, line
    if leave == "no-room-for-the-set":
        assert refused.code == 9, refused.output
    assert op.pid() == pid
    assert op.client().mget(list(data)) == list(data.values())
    assert op.client().set("written:after:refusal", "1")
    assert journal_files(tmp_path / "repo") == [] and work_dirs(mount) == []


def test_no_room_to_run_is_a_full_disk(mount: Path, operators: Operators, tmp_path: Path) -> None:
    op = operators.start("shell", data_dir=mount)
    config = write_config(tmp_path / "bdr.yaml", op)
    big_values(op, 2 * MIB)
    backup_ok(config)
    fill_disk(mount, leave=MARGIN_BYTES // 2)
    refused = bdr(config, "restore", "redis", "latest", "--yes")
    assert refused.code == 9, refused.output


def test_repository_disk_full_while_writing_the_set(operators: Operators, tmp_path: Path) -> None:
    op = operators.start("shell")
    client = op.client()
    settings = dict(client.config_get("*"))
    config = write_config(tmp_path / "bdr.yaml", op)
    data = big_values(op, 2 * MIB)
    with tmpfs(tmp_path / "repo", "1m") as repo:
        for flags in ([], ["--compress"]):
            failed = bdr(config, "backup", "redis", *flags)
            assert failed.code == 9, failed.output
            (line,) = failed.error_lines
            assert line.startswith(f"bdr: error: no space left on {repo}"), line
            assert not list(repo.glob("redis/*")), "the failed backup left files in the repository"
            assert client.config_get("*") == settings, "a setting was left changed"
            assert client.mget(list(data)) == list(data.values())
            assert client.set("written:after:failure", "1"), "writes are held back after the failed backup"
