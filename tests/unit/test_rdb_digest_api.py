"""The public API of the RDB digest without a server: tiny hand-made files, facts, errors, implementations."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from bdr.engines.redis.rdb import (
    ContentDigest,
    Implementation,
    RdbCorrupt,
    RdbNotFound,
    RdbUnreadable,
    RdbUnsupported,
    available,
    digest_bytes,
    digest_file,
    key_hashes,
    reference,
)
from bdr.engines.redis.rdb import canonical as cn
from bdr.errors import IntegrityError

IMPLEMENTATIONS = ["c", "python"]


def rdb(body: bytes, version: int = 10) -> bytes:
    data = b"REDIS%04d" % version + body + b"\xff"
    return data + struct.pack("<Q", reference.crc64(data))


ONE_KEY = rdb(b"\xfa\x09redis-ver\x067.0.15\xfa\x05ctime\xc2" + struct.pack("<i", 1_700_000_000)
              + b"\xfe\x02\xfc" + struct.pack("<q", 1_900_000_000_000) + b"\x00\x03key\x05value")


def test_the_c_extension_is_built() -> None:
    assert available() == (Implementation.C, Implementation.PYTHON), "run `pip install -e .` with gcc and python3-dev"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_a_hand_made_file_gives_the_documented_per_key_hash(implementation: str) -> None:
    digest = digest_bytes(ONE_KEY, implementation=implementation)  # type: ignore[arg-type]
    expected = cn.key_hash(2, b"key", 1_900_000_000_000, cn.TAG_STRING, cn.string_value(b"value"))
    assert digest.value == cn.hash_hex(expected)
    assert digest.keys == {2: 1} and digest.expires == {2: 1}
    assert digest.aux == {"redis-ver": "7.0.15", "ctime": "1700000000"}
    assert [(k.db, k.key, k.hash, k.type) for k in digest.sample] == [(2, b"key", cn.hash_hex(expected), "string")]
    assert digest.implementation == implementation and digest.algorithm == "bdr-rdb-1"


def test_facts_round_trip_through_json() -> None:
    digest = digest_bytes(rdb(b"\x00\x03k\xff\x00\x01x"))
    facts = json.loads(json.dumps(digest.to_facts()))
    assert facts["sample"][0]["key"] == "a/8A"  # base64 of the binary key b"k\xff\x00"
    assert ContentDigest.from_facts(facts) == digest
    with pytest.raises(IntegrityError):
        ContentDigest.from_facts({"algorithm": "bdr-rdb-1"})
    broken = dict(facts, sample=[{"db": 0, "key": "not base64!", "hash": "0", "type": "string"}])
    with pytest.raises(IntegrityError):
        ContentDigest.from_facts(broken)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_errors_name_the_file_and_the_offset(tmp_path: Path, implementation: str) -> None:
    def refused(data: bytes) -> pytest.ExceptionInfo[Exception]:
        path = tmp_path / "dump.rdb"
        path.write_bytes(data)
        with pytest.raises((RdbCorrupt, RdbUnsupported)) as err:
            digest_file(path, implementation=implementation)  # type: ignore[arg-type]
        assert str(path) in str(err.value)
        return err

    empty = refused(b"")
    assert "empty" in str(empty.value) and empty.value.fields["offset"] == 0  # type: ignore[attr-defined]
    assert refused(b"REDIS00x0").value.fields["offset"] == 5  # type: ignore[attr-defined]
    newer = refused(b"REDIS0099" + b"\xff")
    assert isinstance(newer.value, RdbUnsupported) and "RDB version 99" in str(newer.value)
    cut = refused(ONE_KEY[:40])
    assert isinstance(cut.value, RdbCorrupt) and "truncated" in str(cut.value)
    bad_length = refused(rdb(b"\x00\xbfkey"))  # 0xbf: neither a length nor an encoded value
    assert bad_length.value.fields["offset"] == 10  # type: ignore[attr-defined]
    assert "unknown length encoding 0xbf" in str(bad_length.value)
    with pytest.raises(RdbNotFound):
        digest_file(tmp_path / "absent.rdb", implementation=implementation)  # type: ignore[arg-type]
    with pytest.raises(RdbUnreadable):
        digest_file(tmp_path, implementation=implementation)  # type: ignore[arg-type]
    with pytest.raises(RdbUnreadable):
        key_hashes(tmp_path, implementation=implementation)  # type: ignore[arg-type]


def test_an_rdb_without_a_checksum_is_digested_and_says_so() -> None:
    data = rdb(b"\x00\x01k\x01v")[:-8] + bytes(8)
    assert digest_bytes(data).checksum == "absent"
    old = b"REDIS0004\x00\x01k\x01v\xff"  # before RDB 5 there is no CRC at all
    assert digest_bytes(old).checksum == "none"
    assert digest_bytes(old).value == digest_bytes(data).value
