"""Backups of the old shell scripts restored with bdr, and corrupt ones refused before production is touched.

``scripts/backup-redis.sh`` wrote ``redis_backup_YYYYMMDD_HHMMSS/`` (or its ``.tar.gz``) with
``dump.rdb`` and ``appendonly.aof`` (Redis 6) or ``appendonlydir/`` (Redis 7); there is no
manifest. bdr loads such a backup into a temporary redis-server in the ``check`` step: a
good one restores (with the AOF's data when there is an AOF, newer than the dump), a corrupt
one is refused there, with one line, while production keeps running (same pid, same data).
"""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bdr.runtime.process import spawn_redis
from bdr.safety.journal import Journal, JournalEntry
from tests.faults.harness import bdr, journal_files, resp, work_dirs, write_config
from tests.operators import OperatorRedis, Operators

STAMP = "redis_backup_20250124_020000"


@dataclass(frozen=True, slots=True)
class Legacy:
    """Data files as a Redis of the old setup left them, and the keys they hold."""

    rdb: Path
    aof_dir: Path
    in_rdb: dict[bytes, bytes]
    in_aof: dict[bytes, bytes]
    """What the AOF holds: the RDB's keys and one written after the SAVE."""


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Legacy]:
    root = tmp_path_factory.mktemp("legacy-source")
    server = spawn_redis(root / "data", name="old-host", appendonly=True, extra=["--appendfsync", "always"])
    try:
        client = server.client()
        in_rdb = {f"legacy:{i}".encode(): f"value-{i}".encode() for i in range(150)}
        client.mset(in_rdb)  # type: ignore[arg-type]
        client.save()
        client.set("legacy:after-the-dump", "newer")
        kept = root / "kept"
        kept.mkdir()
        shutil.copy2(root / "data" / "dump.rdb", kept / "dump.rdb")
        shutil.copytree(root / "data" / "appendonlydir", kept / "appendonlydir")
    finally:
        server.stop()
    yield Legacy(kept / "dump.rdb", kept / "appendonlydir", in_rdb, {**in_rdb, b"legacy:after-the-dump": b"newer"})


def redis6_aof(data: dict[bytes, bytes]) -> bytes:
    """An ``appendonly.aof`` as Redis 6 wrote it: the commands, one after another."""
    return resp(b"SELECT", b"0") + b"".join(resp(b"SET", k, v) for k, v in data.items())


