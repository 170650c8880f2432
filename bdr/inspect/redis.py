"""What a Redis set holds, read offline: the RDB parser first, a temporary redis-server for sizes.

The set's RDB is parsed with bdr's own parser (:func:`bdr.engines.redis.rdb.key_hashes`):
every key with its type and content hash, per database, without loading anything. What a
file alone cannot tell cheaply, the memory each key takes and which keys carry a TTL, is
asked of a private temporary redis-server loaded from the set
(:func:`bdr.engines.redis.temporary.temporary_instance`: loopback only, a random password,
killed after): ``MEMORY USAGE`` and ``PTTL``, pipelined. A set without an RDB (only an AOF)
is read from the temporary server alone (``SCAN`` + ``TYPE``). The production instance is
never touched; only ``bdr diff SET live`` lists a live instance's keys (``SCAN``, read-only).
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bdr.clients import redis_client, redis_errors
from bdr.config import RedisInstance
from bdr.engines.redis.rdb import key_hashes
from bdr.engines.redis.temporary import DataFiles, temporary_instance
from bdr.inspect.content import DEFAULT_SEPARATOR, BigKey, PrefixStats, RedisContent, key_text, prefix_of

logger = logging.getLogger(__name__)

BATCH = 1000
SCAN_COUNT = 1000


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One key of a dataset: its type and, from an RDB, its content hash (None from a live scan)."""

    type: str
    hash: str | None = None


KeyMap = dict[int, dict[bytes, KeyInfo]]
"""db -> key -> what is known of it."""


def _tally(keymap: KeyMap, separator: str, how: str) -> RedisContent:
    content = RedisContent(how=how)
    for db, keys in keymap.items():
        view = content.db(db)
        for key, info in keys.items():
            view.keys += 1
            view.types[info.type] = view.types.get(info.type, 0) + 1
            prefix = prefix_of(key, separator)
            stats = view.prefixes.get(prefix)
            if stats is None:
                stats = view.prefixes[prefix] = PrefixStats(prefix)
            stats.keys += 1
            stats.types[info.type] = stats.types.get(info.type, 0) + 1
    return content


def rdb_keys(rdb: Path) -> KeyMap:
    """Every key of an RDB file with its type and content hash (bdr's parser; nothing is loaded)."""
    keymap: KeyMap = {}
    for (db, key), found in key_hashes(rdb).items():
        keymap.setdefault(db, {})[key] = KeyInfo(found.type, found.hash)
    return keymap


def _scan(client: redis.Redis, with_types: bool = True) -> dict[bytes, KeyInfo]:
    keys: dict[bytes, KeyInfo] = {}
    batch: list[bytes] = []

    def flush() -> None:
        if not with_types:
            keys.update({k: KeyInfo("?") for k in batch})
        else:
            pipe = client.pipeline(transaction=False)
            for k in batch:
                pipe.type(k)
            for k, kind in zip(batch, pipe.execute(), strict=True):
                name = kind.decode() if isinstance(kind, bytes) else str(kind)
                if name != "none":
                    keys[k] = KeyInfo(name)
        batch.clear()

    for key in client.scan_iter(count=SCAN_COUNT):
        batch.append(bytes(key))
        if len(batch) >= BATCH:
            flush()
    flush()
    return keys


def _databases(client: redis.Redis) -> list[int]:
    info: Mapping[str, Any] = client.info("keyspace")
    return sorted(int(name[2:]) for name in info if name.startswith("db") and name[2:].isdigit())


def scan_keys(instance: RedisInstance, with_types: bool = True) -> KeyMap:
    """The keys of a running server, per database, by ``SCAN`` (read-only; ``TYPE`` of each with ``with_types``)."""
    keymap: KeyMap = {}
    with redis_errors(instance, "list the keys of"):
        for db in _databases(redis_client(instance)):
            keymap[db] = _scan(redis_client(instance, db=db), with_types)
    return keymap


