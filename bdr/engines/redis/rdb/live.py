"""Per-key hashes read from a live server, to compare a restored Redis with its backup.

The file's digest (:mod:`.digest`) records a sample of keys with their per-key hashes.
After a restore, :func:`live_key_hashes` reads those keys from the running server with
ordinary read commands (``TYPE``, ``PEXPIRETIME``, ``GET``/``GETRANGE``, ``LRANGE``,
``SSCAN``, ``ZRANGE ... WITHSCORES``, ``HSCAN``, ``XINFO STREAM ... FULL COUNT 0``; never
``DEBUG``) and computes the same canonical per-key hash (:mod:`.canonical`); equal hashes
mean the key holds what the backup held, whatever encoding the server chose.
:func:`compare_sample` does the whole check for a :class:`~.digest.ContentDigest`.

A key of a module type (``TYPE`` names something other than the six core types) is "not
comparable": the file holds the module's serialised form, which commands do not show.
Reads are chunked (``LRANGE``/``ZRANGE`` by index, ``SCAN`` cursors, ``GETRANGE`` for large
strings) so a big key never blocks the server for long; the keys should not change while
they are read (a freshly restored server).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import redis

from bdr.engines.redis.rdb import canonical as cn
from bdr.engines.redis.rdb.digest import ContentDigest, KeyHash
from bdr.errors import ServiceError

CHUNK = 1_000
STRING_CHUNK = 4 << 20


class LiveStatus(StrEnum):
    PRESENT = "present"
    MISSING = "missing"
    NOT_COMPARABLE = "not comparable"


@dataclass(frozen=True, slots=True)
class LiveKey:
    """One key as read from the server: its hash when present and of a core type."""

    db: int
    key: bytes
    status: LiveStatus
    type: str | None = None
    hash: str | None = None


@dataclass(frozen=True, slots=True)
class SampleComparison:
    """The sample of a backup's digest against a live server."""

    matched: tuple[KeyHash, ...]
    mismatched: tuple[tuple[KeyHash, LiveKey], ...]
    missing: tuple[KeyHash, ...]
    not_comparable: tuple[KeyHash, ...]

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.missing

    @property
    def detail(self) -> str:
        """One line for a check's detail: how many sampled keys are equal, and the first of each problem."""
        compared = len(self.matched) + len(self.mismatched) + len(self.missing)
        text = f"{len(self.matched)} of {compared} sampled keys equal"
        if self.mismatched:
            first = self.mismatched[0][0]
            text += f", {len(self.mismatched)} differ (e.g. db {first.db} {first.key!r})"
        if self.missing:
            text += f", {len(self.missing)} missing (e.g. db {self.missing[0].db} {self.missing[0].key!r})"
        if self.not_comparable:
            text += f", {len(self.not_comparable)} of module types not comparable"
        return text


def _db_client(client: redis.Redis, db: int) -> redis.Redis:
    """A client to the same server for ``db`` that returns bytes and speaks RESP2 (what the parsing expects)."""
    kwargs = {name: value for name, value in client.connection_pool.connection_kwargs.items()
              if not name.startswith("maint_notifications")}  # redis-py 8 ties those to RESP3
    kwargs.update(db=db, decode_responses=False, protocol=2)
    pool = redis.ConnectionPool(connection_class=client.connection_pool.connection_class, **kwargs)
    return redis.Redis(connection_pool=pool)


def _pairs(flat: list[Any]) -> dict[bytes, Any]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def _sid(raw: bytes) -> cn.StreamID:
    ms, _, seq = raw.partition(b"-")
    return int(ms), int(seq)


def _string(c: redis.Redis, key: bytes) -> bytes | None:
    size = int(c.strlen(key))
    if size <= STRING_CHUNK:
        return cast(bytes | None, c.get(key))
    parts = [cast(bytes, c.getrange(key, start, min(start + STRING_CHUNK, size) - 1))
             for start in range(0, size, STRING_CHUNK)]
    return b"".join(parts)


def _range(c: redis.Redis, command: str, key: bytes, *extra: str) -> Iterator[bytes]:
    """LRANGE or ZRANGE (WITHSCORES: flat member, score) by index, CHUNK elements at a time."""
    start = 0
    while True:
        batch = cast(list[Any], c.execute_command(command, key, start, start + CHUNK - 1, *extra))
        for item in batch:  # RESP3 (or a client callback) gives [member, score] pairs: flatten them
            if isinstance(item, list | tuple):
                yield from (x if isinstance(x, bytes) else repr(float(x)).encode() for x in item)
            else:
                yield item
        if len(batch) < CHUNK * (2 if extra else 1):
            return
        start += CHUNK


def _set_members(c: redis.Redis, key: bytes) -> set[bytes]:
    """SSCAN to the end (a member may come twice: the set removes duplicates)."""
    members: set[bytes] = set()
    cursor = 0
    while True:
        cursor, batch = cast(tuple[int, list[bytes]], c.sscan(key, cursor, count=CHUNK))
        members.update(batch)
        if int(cursor) == 0:
            return members


def _hash_fields(c: redis.Redis, key: bytes) -> dict[bytes, bytes]:
    fields: dict[bytes, bytes] = {}
    cursor = 0
    while True:
        cursor, batch = cast(tuple[int, dict[bytes, bytes]], c.hscan(key, cursor, count=CHUNK))
        fields.update(batch)
        if int(cursor) == 0:
            return fields


