"""The bdr-rdb-1 digest as code: SipHash-2-4-128 and the canonical form of every Redis value.

This module is the definition the package docstring describes, written out once in Python.
Two readers feed it: :mod:`.reference` decodes an RDB file into canonical values, and
:mod:`.live` reads the same values from a running server with ordinary commands. The C
extension implements the same framing on its own; the tests hold all three to the same
answers.

Everything here works on whole values in memory: it is the readable version, not the fast
one.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

ALGORITHM = "bdr-rdb-1"
KEY = b"bdr-rdb-digest-1"
"""The fixed SipHash key (16 ASCII bytes). Public on purpose: the digest is not a signature."""

MASK64 = (1 << 64) - 1
MASK128 = (1 << 128) - 1
NAN_BITS = 0x7FF8000000000000

TAG_STRING = b"s"
TAG_LIST = b"l"
TAG_SET = b"S"
TAG_ZSET = b"z"
TAG_HASH = b"h"
TAG_STREAM = b"x"
TAG_MODULE = b"m"
TAG_FUNCTION = b"F"
TAG_MODULE_AUX = b"A"

TYPE_TAGS = {"string": TAG_STRING, "list": TAG_LIST, "set": TAG_SET, "zset": TAG_ZSET, "hash": TAG_HASH,
             "stream": TAG_STREAM}
"""The tag of each type as ``TYPE`` names it; anything else is a module type."""

_U64 = struct.Struct("<Q")
_BLOCKS = struct.Struct("<Q")


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & MASK64


def _rounds(v0: int, v1: int, v2: int, v3: int, n: int) -> tuple[int, int, int, int]:
    """``n`` SipRounds."""
    for _ in range(n):
        v0 = (v0 + v1) & MASK64
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & MASK64
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & MASK64
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & MASK64
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash128(data: bytes, key: bytes = KEY) -> int:
    """SipHash-2-4 with 128-bit output of ``data``; its 16 output bytes as a little-endian integer.

    As specified by Aumasson and Bernstein (the reference implementation with ``outlen`` 16):
    2 compression rounds per 8-byte block, 4 finalization rounds per 64-bit output half.
    """
    if len(key) != 16:
        raise ValueError("the key must be 16 bytes")
    k0, k1 = struct.unpack("<QQ", key)
    v0 = 0x736F6D6570736575 ^ k0
    v1 = 0x646F72616E646F6D ^ k1 ^ 0xEE
    v2 = 0x6C7967656E657261 ^ k0
    v3 = 0x7465646279746573 ^ k1
    whole = len(data) - len(data) % 8
    for (m,) in _BLOCKS.iter_unpack(memoryview(data)[:whole]):
        v3 ^= m
        v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 2)
        v0 ^= m
    b = ((len(data) & 0xFF) << 56) | int.from_bytes(data[whole:], "little")
    v3 ^= b
    v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 2)
    v0 ^= b
    v2 ^= 0xEE
    v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 4)
    low = v0 ^ v1 ^ v2 ^ v3
    v1 ^= 0xDD
    v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 4)
    return low | (v0 ^ v1 ^ v2 ^ v3) << 64


def hash_hex(value: int) -> str:
    """A 128-bit hash or digest as 32 hex digits, most significant first."""
    return format(value & MASK128, "032x")


# --- framing -------------------------------------------------------------------------------------------


def u64(n: int) -> bytes:
    """8 bytes little-endian (a negative number as its two's complement)."""
    return _U64.pack(n & MASK64)


def u128(n: int) -> bytes:
    return (n & MASK128).to_bytes(16, "little")


def framed(data: bytes) -> bytes:
    """``str(b)``: the length as :func:`u64`, then the bytes."""
    return _U64.pack(len(data)) + data


def f64(score: float) -> bytes:
    """A score as its IEEE-754 binary64 bits; -0.0 as 0.0 and every NaN as one NaN.

    Redis does not keep the sign of a zero score: 7.0 stores -0 as the integer 0 when it turns a
    skiplist into a listpack, so ZSCORE says "-0" or "0" depending on the encoding.
    """
    if math.isnan(score):
        return u64(NAN_BITS)
    if score == 0:
        return u64(0)
    return struct.pack("<d", score)


def decimal(n: int) -> bytes:
    """An integer-encoded string, list element or set member: what GET/LRANGE/SMEMBERS return."""
    return str(n).encode()


# --- values ----------------------------------------------------------------------------------------------


def string_value(value: bytes) -> bytes:
    return framed(value)


def list_value(elements: Iterable[bytes]) -> bytes:
    return b"".join(framed(e) for e in elements)


def _combined(hashes: Iterable[int]) -> bytes:
    count = 0
    total = 0
    for h in hashes:
        count += 1
        total += h
    return u64(count) + u128(total)


def set_value(members: Iterable[bytes]) -> bytes:
    return _combined(siphash128(TAG_SET + framed(m)) for m in members)


def hash_value(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    return _combined(siphash128(TAG_HASH + framed(f) + framed(v)) for f, v in pairs)


def zset_value(pairs: Iterable[tuple[bytes, float]]) -> bytes:
    return _combined(siphash128(TAG_ZSET + framed(m) + f64(score)) for m, score in pairs)


StreamID = tuple[int, int]

INVALID_ENTRIES_READ = MASK64
"""A group's entries-read that Redis does not know (SCG_INVALID_ENTRIES_READ, -1; XINFO shows nil)."""


@dataclass(frozen=True, slots=True)
class StreamConsumer:
    name: bytes
    seen_time: int
    active_time: int
    pending: tuple[StreamID, ...]


@dataclass(frozen=True, slots=True)
class StreamPending:
    id: StreamID
    delivery_time: int
    delivery_count: int


@dataclass(frozen=True, slots=True)
class StreamGroup:
    name: bytes
    last_id: StreamID
    entries_read: int
    pending: tuple[StreamPending, ...]
    consumers: tuple[StreamConsumer, ...]


@dataclass(frozen=True, slots=True)
class Stream:
    """A stream as XINFO STREAM FULL shows it, less what is derived (lag, radix-tree sizes)."""

    entries: tuple[tuple[StreamID, tuple[tuple[bytes, bytes], ...]], ...]
    length: int
    last_id: StreamID
    first_id: StreamID
    max_deleted_id: StreamID
    entries_added: int
    groups: tuple[StreamGroup, ...] = field(default=())


def stream_value(stream: Stream) -> bytes:
    parts: list[bytes] = []
    for (ms, seq), fields in stream.entries:
        parts.append(b"e" + u64(ms) + u64(seq) + u64(len(fields)))
        parts.extend(framed(f) + framed(v) for f, v in fields)
    parts.append(b"m" + b"".join(u64(n) for n in (
        stream.length, *stream.last_id, *stream.first_id, *stream.max_deleted_id, stream.entries_added,
        len(stream.groups))))
    for group in stream.groups:
        parts.append(b"g" + framed(group.name) + u64(group.last_id[0]) + u64(group.last_id[1])
                     + u64(group.entries_read) + u64(len(group.pending)))
        parts.extend(u64(p.id[0]) + u64(p.id[1]) + u64(p.delivery_time) + u64(p.delivery_count)
                     for p in group.pending)
        parts.append(u64(len(group.consumers)))
        for consumer in group.consumers:
            parts.append(b"c" + framed(consumer.name) + u64(consumer.seen_time) + u64(consumer.active_time)
                         + u64(len(consumer.pending)))
            parts.extend(u64(ms) + u64(seq) for ms, seq in consumer.pending)
    return b"".join(parts)


# --- keys and the dataset ----------------------------------------------------------------------------------


def key_hash(db: int, key: bytes, expire_ms: int | None, tag: bytes, value: bytes) -> int:
    """H( u64(db) || str(key) || expiry || u8(tag) || value ), value already in canonical form."""
    expiry = b"\x00" if expire_ms is None else b"\x01" + u64(expire_ms)
    return siphash128(u64(db) + framed(key) + expiry + tag + value)


def function_hash(code: bytes) -> int:
    return siphash128(TAG_FUNCTION + framed(code))


def combine(hashes: Iterable[int]) -> int:
    """The dataset digest: the sum of per-key (and function, module aux) hashes modulo 2^128."""
    return sum(hashes) & MASK128
