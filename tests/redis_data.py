"""Test data for Redis: one key of every type (and encoding), and a byte-exact snapshot to compare.

:func:`load_every_type` writes strings (text, integers, binary keys and values, a large raw
string), hashes, lists, sets and sorted sets in their small and large encodings, a stream with
consumer groups, consumers and pending entries, a HyperLogLog, geo members, a bitmap, keys
with second- and millisecond-precision TTLs, into several databases.

:func:`dump_everything` reads every key of every database as ``DUMP`` payload plus absolute
expiry (``PEXPIRETIME``), so two snapshots compare equal exactly when the data is the same,
byte for byte, including stream groups and pending entries, and no matter how much time
passed between them (a relative ``PTTL`` would shrink). One exception: a set or hash in the
``hashtable`` encoding serialises its members in hash-table order, which depends on how the
table grew and on the server's random hash seed; for those the payload is the sorted members
(type and encoding included), so equal data compares equal across servers too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import redis

DEFAULT_DBS = (0, 1, 5)

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class KeyState:
    """One key as Redis serialises it: its DUMP payload (or canonical members) and absolute expiry (-1: none)."""

    payload: bytes
    expire_at_ms: int


Snapshot = dict[tuple[int, bytes], KeyState]
"""(db, key) -> state, for every key of every database."""


def client_for_db(client: redis.Redis, db: int) -> redis.Redis:
    """A client to the same server as ``client``, for database ``db``."""
    kwargs = dict(client.connection_pool.connection_kwargs)
    kwargs["db"] = db
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=client.connection_pool.connection_class,
                                                            **kwargs))


def _load_db(client: redis.Redis, prefix: str, db: int) -> list[bytes]:
    p = f"{prefix}db{db}:".encode()
    pipe = client.pipeline(transaction=False)
    keys: list[bytes] = []

    def key(name: str | bytes) -> bytes:
        full = p + (name.encode() if isinstance(name, str) else name)
        keys.append(full)
        return full

    # strings: embstr, int, raw, empty, binary key and value
    pipe.set(key("string:text"), "hello world")
    pipe.set(key("string:int"), 12345)
    pipe.set(key("string:large"), "x" * 10_000)
    pipe.set(key("string:empty"), b"")
    pipe.set(key(b"string:bin:\x00\xff\xfe\r\n*"), bytes(range(256)))
    pipe.set(key("string:unicode:\u00e9\u4e2d"), "caf\u00e9 \u4e2d\u6587".encode())
    # hashes: listpack and hashtable
    pipe.hset(key("hash:small"), mapping={"name": "ada", "age": "36", b"bin\x00": b"\xff\x00"})
    pipe.hset(key("hash:large"), mapping={f"field:{i}": f"value:{i}" * 3 for i in range(300)})
    # lists: small and quicklist with many nodes
    pipe.rpush(key("list:small"), "a", "b", "c", b"\x00\x01")
    pipe.rpush(key("list:large"), *[f"item:{i}" for i in range(2_000)])
    # sets: intset and hashtable
    pipe.sadd(key("set:ints"), *range(50))
    pipe.sadd(key("set:large"), *[f"member:{i}" for i in range(500)])
    # sorted sets: listpack and skiplist, with float scores
    pipe.zadd(key("zset:small"), {"one": 1, "two": 2.5, "minus": -3.25})
    pipe.zadd(key("zset:large"), {f"m:{i}": i / 7 for i in range(400)})
    # stream with two consumer groups, consumers and pending entries (some acknowledged)
    stream = key("stream:events")
    for i in range(20):
        pipe.xadd(stream, {"n": str(i), "payload": f"event {i}"}, id=f"{1_700_000_000_000 + i}-0")
    pipe.xgroup_create(stream, "workers", id="0")
    pipe.xgroup_create(stream, "audit", id="0")
    pipe.execute()
    client.xreadgroup("workers", "alice", {stream: ">"}, count=5)
    client.xreadgroup("workers", "bob", {stream: ">"}, count=3)
    client.xreadgroup("audit", "carol", {stream: ">"}, count=7)
    client.xack(stream, "workers", f"{1_700_000_000_000}-0", f"{1_700_000_000_001}-0")
    # HyperLogLog (dense after many members), geo, bitmap
    pipe.pfadd(key("hll:visitors"), *[f"visitor:{i}" for i in range(3_000)])
    pipe.geoadd(key("geo:cities"), (13.361389, 38.115556, "Palermo"))
    pipe.geoadd(p + b"geo:cities", (15.087269, 37.502669, "Catania"))
    pipe.setbit(key("bitmap:logins"), 7, 1)
    pipe.setbit(p + b"bitmap:logins", 100_000, 1)
    # TTLs: seconds, and milliseconds that are not whole seconds
    pipe.set(key("ttl:seconds"), "expires", ex=3_600)
    pipe.set(key("ttl:millis"), "expires", px=HOUR_MS + 123)
    pipe.hset(key("ttl:hash"), mapping={"a": "1"})
    pipe.pexpire(p + b"ttl:hash", 2 * HOUR_MS + 7)
    pipe.execute()
    return keys


def load_every_type(client: redis.Redis, *, prefix: str = "",
                    dbs: Iterable[int] = DEFAULT_DBS) -> dict[int, list[bytes]]:
    """Write one key of every type and encoding into each of ``dbs``; the keys written, per db.

    Key names are ``{prefix}db{N}:{type}:...`` so that ``prefix`` selects them with a
    pattern (``user:*``) and the same dataset can be loaded twice under two prefixes.
    """
    return {db: _load_db(client_for_db(client, db), prefix, db) for db in dbs}


def dbs_with_keys(client: redis.Redis) -> list[int]:
    keyspace = client.info("keyspace")
    return sorted(int(name[2:]) for name in keyspace if name.startswith("db"))


def dump_everything(client: redis.Redis, keys: Mapping[int, Iterable[bytes]] | None = None) -> Snapshot:
    """Every key of every database (or only ``keys``) as DUMP payload plus absolute expiry."""
    snapshot: Snapshot = {}
    wanted = keys if keys is not None else {db: None for db in dbs_with_keys(client)}
    for db, names in wanted.items():
        db_client = client_for_db(client, db)
        chosen = list(names) if names is not None else list(db_client.scan_iter(count=1000))
        for start in range(0, len(chosen), 500):
            batch = chosen[start:start + 500]
            pipe = db_client.pipeline(transaction=False)
            for name in batch:
                pipe.dump(name)
                pipe.execute_command("PEXPIRETIME", name)
                pipe.object("encoding", name)
                pipe.type(name)
            replies = pipe.execute()
            for i, name in enumerate(batch):
                payload, expire_at, encoding, kind = replies[4 * i:4 * i + 4]
                if payload is None:
                    continue
                if encoding == b"hashtable":
                    payload = _canonical(db_client, name, kind)
                snapshot[(db, name)] = KeyState(payload, int(expire_at))
    return snapshot


def _canonical(client: redis.Redis, name: bytes, kind: bytes) -> bytes:
    """A hashtable-encoded set or hash as its sorted members: independent of hash-table order."""
    if kind == b"set":
        members: list[bytes] = sorted(cast(set[bytes], client.smembers(name)))
    else:
        fields = cast(dict[bytes, bytes], client.hgetall(name))
        members = [b"%d:%s=%d:%s" % (len(f), f, len(v), v) for f, v in sorted(fields.items())]
    return b"hashtable " + kind + b"\n" + b"\n".join(b"%d:%s" % (len(m), m) for m in members)


def assert_same_data(actual: Snapshot, expected: Snapshot, ttl_slack_ms: int = 0) -> None:
    """Same keys and payloads; absolute expiries equal within ``ttl_slack_ms`` (key copies re-arm TTLs)."""
    missing = sorted(set(expected) - set(actual))[:5]
    extra = sorted(set(actual) - set(expected))[:5]
    assert not missing and not extra, f"missing {missing}, unexpected {extra}"
    for name, want in expected.items():
        got = actual[name]
        assert got.payload == want.payload, f"payload of {name} differs"
        if want.expire_at_ms == -1 or got.expire_at_ms == -1:
            assert got.expire_at_ms == want.expire_at_ms, f"expiry of {name}: {got.expire_at_ms} != {want.expire_at_ms}"
        else:
            assert abs(got.expire_at_ms - want.expire_at_ms) <= ttl_slack_ms, (
                f"expiry of {name} moved by {got.expire_at_ms - want.expire_at_ms} ms"
            )