def as_tar_gz(directory: Path) -> Path:
    archive = directory.with_name(directory.name + ".tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(directory, arcname=directory.name)
    shutil.rmtree(directory)
    return archive


def make_backup(legacy: Legacy, layout: str, where: Path) -> tuple[Path, dict[bytes, bytes]]:
    """A backup of the old scripts in ``layout``; the path to give bdr and the data it must restore."""
    directory = where / STAMP
    directory.mkdir(parents=True)
    if layout in ("directory", "tar.gz"):
        shutil.copy2(legacy.rdb, directory / "dump.rdb")
        return (as_tar_gz(directory) if layout == "tar.gz" else directory), legacy.in_rdb
    if layout == "appendonly.aof":
        (directory / "appendonly.aof").write_bytes(redis6_aof(legacy.in_aof))
        return directory, legacy.in_aof
    shutil.copy2(legacy.rdb, directory / "dump.rdb")  # the script copied both: the AOF is the newer
    shutil.copytree(legacy.aof_dir, directory / "appendonlydir")
    return directory, legacy.in_aof


def corrupt_backup(legacy: Legacy, kind: str, where: Path) -> Path:
    directory = where / STAMP
    directory.mkdir(parents=True)
    raw = legacy.rdb.read_bytes()
    if kind == "truncated dump.rdb":
        (directory / "dump.rdb").write_bytes(raw[: len(raw) // 2])
        return directory
    if kind == "dump.rdb in a .tar.gz":
        flipped = bytearray(raw)
        flipped[len(flipped) // 2] ^= 0xFF  # a bit flipped inside a value: only the RDB checksum sees it
        (directory / "dump.rdb").write_bytes(bytes(flipped))
        return as_tar_gz(directory)
    good = redis6_aof(legacy.in_rdb)
    (directory / "appendonly.aof").write_bytes(good[: len(good) // 2] + b"*3\r\n$3\r\nSET\r\nGARBAGE\r\n" +
                                               good[len(good) // 2:])
    return directory


def restore_of(repository: Path, ref: Path) -> JournalEntry:
    """The journal's record of the restore of ``ref``."""
    (entry,) = [e for e in Journal.at(repository).history() if e.ref == str(ref.resolve())]
    return entry


def production(operators: Operators, tmp_path: Path) -> tuple[OperatorRedis, Path, dict[bytes, bytes]]:
    op = operators.start("shell")  # AOF on
    return op, write_config(tmp_path / "bdr.yaml", op), op.fill(40)


@pytest.mark.parametrize("layout", ["directory", "tar.gz", "appendonly.aof", "appendonlydir"])
def test_a_backup_of_the_old_scripts_restores(operators: Operators, tmp_path: Path, legacy: Legacy,
                                              layout: str) -> None:
    op, config, before = production(operators, tmp_path)
    ref, expected = make_backup(legacy, layout, tmp_path / "old-backups")
    restored = bdr(config, "restore", "redis", str(ref), "--yes")
    assert restored.code == 0, restored.output
    client = op.client()
    assert client.dbsize() == len(expected)
    assert client.mget(list(expected)) == list(expected.values())
    assert client.mget(list(before)) == [None] * len(before), "keys of the data before the restore are left"
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert restore_of(tmp_path / "repo", ref).status == "done"
    assert work_dirs(op.data_dir) == [] and journal_files(tmp_path / "repo") == []


CORRUPT = ["truncated dump.rdb", "dump.rdb in a .tar.gz", "appendonly.aof"]


@pytest.mark.parametrize("kind", CORRUPT)
def test_a_corrupt_backup_of_the_old_scripts_is_refused_before_the_stop(
        operators: Operators, tmp_path: Path, legacy: Legacy, kind: str) -> None:
    op, config, before = production(operators, tmp_path)
    ref = corrupt_backup(legacy, kind, tmp_path / "old-backups")
    pid = op.pid()
    refused = bdr(config, "restore", "redis", str(ref), "--yes")
    assert refused.code == 6, refused.output
    (line,) = refused.error_lines
    assert "does not load into Redis" in line and "nothing was touched" in line, line
    entry = restore_of(tmp_path / "repo", ref)
    assert (entry.status, entry.step) == ("aborted", "check"), "not refused in the check step"
    assert op.pid() == pid, "production was stopped"
    client = op.client()
    assert client.dbsize() == len(before) and client.mget(list(before)) == list(before.values())
    assert client.set("written:after:refusal", "1")
    assert work_dirs(op.data_dir) == [] and journal_files(tmp_path / "repo") == []
    assert bdr(config, "backup", "redis").code == 0, "the instance is not usable after the refusal"


@pytest.mark.parametrize("kind", CORRUPT[:1])
def test_the_refusal_of_a_corrupt_legacy_backup_names_it(operators: Operators, tmp_path: Path, legacy: Legacy,
                                                         kind: str) -> None:
    _, config, _ = production(operators, tmp_path)
    ref = corrupt_backup(legacy, kind, tmp_path / "old-backups")
    (line,) = bdr(config, "restore", "redis", str(ref), "--yes").error_lines
    assert str(ref.resolve()) in line or ref.name in line, line
    assert ".bdr-restore-" not in line, "the line names a directory that no longer exists"
    assert "bdr verify" not in line, "`bdr verify` refuses a legacy backup: " + bdr(config, "verify", str(ref)).output


def test_a_truncated_legacy_aof_is_not_restored_as_complete(operators: Operators, tmp_path: Path,
                                                            legacy: Legacy) -> None:
    op, config, before = production(operators, tmp_path)
    directory = tmp_path / "old-backups" / STAMP
    directory.mkdir(parents=True)
    whole = redis6_aof(legacy.in_rdb)
    (directory / "appendonly.aof").write_bytes(whole[: len(whole) // 2])
    run = bdr(config, "restore", "redis", str(directory), "--yes")
    said = run.output.replace(str(tmp_path), "<tmp>").lower()  # the test's own name has the word in it
    assert run.code != 0 or "truncated" in said, \
        f"{op.client().dbsize()} of {len(legacy.in_rdb)} keys restored without a word: {run.stdout[-300:]}"
    assert run.code == 0 or op.client().mget(list(before)) == list(before.values())
