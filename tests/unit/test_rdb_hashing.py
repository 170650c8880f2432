"""The digest's building blocks: SipHash-2-4-128 against the published vectors, CRC-64, LZF, framing.

The vectors are those of the SipHash reference implementation (vectors.h, vectors_sip128):
key 00 01 .. 0f, message 00 01 .. (n-1) for n = 0..63. The C implementation is fed in uneven
pieces, so its streaming paths are what the vectors check.
"""

from __future__ import annotations

import math
import random

import pytest

from bdr.engines.redis.rdb import _digest as c_digest
from bdr.engines.redis.rdb import canonical as cn
from bdr.engines.redis.rdb import reference

SIP128_VECTORS = {
    0: "a3817f04ba25a8e66df67214c7550293",
    1: "da87c1d86b99af44347659119b22fc45",
    2: "8177228da4a45dc7fca38bdef60affe4",
    7: "a1f1ebbed8dbc153c0b84aa61ff08239",
    8: "3b62a9ba6258f5610f83e264f31497b4",
    9: "264499060ad9baabc47f8b02bb6d71ed",
    15: "5493e99933b0a8117e08ec0f97cfc3d9",
    16: "6ee2a4ca67b054bbfd3315bf85230577",
    17: "473d06e8738db89854c066c47ae47740",
    31: "2939b0183223fafc1723de4f52c43d35",
    32: "7c3956ca5eeafc3e363e9d556546eb68",
    33: "77c6077146f01c32b6b69d5f4ea9ffcf",
    63: "5150d1772f50834a503e069a973fbd7c",
}
KEY = bytes(range(16))


@pytest.mark.parametrize("length", sorted(SIP128_VECTORS))
def test_siphash128_matches_the_reference_vectors(length: int) -> None:
    message = bytes(range(length))
    assert c_digest.siphash128(message, key=KEY).hex() == SIP128_VECTORS[length]
    assert cn.siphash128(message, KEY).to_bytes(16, "little").hex() == SIP128_VECTORS[length]


def test_c_and_python_siphash_agree_on_random_messages_with_the_digest_key() -> None:
    rng = random.Random(7)
    for _ in range(200):
        message = rng.randbytes(rng.randrange(0, 300))
        assert int.from_bytes(c_digest.siphash128(message), "little") == cn.siphash128(message)
    with pytest.raises(ValueError):
        cn.siphash128(b"", b"short key")


def test_crc64_is_redis_s_jones_crc() -> None:
    assert c_digest.crc64(b"123456789") == reference.crc64(b"123456789") == 0xE9C6D914C4B8D9CA
    rng = random.Random(3)
    for n in (0, 1, 7, 8, 15, 16, 17, 100, 4099):
        data = rng.randbytes(n)
        assert c_digest.crc64(data) == reference.crc64(data)


def test_lzf_decompression_with_overlapping_back_references() -> None:
    # literal "abc", then a back reference of 9 bytes from 3 back (it overlaps what it writes)
    assert reference.lzf_decompress(bytes([2]) + b"abc" + bytes([0xE0, 0, 2]), 12) == b"abc" * 4
    assert reference.lzf_decompress(bytes([2]) + b"abc" + bytes([0xE0, 0, 2]), 11) is None  # longer than declared
    assert reference.lzf_decompress(bytes([0x20, 5]), 3) is None  # refers before the start
    assert reference.lzf_decompress(bytes([5]) + b"ab", 6) is None  # literal run cut short


def test_scores_hash_by_value_with_one_zero_and_one_nan() -> None:
    assert cn.f64(-0.0) == cn.f64(0.0) == bytes(8)
    assert cn.f64(math.nan) == cn.f64(-math.nan) == cn.u64(cn.NAN_BITS)
    assert cn.f64(math.inf) != cn.f64(-math.inf)
    assert cn.f64(1.0) != cn.f64(1.0000000000000002)


def test_the_key_record_separates_every_field() -> None:
    base = cn.key_hash(0, b"key", None, cn.TAG_STRING, cn.string_value(b"value"))
    variants = [
        cn.key_hash(1, b"key", None, cn.TAG_STRING, cn.string_value(b"value")),
        cn.key_hash(0, b"key2", None, cn.TAG_STRING, cn.string_value(b"value")),
        cn.key_hash(0, b"key", 0, cn.TAG_STRING, cn.string_value(b"value")),
        cn.key_hash(0, b"key", -1, cn.TAG_STRING, cn.string_value(b"value")),
        cn.key_hash(0, b"key", None, cn.TAG_LIST, cn.list_value([b"value"])),
        cn.key_hash(0, b"keyv", None, cn.TAG_STRING, cn.string_value(b"alue")),
    ]
    assert len({base, *variants}) == len(variants) + 1
    # lists keep order, sets and hashes do not
    assert cn.list_value([b"a", b"b"]) != cn.list_value([b"b", b"a"])
    assert cn.list_value([b"ab"]) != cn.list_value([b"a", b"b"])
    assert cn.set_value([b"a", b"b"]) == cn.set_value([b"b", b"a"])
    assert cn.hash_value([(b"f", b"1"), (b"g", b"2")]) == cn.hash_value([(b"g", b"2"), (b"f", b"1")])
    assert cn.hash_value([(b"f", b"1"), (b"g", b"2")]) != cn.hash_value([(b"f", b"2"), (b"g", b"1")])
    assert cn.zset_value([(b"m", 1.0)]) != cn.zset_value([(b"m", 2.0)])
    assert cn.combine([2**128 - 1, 2]) == 1
    assert cn.hash_hex(1) == "0" * 31 + "1"


def test_module_type_names_decode_from_module_ids() -> None:
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    module_id = 0
    for ch in "ReJSON-RL":
        module_id = module_id << 6 | chars.index(ch)
    assert reference.module_name(module_id << 10 | 3) == "ReJSON-RL"
