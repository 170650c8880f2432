"""What changed between two views of the same source: pure functions from (before, after) to a diff.

Redis: per database and prefix, the keys added, removed and changed (the content hash of
the RDB parser differs; between a set and a live instance values are not read, so changed
keys are not told apart from unchanged ones), with a few example keys. Qdrant: collections
added and removed; for the others the point count before and after, and whether the
content, the vectors or the payload indexes changed. Files: added, removed, changed (sha256;
a secret by its keyed digest, or size, never by content shown).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bdr.inspect.content import Collection, FileItem, FilesContent, QdrantContent, key_text, prefix_of
from bdr.inspect.files import secret_changed
from bdr.inspect.redis import KeyMap
from bdr.repository import ObjectCipher

EXAMPLES = 5


@dataclass(slots=True)
class PrefixChange:
    db: int
    prefix: str
    added: int = 0
    removed: int = 0
    changed: int | None = 0
    """None: values were not compared (a live side)."""
    unchanged: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def note(self, kind: str, key: bytes) -> None:
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES:
            shown.append(key_text(key))

    @property
    def any(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {"db": self.db, "prefix": self.prefix, "added": self.added, "removed": self.removed,
                "changed": self.changed, "unchanged": self.unchanged, "examples": self.examples}


@dataclass(slots=True)
class RedisDiff:
    changes: list[PrefixChange]
    values_compared: bool

    @property
    def added(self) -> int:
        return sum(c.added for c in self.changes)

    @property
    def removed(self) -> int:
        return sum(c.removed for c in self.changes)

    @property
    def changed(self) -> int | None:
        return sum(c.changed or 0 for c in self.changes) if self.values_compared else None

    @property
    def same(self) -> bool:
        return not any(c.any for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed,
                "values_compared": self.values_compared, "same": self.same,
                "prefixes": [c.to_dict() for c in self.changes if c.any]}


def redis_diff(before: KeyMap, after: KeyMap, separator: str = ":") -> RedisDiff:
    """Keys added, removed, changed per (db, prefix); values compared when both sides have content hashes."""
    compared = all(i.hash is not None for side in (before, after) for keys in side.values() for i in keys.values())
    rows: dict[tuple[int, str], PrefixChange] = {}

    def row(db: int, key: bytes) -> PrefixChange:
        prefix = prefix_of(key, separator)
        found = rows.get((db, prefix))
        if found is None:
            found = rows[(db, prefix)] = PrefixChange(db, prefix, changed=0 if compared else None)
        return found

    for db in sorted(set(before) | set(after)):
        old, new = before.get(db, {}), after.get(db, {})
        for key in sorted(set(old) | set(new)):
            change = row(db, key)
            if key not in old:
                change.added += 1
                change.note("added", key)
            elif key not in new:
                change.removed += 1
                change.note("removed", key)
            elif compared and (old[key].hash != new[key].hash or old[key].type != new[key].type):
                change.changed = (change.changed or 0) + 1
                change.note("changed", key)
            else:
                change.unchanged += 1
    ordered = sorted(rows.values(), key=lambda c: (c.db, -(c.added + c.removed + (c.changed or 0)), c.prefix))
    return RedisDiff(ordered, compared)


@dataclass(frozen=True, slots=True)
class CollectionChange:
    name: str
    points_before: int | None
    points_after: int | None
    content: str
    """``same``, ``changed`` or ``not compared`` (a live side has no content hash)."""
    vectors_changed: bool
    indexes_added: tuple[str, ...] = ()
    indexes_removed: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return (self.points_before != self.points_after or self.content == "changed" or self.vectors_changed
                or bool(self.indexes_added or self.indexes_removed))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "points_before": self.points_before, "points_after": self.points_after,
                "content": self.content, "vectors_changed": self.vectors_changed,
                "payload_indexes_added": list(self.indexes_added),
                "payload_indexes_removed": list(self.indexes_removed)}


@dataclass(frozen=True, slots=True)
class QdrantDiff:
    added: tuple[Collection, ...]
    removed: tuple[Collection, ...]
    common: tuple[CollectionChange, ...]
    aliases_changed: bool

    @property
    def same(self) -> bool:
        return not (self.added or self.removed or self.aliases_changed or any(c.any for c in self.common))

    def to_dict(self) -> dict[str, Any]:
        return {"same": self.same, "collections_added": [c.to_dict() for c in self.added],
                "collections_removed": [c.to_dict() for c in self.removed],
                "collections": [c.to_dict() for c in self.common], "aliases_changed": self.aliases_changed}


def qdrant_diff(before: QdrantContent, after: QdrantContent) -> QdrantDiff:
    names_before, names_after = set(before.collections), set(after.collections)
    common = []
    for name in sorted(names_before & names_after):
        old, new = before.collections[name], after.collections[name]
        if old.content_hash and new.content_hash:
            content = "same" if old.content_hash == new.content_hash else "changed"
        else:
            content = "not compared"
        common.append(CollectionChange(
            name, old.points, new.points, content, old.vectors != new.vectors,
            tuple(sorted(set(new.indexes) - set(old.indexes))), tuple(sorted(set(old.indexes) - set(new.indexes))),
        ))
    return QdrantDiff(
        tuple(after.collections[n] for n in sorted(names_after - names_before)),
        tuple(before.collections[n] for n in sorted(names_before - names_after)),
        tuple(common), before.aliases != after.aliases,
    )


@dataclass(frozen=True, slots=True)
class FileChange:
    path: str
    change: str
    """``added``, ``removed``, ``changed`` or ``unknown`` (a secret that could not be compared)."""
    secret: bool
    size_before: int | None = None
    size_after: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "change": self.change, "secret": self.secret, "size_before": self.size_before,
                "size_after": self.size_after}


@dataclass(frozen=True, slots=True)
class FilesDiff:
    changes: tuple[FileChange, ...]
    unchanged: int

    @property
    def same(self) -> bool:
        return not any(c.change != "unknown" for c in self.changes)

    def count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.change == kind)

    def to_dict(self) -> dict[str, Any]:
        return {"same": self.same, "added": self.count("added"), "removed": self.count("removed"),
                "changed": self.count("changed"), "not_compared": self.count("unknown"), "unchanged": self.unchanged,
                "files": [c.to_dict() for c in self.changes]}


def _file_changed(old: FileItem, new: FileItem, cipher: ObjectCipher | None) -> bool | None:
    if old.secret or new.secret:
        return secret_changed(old, new, cipher)
    return old.sha256 != new.sha256 or old.size != new.size


def files_diff(before: FilesContent, after: FilesContent, cipher: ObjectCipher | None = None) -> FilesDiff:
    changes: list[FileChange] = []
    unchanged = 0
    for path in sorted(set(before.files) | set(after.files)):
        old, new = before.files.get(path), after.files.get(path)
        if old is None and new is not None:
            changes.append(FileChange(path, "added", new.secret, None, new.size))
        elif new is None and old is not None:
            changes.append(FileChange(path, "removed", old.secret, old.size, None))
        elif old is not None and new is not None:
            changed = _file_changed(old, new, cipher)
            if changed is None:
                changes.append(FileChange(path, "unknown", True, old.size, new.size))
            elif changed:
                changes.append(FileChange(path, "changed", old.secret, old.size, new.size))
            else:
                unchanged += 1
    return FilesDiff(tuple(changes), unchanged)


Diff = RedisDiff | QdrantDiff | FilesDiff
