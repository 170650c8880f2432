"""The content digest of RDB files saved by a real redis-server 7.0, of every type and encoding.

The same data must give the same digest however Redis encoded it (two servers with opposite
encoding thresholds, a DEBUG RELOAD, a restart) and a different one as soon as a value, a
TTL or a key's database changes; the live per-key hashes read with ordinary commands must
equal the file's for every key; the counts must equal INFO keyspace; and damaged files are
refused with the byte offset.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bdr.engines.redis.rdb import (
    ContentDigest,
    LiveStatus,
    RdbCorrupt,
    RdbNotFound,
    RdbUnreadable,
    RdbUnsupported,
    compare_sample,
    digest_file,
    key_hashes,
    live_key_hashes,
)
from bdr.engines.redis.rdb import reference as ref
from bdr.runtime.process import RedisProcess, spawn_redis
from tests.redis_data import client_for_db, load_every_type

SMALL_THRESHOLDS = ["--hash-max-listpack-entries", "0", "--set-max-intset-entries", "0",
                    "--zset-max-listpack-entries", "0", "--list-max-listpack-size", "1"]
"""Everything in its large encoding: hashtable, skiplist, a quicklist node per element."""

LUA_LIBRARY = "#!lua name=bdrlib\nredis.register_function('bdr_echo', function(keys, args) return args[1] end)"


def server(tmp_path: Path, name: str, extra: list[str] | None = None) -> RedisProcess:
    return spawn_redis(tmp_path / name / "data", name=name, extra=["--databases", "32", *(extra or [])])


@pytest.fixture
def redis_a(tmp_path: Path) -> Iterator[RedisProcess]:
    process = server(tmp_path, "a")
    yield process
    process.stop()


def load_extras(client: redis.Redis) -> None:
    """What load_every_type does not cover: edge values, big LZF values, functions, 16+ dbs, plain nodes."""
    c = client
    c.mset({"int:zero": 0, "int:neg": -1, "int:max": 9223372036854775807, "int:min": -9223372036854775808,
            "int:padded": "007", "int:big": "123456789012345678901234567890", 12345: "integer-named key"})
    c.set("lzf:big", ("a compressible value " * 50_000).encode())
    c.set("lzf:bin", bytes(range(256)) * 400)
    c.hset("lzf:hash", mapping={f"field:{i}": "v" * 60 for i in range(20)})
    c.zadd("zset:edges", {"inf": math.inf, "-inf": -math.inf, "negzero": -0.0, "zero": 0.0, "tiny": 5e-324,
                          "huge": 1.7976931348623157e308, "third": 1 / 3, "int": 42, "negint": -42, "big": 2**53 + 2})
    c.rpush("list:ints", *[0, 1, 12, 13, 127, 128, -1, 4095, -4096, 4096, 32767, -32768, 8388607, -8388608,
                           2**31, -(2**31) - 1, 2**63 - 1, -(2**63)])
    c.sadd("set:mixed", 1, 2, "three", "")
    c.sadd("set:bigints", 2**40, -(2**40), 70000)
    c.pexpire("int:neg", 3_600_123)
    c.execute_command("FUNCTION", "LOAD", LUA_LIBRARY)
    for db in (16, 20, 31):
        client_for_db(c, db).set(f"db{db}:key", f"in db {db}", px=7_200_000 + db)
    c.execute_command("DEBUG", "QUICKLIST-PACKED-THRESHOLD", 100)  # elements of 100+ bytes get plain nodes
    c.rpush("list:plain", "small", "p" * 300, "small again", "q" * 5_000)


def convert_back_and_forth(client: redis.Redis) -> None:
    """Grow small keys past the listpack/intset limits and shrink them back: they keep the large encoding."""
    c = client
    c.hset("conv:hash", mapping={"a": "1", "b": "2"})
    c.hset("conv:hash", mapping={f"tmp{i}": "x" for i in range(200)})
    c.hdel("conv:hash", *[f"tmp{i}" for i in range(200)])
    c.sadd("conv:set", 1, 2, 3)
    c.sadd("conv:set", "not an integer")
    c.srem("conv:set", "not an integer")
    c.zadd("conv:zset", {"a": 1, "b": 2})
    c.zadd("conv:zset", {f"tmp{i}": i for i in range(200)})
    c.zrem("conv:zset", *[f"tmp{i}" for i in range(200)])


def write_conv_directly(client: redis.Redis) -> None:
    client.hset("conv:hash", mapping={"a": "1", "b": "2"})
    client.sadd("conv:set", 1, 2, 3)
    client.zadd("conv:zset", {"a": 1, "b": 2})


def saved(process: RedisProcess) -> Path:
    process.client().save()
    return process.data_path() / "dump.rdb"


def keyspace(client: redis.Redis) -> tuple[dict[int, int], dict[int, int]]:
    info = client.info("keyspace")
    return ({int(db[2:]): int(v["keys"]) for db, v in info.items()},
            {int(db[2:]): int(v["expires"]) for db, v in info.items()})


def same_digest(a: ContentDigest, b: ContentDigest) -> None:
    assert (a.value, a.keys, a.expires, a.functions, a.sample) == (b.value, b.keys, b.expires, b.functions, b.sample)


# --- every type, C and Python, counts -------------------------------------------------------------------------


def test_every_type_c_equals_python_and_counts_equal_info_keyspace(redis_a: RedisProcess) -> None:
    client = redis_a.client()
    load_every_type(client)
    load_extras(client)
    rdb = saved(redis_a)
    c, py = digest_file(rdb, sample=20), digest_file(rdb, sample=20, implementation="python")
    assert (c.implementation, py.implementation) == ("c", "python")
    same_digest(c, py)
    assert key_hashes(rdb) == key_hashes(rdb, implementation="python")
    assert (c.keys, c.expires) == keyspace(client)
    assert c.functions == 1 and c.checksum == "verified" and c.rdb_version == 10
    assert c.aux["redis-ver"] == "7.0.15" and int(c.aux["ctime"]) > 0
    assert len(c.sample) == 20 and [k.hash for k in c.sample] == sorted(k.hash for k in c.sample)
    every = key_hashes(rdb)
    assert sorted(every.values(), key=lambda k: k.hash)[:20] == list(c.sample)  # bottom-k of all per-key hashes
    assert {k.type for k in every.values()} == {"string", "list", "set", "zset", "hash", "stream"}
    assert c.bytes_read == rdb.stat().st_size and c.seconds > 0
    assert ContentDigest.from_facts(c.to_facts()) == c


def test_an_empty_dataset_digests_to_zero(redis_a: RedisProcess) -> None:
    empty = digest_file(saved(redis_a))
    assert empty.value == "0" * 32 and empty.keys == {} and empty.sample == ()
    assert empty.checksum == "verified"


# --- encoding independence and sensitivity ---------------------------------------------------------------------


def test_the_same_data_in_other_encodings_gives_the_same_digest(tmp_path: Path) -> None:
    large = server(tmp_path, "large", SMALL_THRESHOLDS)
    try:
        client = large.client()
        load_every_type(client)
        load_extras(client)
        convert_back_and_forth(client)
        assert client.object("encoding", "db0:hash:small") == b"hashtable"
        assert client.object("encoding", "db0:set:ints") == b"hashtable"
        assert client.object("encoding", "db0:zset:small") == b"skiplist"
        large_rdb = tmp_path / "large.rdb"
        shutil.copyfile(saved(large), large_rdb)
    finally:
        large.stop()
    # a server with the default thresholds loads that file and re-encodes it compactly
    default_dir = tmp_path / "default" / "data"
    default_dir.mkdir(parents=True)
    shutil.copyfile(large_rdb, default_dir / "dump.rdb")
    compact = spawn_redis(default_dir, name="default", extra=["--databases", "32"])
    try:
        client = compact.client()
        assert client.object("encoding", "db0:hash:small") == b"listpack"
        assert client.object("encoding", "db0:set:ints") == b"intset"
        assert client.object("encoding", "db0:zset:small") == b"listpack"
        before = digest_file(large_rdb)
        same_digest(digest_file(saved(compact)), before)
        client.execute_command("DEBUG", "RELOAD")
        same_digest(digest_file(saved(compact)), before)
        compact.stop()
        compact.start()
        same_digest(digest_file(saved(compact)), before)
        # keys converted back and forth equal keys written directly in the small encoding
        client.delete("conv:hash", "conv:set", "conv:zset")
        write_conv_directly(client)
        assert client.object("encoding", "conv:hash") == b"listpack"
        same_digest(digest_file(saved(compact)), before)
    finally:
        compact.stop()


def test_a_changed_value_ttl_or_database_changes_the_digest(redis_a: RedisProcess) -> None:
    client = redis_a.client()
    load_every_type(client)
    base = digest_file(saved(redis_a))
    seen = {base.value}

    def changed(what: str) -> None:
        value = digest_file(saved(redis_a)).value
        assert value not in seen, f"{what} did not change the digest"
        seen.add(value)

    client.hset("db0:hash:small", "age", "37")
    changed("a hash field")
    client.hset("db0:hash:small", "age", "36")
    assert digest_file(saved(redis_a)).value == base.value, "putting the value back restores the digest"
    client.pexpire("db0:ttl:millis", 9_999_999)
    changed("a TTL")
    client.move("db0:string:text", 2)
    changed("a key moved to another db")
    client.lset("db0:list:large", 1000, "item:1000 ")
    changed("one list element")
    client.zadd("db0:zset:large", {"m:7": 1.0000000000000002})
    changed("one score by one ulp")
    client.xack("db0:stream:events", "audit", "1700000000002-0")
    changed("a stream acknowledgement")
    client.persist("db0:ttl:seconds")
    changed("a removed TTL")


# --- live reads --------------------------------------------------------------------------------------------------


def test_live_hashes_equal_the_file_for_every_key(redis_a: RedisProcess) -> None:
    client = redis_a.client()
    load_every_type(client)
    load_extras(client)
    convert_back_and_forth(client)
    rdb = saved(redis_a)
    in_file = key_hashes(rdb)
    live = live_key_hashes(client, list(in_file))
    assert all(k.status is LiveStatus.PRESENT for k in live)
    wrong = [(k.db, k.key, k.type) for k in live if k.hash != in_file[(k.db, k.key)].hash]
    assert not wrong
    assert [k.type for k in live] == [in_file[(k.db, k.key)].type for k in live]
    comparison = compare_sample(lambda db: client_for_db(client, db), digest_file(rdb, sample=64))
    assert comparison.ok and len(comparison.matched) == 64, comparison.detail


def test_live_comparison_finds_changed_and_missing_keys(redis_a: RedisProcess) -> None:
    client = redis_a.client()
    load_every_type(client)
    digest = digest_file(saved(redis_a), sample=200)
    facts = digest.to_facts()
    victims = [k for k in digest.sample if k.db == 0][:2]
    client.delete(victims[0].key)
    client.pexpire(victims[1].key, 123_456_789)
    outcome = compare_sample(client, facts)
    assert not outcome.ok
    assert [k.key for k in outcome.missing] == [victims[0].key]
    assert [k.key for k, _ in outcome.mismatched] == [victims[1].key]
    assert "1 differ" in outcome.detail and "1 missing" in outcome.detail


# --- damaged files -------------------------------------------------------------------------------------------------


def test_damaged_or_missing_files_are_refused_with_the_offset(redis_a: RedisProcess, tmp_path: Path) -> None:
    client = redis_a.client()
    load_every_type(client)
    data = saved(redis_a).read_bytes()
    cases = tmp_path / "cases"
    cases.mkdir()
    for implementation in ("c", "python"):
        truncated = cases / "truncated.rdb"
        truncated.write_bytes(data[:len(data) * 2 // 3])
        with pytest.raises(RdbCorrupt) as cut:
            digest_file(truncated, implementation=implementation)  # type: ignore[arg-type]
        assert "truncated" in cut.value.message and cut.value.fields["offset"] <= len(data) * 2 // 3

        flipped = bytearray(data)
        flipped[data.index("café".encode()) + 1] ^= 0x20  # inside a string value: it parses, the CRC64 does not
        (cases / "flipped.rdb").write_bytes(flipped)
        with pytest.raises(RdbCorrupt) as crc:
            digest_file(cases / "flipped.rdb", implementation=implementation)  # type: ignore[arg-type]
        assert "CRC64 mismatch" in crc.value.message and crc.value.fields["offset"] == len(data) - 8

        (cases / "garbage.rdb").write_bytes(b"PK\x03\x04 this is a zip file, not an RDB")
        with pytest.raises(RdbCorrupt) as garbage:
            digest_file(cases / "garbage.rdb", implementation=implementation)  # type: ignore[arg-type]
        assert garbage.value.fields["offset"] == 0 and "not an RDB file" in garbage.value.message

        unknown = bytearray(data)
        at = data.index(b"db0:string:text") - 2  # the type byte of that key (1 length byte before the name)
        assert unknown[at] == 0
        unknown[at] = 30
        unknown[-8:] = ref.crc64(bytes(unknown[:-8])).to_bytes(8, "little")
        (cases / "unknown.rdb").write_bytes(unknown)
        with pytest.raises(RdbUnsupported) as new_type:
            digest_file(cases / "unknown.rdb", implementation=implementation)  # type: ignore[arg-type]
        assert new_type.value.fields["offset"] == at
        assert f"at byte offset {at}, unknown value type or opcode 30" in new_type.value.message

        with pytest.raises(RdbUnreadable) as directory:
            digest_file(cases, implementation=implementation)  # type: ignore[arg-type]
        assert "directory" in directory.value.message.lower()
        with pytest.raises(RdbNotFound) as missing:
            digest_file(cases / "nothing-here.rdb", implementation=implementation)  # type: ignore[arg-type]
        assert missing.value.exit_code == 4
