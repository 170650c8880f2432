"""Bases: the backup sets a point-in-time restore starts from, and where each joins the archived stream.

A restore to ``T`` loads a *base* (an RDB snapshot) and replays the archived stream from the
base's replication offset to ``T``. Any good backup set of the instance is a base when its
snapshot says which offset of which stream it is:

- the archiver's own full syncs: sets with the ``archive-base`` tag, method ``replication``,
  whose manifest records ``facts.archive_base`` (replication id, offset, the stream's
  database at that offset, and when the master sent ``+FULLRESYNC``);
- every ordinary ``bdr backup redis`` taken while the archiver was connected: Redis writes
  its replication id and offset into the RDB's header (``repl-id``, ``repl-offset``,
  ``repl-stream-db``) whenever it has a replication backlog, and bdr's content digest keeps
  those fields in the manifest (``facts.content.aux``). The scheduled backups are bases too,
  so a restore replays at most the stream since the last backup.

A base *joins* the archive when a segment of its stream starts at or covers its offset. When
the snapshot's state is known to hold (``at_us``, an upper bound) it is the earlier of: the
set's finish (the BGSAVE had forked by then), the ``+FULLRESYNC`` of an archiver's base, the
last mark of the segment holding the offset.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdr.engines.redis.content import digest_facts, keyspace_of, record
from bdr.engines.redis.info import DIGEST_UNAVAILABLE, rdb_version
from bdr.repository import BackupSet, ObjectCipher, Repository
from bdr.repository.manifest import Manifest
from bdr.repository.retention import is_good, is_safety

logger = logging.getLogger(__name__)

BASE_TAG = "archive-base"
BASE_METHOD = "replication"


@dataclass(frozen=True, slots=True)
class JoinPoint:
    """Where a snapshot sits in the replication stream, and a time by which its state held."""

    replid: str
    offset: int
    stream_db: int
    at_us: int

    def to_state(self) -> dict[str, Any]:
        return {"replid": self.replid, "offset": self.offset, "stream_db": self.stream_db, "at_us": self.at_us}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> JoinPoint:
        return cls(str(data["replid"]), int(data["offset"]), int(data.get("stream_db", 0)), int(data["at_us"]))


def _us(manifest: Manifest) -> int:
    return int(manifest.finished.timestamp() * 1_000_000)


def join_point(manifest: Manifest) -> JoinPoint | None:
    """The join point a set's manifest records (the archiver's facts, else the RDB header's); None: not a base."""
    own = manifest.facts.get("archive_base")
    if isinstance(own, dict) and own.get("replid"):
        try:
            point = JoinPoint.from_state(own)
        except (KeyError, TypeError, ValueError):
            return None
        return JoinPoint(point.replid, point.offset, point.stream_db, min(point.at_us, _us(manifest)))
    aux = (manifest.facts.get("content") or {}).get("aux") or {}
    replid, offset = aux.get("repl-id"), aux.get("repl-offset")
    if not replid or offset in (None, "") or len(str(replid)) != 40:
        return None
    try:
        position = int(offset)
        db = int(aux.get("repl-stream-db") or 0)
    except ValueError:
        return None
    if position < 0:
        return None
    return JoinPoint(str(replid), position, max(0, db), _us(manifest))


@dataclass(frozen=True, slots=True)
class Base:
    """A backup set and its join point."""

    backup: BackupSet
    join: JoinPoint

    @property
    def id(self) -> str:
        return self.backup.id


def bases_of(repo: Repository, instance: str) -> list[Base]:
    """The good (not safety, not failed by verify) sets of ``instance`` that record a join point, newest first."""
    out = []
    for backup in repo.sets("redis"):
        if backup.manifest.instance != instance or is_safety(backup) or not is_good(backup):
            continue
        point = join_point(backup.manifest)
        if point is not None:
            out.append(Base(backup, point))
    return out


@dataclass(frozen=True, slots=True)
class StagedBase:
    """A full sync's RDB received by the archiver, waiting to be stored as a set."""

    rdb: Path
    join: JoinPoint
    facts: dict[str, Any]
    """Server facts taken when the archiver connected (version, run id, dbfilename)."""


def write_base(repo: Repository, instance: str, staged: StagedBase, cipher: ObjectCipher | None,
               lock_wait: float) -> Manifest:
    """Store a full sync's RDB as a backup set tagged ``archive-base``, with its content digest and join point."""
    content = digest_facts(staged.rdb)
    dbfilename = str(staged.facts.get("dbfilename") or "dump.rdb")
    facts: dict[str, Any] = {
        **{k: v for k, v in staged.facts.items() if k != "dbfilename"},
        "digest": DIGEST_UNAVAILABLE, "rdb_version": rdb_version(staged.rdb), "aof": False, "replication": True,
        "dbfilename": dbfilename, "appenddirname": str(staged.facts.get("appenddirname") or "appendonlydir"),
        "archive_base": staged.join.to_state(),
    }
    record(facts, content)
    if content.facts is not None:
        facts["keyspace"] = keyspace_of(content.facts)
    with repo.lock(f"archive base of redis {instance}", wait=lock_wait):
        writer = repo.new_set("redis", instance, BASE_METHOD, (BASE_TAG,), cipher)
        with writer:
            writer.add_file(staged.rdb, dbfilename)
            writer.facts.update(facts)
            manifest = writer.commit()
    logger.info("stored base %s of redis %s (stream %s at offset %d) in %s", manifest.id, instance,
                staged.join.replid, staged.join.offset, repo.url)
    return manifest
