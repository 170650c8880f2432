"""``bdr find PATTERN``: which backup sets hold a key, a collection or a file, newest first.

``PATTERN`` is a glob as Redis ``MATCH`` and the shell understand it (``user:*``,
``session:4?``, ``*.env``), matched against Redis key names, Qdrant collection names (and
aliases) and the paths of configuration sets. Qdrant and configuration sets answer from
their manifests; a Redis set is fetched (checked) and its RDB parsed, one set at a time, so
``--last N`` bounds the work. Safety backups are searched too (they are where data from just
before a restore is); damaged sets are skipped and named.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bdr.inspect.content import key_text
from bdr.inspect.fetch import OpenedSet, fetched
from bdr.inspect.redis import matching, set_keys
from bdr.repository import BackupSet, ObjectCipher, Repository

EXAMPLES = 10


@dataclass(slots=True)
class Hit:
    """One set that holds matches."""

    backup: BackupSet
    matches: int
    examples: list[str] = field(default_factory=list)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        m = self.backup.manifest
        return {"id": m.id, "source": m.source, "instance": m.instance, "time": m.finished_at,
                "tags": list(m.tags), "matches": self.matches, "examples": self.examples, "detail": self.detail}


def matcher(pattern: str) -> Callable[[str], bool]:
    """Glob matching, case-sensitive like Redis ``MATCH``."""
    return lambda text: fnmatch.fnmatchcase(text, pattern)


def _redis_hit(opened: OpenedSet, match: Callable[[str], bool], db: int | None) -> Hit | None:
    with fetched(opened, names=("dump.rdb",) if _has_rdb(opened.backup) else ()) as files:
        found = list(matching(set_keys(files), match, db))
    if not found:
        return None
    examples = [f"db{n} {key_text(k)} ({info.type})" for n, k, info in found[:EXAMPLES]]
    return Hit(opened.backup, len(found), examples)


def _has_rdb(backup: BackupSet) -> bool:
    return any(o.name == "dump.rdb" for o in backup.manifest.objects)


def _qdrant_hit(backup: BackupSet, match: Callable[[str], bool]) -> Hit | None:
    collections = backup.manifest.facts.get("collections") or {}
    aliases = backup.manifest.facts.get("aliases") or {}
    names = [n for n in sorted(collections) if match(n)]
    names += [f"{a} (alias of {c})" for a, c in sorted(aliases.items()) if match(a)]
    if not names:
        return None
    points = sum(int((collections.get(n) or {}).get("points") or 0) for n in names if n in collections)
    return Hit(backup, len(names), names[:EXAMPLES], f"{points} points")


def _files_hit(backup: BackupSet, match: Callable[[str], bool]) -> Hit | None:
    paths = [f.path + (" (secret)" if f.secret else "") for f in backup.manifest.files
             if match(f.path) or match(f.path.rsplit("/", 1)[-1])]
    return Hit(backup, len(paths), paths[:EXAMPLES]) if paths else None


def candidates(sets: Sequence[BackupSet], instance: str | None = None, last: int | None = None) -> list[BackupSet]:
    """The sets to search, newest first: whole-system parents left out (their members are searched)."""
    chosen = [b for b in sets if b.source != "all" and (instance is None or b.manifest.instance == instance)]
    return chosen[:last] if last else chosen


def search(repo: Repository, sets: Sequence[BackupSet], pattern: str, *, cipher: ObjectCipher | None,
           db: int | None = None) -> Iterator[Hit]:
    """The sets of ``sets`` (newest first) holding a match of ``pattern``."""
    match = matcher(pattern)
    for backup in sets:
        if backup.source == "redis":
            hit = _redis_hit(OpenedSet(repo, backup, cipher), match, db)
        elif backup.source == "qdrant":
            hit = _qdrant_hit(backup, match)
        elif backup.source == "config":
            hit = _files_hit(backup, match)
        else:
            hit = None
        if hit is not None:
            yield hit