def _stream(c: redis.Redis, key: bytes) -> cn.Stream:
    info = _pairs(cast(list[Any], c.execute_command("XINFO", "STREAM", key, "FULL", "COUNT", 0)))
    entries = tuple((_sid(eid), tuple(zip(fields[::2], fields[1::2], strict=True)))
                    for eid, fields in info[b"entries"])
    groups = []
    for raw_group in info[b"groups"]:
        g = _pairs(raw_group)
        pending = tuple(cn.StreamPending(_sid(p[0]), int(p[2]), int(p[3])) for p in g[b"pending"])
        consumers = []
        for raw_consumer in g[b"consumers"]:
            k = _pairs(raw_consumer)
            seen = int(k[b"seen-time"])
            consumers.append(cn.StreamConsumer(k[b"name"], seen, int(k.get(b"active-time", seen)),
                                               tuple(_sid(p[0]) for p in k[b"pending"])))
        read = g.get(b"entries-read")
        groups.append(cn.StreamGroup(g[b"name"], _sid(g[b"last-delivered-id"]),
                                     cn.INVALID_ENTRIES_READ if read is None else int(read) & cn.MASK64,
                                     pending, tuple(consumers)))
    return cn.Stream(entries, int(info[b"length"]), _sid(info[b"last-generated-id"]),
                     _sid(info[b"recorded-first-entry-id"]), _sid(info[b"max-deleted-entry-id"]),
                     int(info[b"entries-added"]), tuple(groups))


def _value(c: redis.Redis, key: bytes, kind: str) -> tuple[int, bytes] | None:
    """(element count, canonical value) of a key of a core type; None when it vanished meanwhile."""
    if kind == "string":
        data = _string(c, key)
        return None if data is None else (1, cn.string_value(data))
    if kind == "list":
        elements = list(_range(c, "LRANGE", key))
        return len(elements), cn.list_value(elements)
    if kind == "set":
        members = _set_members(c, key)
        return len(members), cn.set_value(members)
    if kind == "hash":
        fields = _hash_fields(c, key)
        return len(fields), cn.hash_value(fields.items())
    if kind == "zset":
        flat = list(_range(c, "ZRANGE", key, "WITHSCORES"))
        scored = [(m, float(s)) for m, s in zip(flat[::2], flat[1::2], strict=True)]
        return len(scored), cn.zset_value(scored)
    return 1, cn.stream_value(_stream(c, key))


def _read_db(c: redis.Redis, db: int, keys: list[bytes]) -> Iterator[LiveKey]:
    pipe = c.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.execute_command("PEXPIRETIME", key)
    replies = pipe.execute()
    for i, key in enumerate(keys):
        kind = cast(bytes, replies[2 * i]).decode()
        expire = int(replies[2 * i + 1])
        if kind == "none" or expire == -2:
            yield LiveKey(db, key, LiveStatus.MISSING)
            continue
        if kind not in cn.TYPE_TAGS:
            yield LiveKey(db, key, LiveStatus.NOT_COMPARABLE, kind)
            continue
        value = _value(c, key, kind)
        if value is None or value[0] == 0:
            yield LiveKey(db, key, LiveStatus.MISSING)
            continue
        h = cn.key_hash(db, key, None if expire == -1 else expire, cn.TYPE_TAGS[kind], value[1])
        yield LiveKey(db, key, LiveStatus.PRESENT, kind, cn.hash_hex(h))


ClientFor = redis.Redis | Callable[[int], redis.Redis]
"""A client to the server (any db), or a function giving a client for a db number."""


def live_key_hashes(client: ClientFor, sample: Iterable[tuple[int, bytes]]) -> list[LiveKey]:
    """The per-key hash of each (db, key) of ``sample`` as the server holds it, in that order."""
    wanted = list(sample)
    by_db: dict[int, list[bytes]] = defaultdict(list)
    for db, key in wanted:
        by_db[db].append(key)
    found: dict[tuple[int, bytes], LiveKey] = {}
    where = "Redis"
    try:
        for db, keys in by_db.items():
            given = client if isinstance(client, redis.Redis) else client(db)
            kwargs = given.connection_pool.connection_kwargs
            where = f"Redis at {kwargs.get('host', kwargs.get('path'))}:{kwargs.get('port', '')}"
            c = _db_client(given, db)
            try:
                for live in _read_db(c, db, keys):
                    found[(db, live.key)] = live
            finally:
                c.close()
    except redis.RedisError as exc:
        raise ServiceError(detail=f"cannot read the sampled keys from {where}: {exc}") from exc
    return [found[item] for item in wanted]


def compare_sample(client: ClientFor, digest: ContentDigest | Mapping[str, Any]) -> SampleComparison:
    """Read the digest's sample (a :class:`ContentDigest` or its manifest facts) from the server and compare."""
    record = digest if isinstance(digest, ContentDigest) else ContentDigest.from_facts(digest)
    live = live_key_hashes(client, [(k.db, k.key) for k in record.sample])
    matched: list[KeyHash] = []
    mismatched: list[tuple[KeyHash, LiveKey]] = []
    missing: list[KeyHash] = []
    not_comparable: list[KeyHash] = []
    for want, got in zip(record.sample, live, strict=True):
        if want.type not in cn.TYPE_TAGS or got.status is LiveStatus.NOT_COMPARABLE:
            not_comparable.append(want)
        elif got.status is LiveStatus.MISSING:
            missing.append(want)
        elif got.hash == want.hash:
            matched.append(want)
        else:
            mismatched.append((want, got))
    return SampleComparison(tuple(matched), tuple(mismatched), tuple(missing), tuple(not_comparable))