def _measure(instance: RedisInstance, content: RedisContent, keymap: KeyMap, biggest: int, separator: str) -> None:
    """``MEMORY USAGE`` and ``PTTL`` of every key, from the temporary server (sizes per prefix, TTL shares)."""
    for db, keys in keymap.items():
        view = content.db(db)
        client = redis_client(instance, db=db)
        top: list[tuple[int, str, str]] = []
        with_ttl = 0
        for prefix in view.prefixes.values():
            prefix.with_ttl, prefix.bytes = 0, 0
        names = list(keys)
        for start in range(0, len(names), BATCH):
            chunk = names[start:start + BATCH]
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.execute_command("PTTL", key)
                pipe.execute_command("MEMORY", "USAGE", key)
            with redis_errors(instance, "measure the keys in"):
                replies = pipe.execute(raise_on_error=False)
            for i, key in enumerate(chunk):
                ttl, size = replies[2 * i], replies[2 * i + 1]
                stats = view.prefixes[prefix_of(key, separator)]
                if not isinstance(ttl, int) or ttl == -2:
                    view.expired += 1
                    continue
                if ttl >= 0:
                    with_ttl += 1
                    stats.with_ttl = (stats.with_ttl or 0) + 1
                if isinstance(size, int):
                    stats.bytes = (stats.bytes or 0) + size
                    entry = (size, key_text(key), keys[key].type)
                    if len(top) < biggest:
                        heapq.heappush(top, entry)
                    elif biggest and entry > top[0]:
                        heapq.heapreplace(top, entry)
        view.expires = with_ttl
        view.biggest = [BigKey(k, t, s) for s, k, t in sorted(top, reverse=True)]
    content.sizes = True


def read_set(files: Path, facts: Mapping[str, Any], *, separator: str = DEFAULT_SEPARATOR, sizes: bool = True,
             biggest: int = 10) -> RedisContent:
    """What the set's files hold; ``sizes``: also measure them in a temporary redis-server."""
    data = DataFiles.find(files)
    if data.rdb is not None:
        keymap = rdb_keys(data.rdb)
        content = _tally(keymap, separator, "the set's RDB, read by bdr's parser")
        recorded = facts.get("content") if isinstance(facts.get("content"), Mapping) else None
        expires = dict((recorded or {}).get("expires") or {})
        for db, view in content.dbs.items():
            if str(db) in expires:
                view.expires = int(expires[str(db)])
        if not sizes:
            return content
        with temporary_instance(files, load_from="rdb") as server:
            _measure(server.instance, content, keymap, biggest, separator)
        content.how += " and a temporary redis-server loaded from it (sizes, TTLs)"
        return content
    with temporary_instance(files) as server:
        keymap = scan_keys(server.instance)
        content = _tally(keymap, separator, "a temporary redis-server loaded from the set's AOF")
        _measure(server.instance, content, keymap, biggest, separator)
    return content


def set_keys(files: Path) -> KeyMap:
    """Every key of a set: from its RDB when it has one, else from a temporary server loaded from its AOF."""
    data = DataFiles.find(files)
    if data.rdb is not None:
        return rdb_keys(data.rdb)
    with temporary_instance(files) as server:
        return scan_keys(server.instance)


def live_content(instance: RedisInstance, separator: str = DEFAULT_SEPARATOR) -> tuple[RedisContent, KeyMap]:
    """A live instance's keys by ``SCAN`` (with ``TYPE``), tallied like a set's."""
    keymap = scan_keys(instance)
    return _tally(keymap, separator, f"a SCAN of the live Redis {instance.name} ({instance.url})"), keymap


def matching(keymap: KeyMap, match: Any, db: int | None = None) -> Iterator[tuple[int, bytes, KeyInfo]]:
    """The keys ``match(text)`` accepts, in database and key order."""
    for number in sorted(keymap):
        if db is not None and number != db:
            continue
        for key in sorted(keymap[number]):
            if match(key_text(key)):
                yield number, key, keymap[number][key]
