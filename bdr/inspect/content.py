"""What a set (or a live service) holds, as typed views: Redis databases, Qdrant collections, files.

Keys are bytes in Redis; they are shown as text with :func:`key_text` (invalid UTF-8 and
control characters escaped), grouped by *prefix*: the part up to and including the first
separator (``user:`` for ``user:42``; ``(no prefix)`` when there is none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NO_PREFIX = "(no prefix)"
DEFAULT_SEPARATOR = ":"


def key_text(key: bytes) -> str:
    """A key name for a person: UTF-8, with undecodable bytes and control characters escaped."""
    text = key.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def prefix_of(key: bytes, separator: str = DEFAULT_SEPARATOR) -> str:
    """``user:`` for ``user:42`` (``(no prefix)`` without the separator)."""
    sep = separator.encode()
    if not sep or sep not in key:
        return NO_PREFIX
    return key_text(key[: key.index(sep) + len(sep)])


@dataclass(frozen=True, slots=True)
class BigKey:
    key: str
    type: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "type": self.type, "bytes": self.bytes}


@dataclass(slots=True)
class PrefixStats:
    """The keys of one prefix in one database."""

    prefix: str
    keys: int = 0
    with_ttl: int | None = None
    """Keys with an expiry (None: not known, no temporary server was used)."""
    bytes: int | None = None
    """Memory the keys take in Redis (``MEMORY USAGE``; None: not measured)."""
    types: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "keys": self.keys, "with_ttl": self.with_ttl, "bytes": self.bytes,
                "types": dict(sorted(self.types.items()))}


@dataclass(slots=True)
class RedisDb:
    """One database of a Redis dataset."""

    db: int
    keys: int = 0
    expires: int | None = None
    types: dict[str, int] = field(default_factory=dict)
    prefixes: dict[str, PrefixStats] = field(default_factory=dict)
    biggest: list[BigKey] = field(default_factory=list)
    expired: int = 0
    """Keys whose TTL ran out since the snapshot (the temporary server dropped them when read)."""

    @property
    def ttl_share(self) -> float | None:
        return None if self.expires is None or not self.keys else self.expires / self.keys

    def top_prefixes(self, limit: int) -> list[PrefixStats]:
        ranked = sorted(self.prefixes.values(), key=lambda p: (-p.keys, p.prefix))
        return ranked[:limit] if limit > 0 else ranked

    def to_dict(self, top: int = 0) -> dict[str, Any]:
        return {"db": self.db, "keys": self.keys, "expires": self.expires,
                "ttl_share": None if self.ttl_share is None else round(self.ttl_share, 4),
                "types": dict(sorted(self.types.items())), "expired_since": self.expired,
                "prefixes": [p.to_dict() for p in self.top_prefixes(top)], "prefix_count": len(self.prefixes),
                "biggest": [b.to_dict() for b in self.biggest]}


@dataclass(slots=True)
class RedisContent:
    """A Redis dataset, per database; ``how``: what read it (the RDB parser, a temporary server)."""

    dbs: dict[int, RedisDb] = field(default_factory=dict)
    how: str = ""
    sizes: bool = False
    """Memory sizes and per-prefix TTLs were measured (a temporary server loaded the set)."""

    def db(self, number: int) -> RedisDb:
        return self.dbs.setdefault(number, RedisDb(number))

    @property
    def keys(self) -> int:
        return sum(d.keys for d in self.dbs.values())

    def to_dict(self, top: int = 0) -> dict[str, Any]:
        return {"keys": self.keys, "how": self.how, "sizes": self.sizes,
                "dbs": [self.dbs[n].to_dict(top) for n in sorted(self.dbs)]}


@dataclass(frozen=True, slots=True)
class Vector:
    name: str
    kind: str
    size: int | None
    distance: str | None

    def describe(self) -> str:
        label = self.name or "(unnamed)"
        if self.kind == "sparse":
            return f"{label}: sparse"
        return f"{label}: {self.kind} {self.size}-d {self.distance or ''}".rstrip()


@dataclass(frozen=True, slots=True)
class Collection:
    """One Qdrant collection: points, vectors and payload indexes."""

    name: str
    points: int | None
    vectors: tuple[Vector, ...] = ()
    indexes: Mapping[str, str] = field(default_factory=dict)
    """Payload field -> index type (keyword, text, integer ...)."""
    content_hash: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "points": self.points,
                "vectors": [{"name": v.name, "kind": v.kind, "size": v.size, "distance": v.distance}
                            for v in self.vectors],
                "payload_indexes": dict(self.indexes), "content_hash": self.content_hash}


@dataclass(slots=True)
class QdrantContent:
    collections: dict[str, Collection] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    how: str = ""

    @property
    def points(self) -> int:
        return sum(c.points or 0 for c in self.collections.values())

    def to_dict(self) -> dict[str, Any]:
        return {"how": self.how, "points": self.points, "aliases": dict(self.aliases),
                "collections": [self.collections[n].to_dict() for n in sorted(self.collections)]}


@dataclass(frozen=True, slots=True)
class FileItem:
    """One file of a configuration set; a secret's content is never described, only that it is there."""

    path: str
    size: int
    secret: bool
    mode: int | None = None
    sha256: str | None = None
    """Plain files only (None for a secret)."""
    secret_digest: str | None = None
    """A secret's keyed digest from the manifest, to tell whether it changed; never printed."""

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "secret": self.secret,
                "mode": None if self.mode is None else f"{self.mode & 0o7777:04o}",
                "sha256": None if self.secret else self.sha256}


@dataclass(slots=True)
class FilesContent:
    files: dict[str, FileItem] = field(default_factory=dict)
    root: str | None = None
    how: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"how": self.how, "root": self.root, "files": [self.files[p].to_dict() for p in sorted(self.files)],
                "secrets": sum(1 for f in self.files.values() if f.secret)}


@dataclass(frozen=True, slots=True)
class MetricsContent:
    """A Prometheus set: its blocks and what the manifest says they hold (no need to open them)."""

    blocks: tuple[dict[str, Any], ...]
    series: int | None
    samples: int
    oldest_ms: int | None
    newest_ms: int | None
    version: str = ""
    how: str = "the manifest's facts"

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> MetricsContent:
        series = facts.get("series")
        return cls(tuple(dict(b) for b in facts.get("blocks") or ()), int(series) if series is not None else None,
                   int(facts.get("samples") or 0), facts.get("oldest_sample_ms"), facts.get("newest_sample_ms"),
                   str(facts.get("prometheus_version") or ""))

    def to_dict(self) -> dict[str, Any]:
        return {"how": self.how, "version": self.version, "series": self.series, "samples": self.samples,
                "oldest_sample_ms": self.oldest_ms, "newest_sample_ms": self.newest_ms, "blocks": list(self.blocks)}


Content = RedisContent | QdrantContent | FilesContent | MetricsContent
