"""Turning a fetched backup into the exact files a Redis instance will load, before it is stopped.

Whatever the backup holds, the restore installs **one RDB**, the snapshot its checks are
about, and makes the instance load it *with its own configuration* (no start with
overrides, which a systemd unit or a supervisor could not do anyway):

- an RDB-only instance loads ``dbfilename``;
- an AOF instance (``appendonly yes``) loads only its AOF, so the restore also writes a
  Redis 7 AOF directory whose **base file is that RDB** (``appendonly.aof.1.base.rdb``,
  a hard link, plus its manifest); Redis loads it and appends new writes to a fresh incr
  file. No AOF rewrite is needed, so there is no wait and no room needed for one. Before
  Redis 7 the AOF is one file, and an RDB is a valid AOF (the RDB preamble) under that name.

Where the RDB comes from: a set taken by BGSAVE (or replication) has it, checked by its
sha256. Anything else (the AOF of a set copied from a stopped server, which may be newer
than its ``dump.rdb``; an old shell script's directory or ``.tar.gz``) is first loaded
into a private temporary redis-server, which proves it loads (the real Redis loader is the
check: a corrupt legacy file is refused here, before production is touched) and saves
the RDB that is installed; its key counts become what the restore is verified against.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdr.engines.redis.content import digest_facts, record
from bdr.engines.redis.info import Keyspace, PersistenceLayout
from bdr.engines.redis.temporary import DataFiles, LoadFrom, temporary_instance
from bdr.errors import BackupDoesNotLoad, LegacyDoesNotLoad

logger = logging.getLogger(__name__)

SNAPSHOT_METHODS = ("rdb", "replication")
"""Set methods whose RDB is the snapshot the manifest describes."""
LEGACY_AOF = "appendonly.aof"


@dataclass(slots=True)
class Installable:
    """The RDB to install and what the live data must look like once it is loaded."""

    rdb: Path
    origin: str
    """``snapshot`` (the set's BGSAVE), or how it was made (``loaded from the AOF in a temporary server``)."""
    keyspace: dict[str, Any] = field(default_factory=dict)
    """Per-db key and expire counts the loaded data must show (as manifest facts)."""
    facts: dict[str, Any] = field(default_factory=dict)
    """The rest of what verification compares (digest, content digest ...)."""


def choose_rdb(incoming: Path, facts: dict[str, Any], method: str | None, work: Path,
               legacy: str | None = None) -> Installable:
    """The RDB a restore of the files in ``incoming`` installs (converted when it must be).

    ``legacy``: the path of an old script's backup (no manifest vouches for it): it must load
    whole (a truncated AOF is refused), and an error names that path, not bdr's work directory.
    """
    rdb = incoming / str(facts.get("dbfilename") or "dump.rdb")
    if method in SNAPSHOT_METHODS and rdb.is_file():
        return Installable(rdb, "snapshot", dict(facts.get("keyspace") or {}), dict(facts))
    files = DataFiles.find(incoming)
    load_from = LoadFrom.AOF if (files.aof_manifest or files.legacy_aof) else None
    label = "the AOF" if load_from is LoadFrom.AOF else "the RDB"
    converted = work / "converted.rdb"
    try:
        with temporary_instance(incoming, load_from=load_from, scratch_parent=work, strict=legacy is not None) \
                as server:
            client = server.client(timeout=600.0)
            keyspace = Keyspace.from_info(client.info("keyspace")).to_facts()
            client.save()
            saved = Path(str(client.config_get("dir")["dir"])) / str(client.config_get("dbfilename")["dbfilename"])
            _link_or_copy(saved, converted)
    except BackupDoesNotLoad as exc:
        if legacy is None:
            raise
        detail = load_error(str(exc.fields.get("detail", exc.message)))
        raise LegacyDoesNotLoad(path=legacy, what=label, detail=detail) from exc
    if not converted.is_file():
        raise BackupDoesNotLoad(path=str(incoming), detail="the temporary server saved no RDB")
    logger.info("converted %s of %s into an RDB (%d keys)", label, incoming, Keyspace.from_facts(keyspace).total_keys)
    kept = {k: v for k, v in facts.items() if k not in ("keyspace", "digest", "content", "content_unavailable")}
    record(kept, digest_facts(converted))
    return Installable(converted, f"{label} loaded into a temporary redis-server and saved as an RDB", keyspace, kept)


NOISE = ("monotonic clock", "Running mode", "Server initialized", "overcommit", "Successfully migrated",
         "Ready to accept", "Redis version", "Configuration loaded", "oO0OoO0OoO0Oo")
LOG_PREFIX = re.compile(r"^\d+:[A-Z] \d+ \w+ \d+ [\d:.]+ [#*.-] ")


def load_error(detail: str) -> str:
    """What Redis said when it refused to load, without the start-up chatter and the path of a log that is
    deleted with the temporary server."""
    detail = re.sub(r"\s*\(log: [^)]*\)", "", detail)
    detail = detail.split(": ", 1)[1] if detail.startswith("Redis temporary did not start") else detail
    lines = [LOG_PREFIX.sub("", part.strip()) for part in detail.split(" | ")]
    kept = [line for line in lines if line and not any(noise in line for noise in NOISE)]
    return " | ".join(kept) or detail


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def owner_of(layout: PersistenceLayout) -> tuple[int, int, int]:
    """uid, gid and file mode for new data files: those of the current RDB, else of the directory."""
    current = layout.dir / layout.dbfilename
    if current.is_file():
        info = current.stat()
        return info.st_uid, info.st_gid, info.st_mode & 0o777
    info = layout.dir.stat()
    return info.st_uid, info.st_gid, 0o640 if not info.st_mode & 0o007 else 0o644


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (the new files must be on disk before they are swapped in)."""
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _own(path: Path, uid: int, gid: int, mode: int) -> None:
    if os.geteuid() == 0:
        os.chown(path, uid, gid, follow_symlinks=False)
    os.chmod(path, mode)


def stage(installable: Installable, layout: PersistenceLayout, new: Path) -> list[str]:
    """Put the entries the instance must load into ``new``; the data names that must not stay.

    The RDB is moved in as ``dbfilename``; for an AOF instance, the AOF is made of the same
    file (a hard link: no extra room). Returns the names to clear from the data directory
    (an AOF that would shadow the RDB, or an old single-file AOF).
    """
    new.mkdir(parents=True, exist_ok=True)
    uid, gid, mode = owner_of(layout)
    rdb = new / layout.dbfilename
    if installable.rdb != rdb:
        os.replace(installable.rdb, rdb)
    _own(rdb, uid, gid, mode)
    clear = [name for name in (layout.appenddirname, layout.appendfilename, LEGACY_AOF) if name != layout.dbfilename]
    if layout.appendonly and layout.multipart:
        aof_dir = new / layout.appenddirname
        aof_dir.mkdir()
        base = f"{layout.appendfilename}.1.base.rdb"
        _link_or_copy(rdb, aof_dir / base)
        manifest = aof_dir / f"{layout.appendfilename}.manifest"
        manifest.write_text(f"file {base} seq 1 type b\n")
        for path in (manifest, aof_dir / base):
            _own(path, uid, gid, mode)
        _own(aof_dir, uid, gid, 0o755 if mode & 0o004 else 0o750)
        fsync_tree(new)
        return [n for n in clear if n != layout.appenddirname]
    if layout.appendonly:
        _link_or_copy(rdb, new / layout.appendfilename)  # an RDB is a valid AOF: the RDB preamble
        _own(new / layout.appendfilename, uid, gid, mode)
        fsync_tree(new)
        return [n for n in clear if n != layout.appendfilename]
    fsync_tree(new)
    return clear
