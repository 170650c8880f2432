"""Every RDB encoding Redis has written, made byte by byte, digested, and loaded by a real Redis 7.0.

Redis 7.0 writes only its own encodings (RDB 10). The older ones (zipmap, ziplist, intset,
the plain list, ZSET v1 text scores, quicklists of ziplists, streams v1, EXPIRETIME in
seconds, files without a CRC) and the newer ones of Redis 7.2 (set listpack, streams v3)
are written here by a small RDB writer. Three kinds of proof:

- every encoding of one value gives the same per-key hash, in C and in the Python
  reference;
- Redis 7.0 loads the old formats (which proves the writer right) and converts them to its
  own encodings: the digest of what it saves again equals the digest of the old file, and
  the live per-key hashes equal the file's;
- truncated or damaged files make both implementations fail alike, at the same offset,
  without crashing; unknown and unsupported types name their offset.
"""

from __future__ import annotations

import math
import random
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from bdr.engines.redis.rdb import (
    ContentDigest,
    KeyHash,
    RdbCorrupt,
    RdbUnsupported,
    compare_sample,
    digest_bytes,
    digest_file,
    key_hashes,
    live_key_hashes,
    reference,
)
from bdr.engines.redis.rdb import _digest as c_digest
from bdr.engines.redis.rdb.raw import RdbParseError
from bdr.runtime.process import RedisProcess, spawn_redis

# --- a small RDB writer ----------------------------------------------------------------------------------

Elem = bytes | int


def rdb_len(n: int) -> bytes:
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | n >> 8, n & 0xFF])
    if n < 1 << 32:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def lzf_literal(data: bytes) -> bytes:
    """Valid LZF made of literal runs (and one back reference when the data repeats its first 3 bytes)."""
    out = bytearray()
    i = 0
    if len(data) >= 12 and data[3:6] == data[:3]:
        out += bytes([2]) + data[:3]
        run = 3
        while 3 + run < len(data) and data[3 + run] == data[run] and run < 260:
            run += 1
        length = run - 2
        if length >= 7:
            out += bytes([7 << 5, length - 7, 2])
        else:
            out += bytes([length << 5, 2])
        i = 3 + run
    while i < len(data):
        chunk = data[i:i + 32]
        out += bytes([len(chunk) - 1]) + chunk
        i += len(chunk)
    return bytes(out)


def rdb_str(data: bytes, mode: str = "raw") -> bytes:
    if mode == "int":
        v = int(data)
        for enc, fmt, lo, hi in ((0, "<b", -128, 127), (1, "<h", -32768, 32767), (2, "<i", -(2**31), 2**31 - 1)):
            if lo <= v <= hi:
                return bytes([0xC0 | enc]) + struct.pack(fmt, v)
        raise ValueError(data)
    if mode == "lzf":
        comp = lzf_literal(data)
        return b"\xc3" + rdb_len(len(comp)) + rdb_len(len(data)) + comp
    return rdb_len(len(data)) + data


def ziplist(entries: Sequence[Elem]) -> bytes:
    body = bytearray()
    prev = 0
    tail = 10
    for e in entries:
        head = bytes([prev]) if prev < 254 else b"\xfe" + struct.pack("<I", prev)
        if isinstance(e, int):
            if 0 <= e <= 12:
                enc = bytes([0xF1 + e])
            elif -128 <= e <= 127:
                enc = b"\xfe" + struct.pack("<b", e)
            elif -32768 <= e <= 32767:
                enc = b"\xc0" + struct.pack("<h", e)
            elif -(2**23) <= e < 2**23:
                enc = b"\xf0" + (e & 0xFFFFFF).to_bytes(3, "little")
            elif -(2**31) <= e < 2**31:
                enc = b"\xd0" + struct.pack("<i", e)
            else:
                enc = b"\xe0" + struct.pack("<q", e)
        elif len(e) < 64:
            enc = bytes([len(e)]) + e
        elif len(e) < 16384:
            enc = bytes([0x40 | len(e) >> 8, len(e) & 0xFF]) + e
        else:
            enc = b"\x80" + len(e).to_bytes(4, "big") + e
        tail = 10 + len(body)
        entry = head + enc
        body += entry
        prev = len(entry)
    total = 10 + len(body) + 1
    return struct.pack("<IIH", total, tail, min(len(entries), 65535)) + bytes(body) + b"\xff"


def _backlen(n: int) -> bytes:
    if n <= 127:
        return bytes([n])
    if n < 16383:
        return bytes([n >> 7, (n & 127) | 128])
    return bytes([n >> 14, ((n >> 7) & 127) | 128, (n & 127) | 128])


def listpack(entries: Sequence[Elem]) -> bytes:
    body = bytearray()
    for e in entries:
        if isinstance(e, int):
            if 0 <= e <= 127:
                enc = bytes([e])
            elif -4096 <= e <= 4095:
                u = e & 0x1FFF
                enc = bytes([0xC0 | u >> 8, u & 0xFF])
            elif -32768 <= e <= 32767:
                enc = b"\xf1" + struct.pack("<h", e)
            elif -(2**23) <= e < 2**23:
                enc = b"\xf2" + (e & 0xFFFFFF).to_bytes(3, "little")
            elif -(2**31) <= e < 2**31:
                enc = b"\xf3" + struct.pack("<i", e)
            else:
                enc = b"\xf4" + struct.pack("<q", e)
        elif len(e) < 64:
            enc = bytes([0x80 | len(e)]) + e
        elif len(e) < 4096:
            enc = bytes([0xE0 | len(e) >> 8, len(e) & 0xFF]) + e
        else:
            enc = b"\xf0" + struct.pack("<I", len(e)) + e
        body += enc + _backlen(len(enc))
    return struct.pack("<IH", 6 + len(body) + 1, min(len(entries), 65535)) + bytes(body) + b"\xff"


def intset(values: Sequence[int]) -> bytes:
    width = 2 if all(-32768 <= v < 32768 for v in values) else 4 if all(-(2**31) <= v < 2**31 for v in values) else 8
    fmt = {2: "h", 4: "i", 8: "q"}[width]
    return struct.pack("<II", width, len(values)) + struct.pack(f"<{len(values)}{fmt}", *sorted(values))


def zipmap(pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    def zlen(n: int) -> bytes:
        return bytes([n]) if n < 254 else b"\xfe" + struct.pack("<I", n)

    out = bytearray([min(len(pairs), 254)])
    for i, (f, v) in enumerate(pairs):
        free = i % 3  # some free bytes after a value, as zipmaps had after updates
        out += zlen(len(f)) + f + zlen(len(v)) + bytes([free]) + v + b"\x00" * free
    return bytes(out) + b"\xff"


def score_text(score: float) -> bytes:
    if math.isinf(score):
        return b"inf" if score > 0 else b"-inf"
    if score == int(score) and abs(score) < 2**52 and not (score == 0 and math.copysign(1, score) < 0):
        return b"%d" % int(score)
    return repr(score).encode()


def score_elem(score: float) -> Elem:
    text = score_text(score)
    return int(text) if text.lstrip(b"-").isdigit() else text


def score_v1(score: float) -> bytes:
    if math.isnan(score):
        return b"\xfd"
    if math.isinf(score):
        return b"\xfe" if score > 0 else b"\xff"
    text = score_text(score)
    return bytes([len(text)]) + text


def elem(b: bytes) -> Elem:
    """How Redis stores a string in a ziplist or listpack: as an integer when it is one."""
    try:
        v = int(b)
    except ValueError:
        return b
    return v if str(v).encode() == b else b


class Rdb:
    """An RDB file being written: opcodes and keys appended in order, EOF and CRC64 at the end."""

    def __init__(self, version: int = 10) -> None:
        self.version = version
        self.parts = [b"REDIS%04d" % version]

    def raw(self, data: bytes) -> Rdb:
        self.parts.append(data)
        return self

    def aux(self, name: bytes, value: bytes) -> Rdb:
        return self.raw(b"\xfa" + rdb_str(name) + rdb_str(value))

    def select(self, db: int) -> Rdb:
        return self.raw(b"\xfe" + rdb_len(db))

    def resize(self, keys: int, expires: int) -> Rdb:
        return self.raw(b"\xfb" + rdb_len(keys) + rdb_len(expires))

    def key(self, rdb_type: int, name: bytes, payload: bytes, *, expire_ms: int | None = None,
            expire_s: int | None = None, idle: int | None = None, freq: int | None = None) -> Rdb:
        if expire_ms is not None:
            self.raw(b"\xfc" + struct.pack("<q", expire_ms))
        if expire_s is not None:
            self.raw(b"\xfd" + struct.pack("<i", expire_s))
        if idle is not None:
            self.raw(b"\xf8" + rdb_len(idle))
        if freq is not None:
            self.raw(b"\xf9" + bytes([freq]))
        return self.raw(bytes([rdb_type]) + rdb_str(name) + payload)

    def function(self, code: bytes) -> Rdb:
        return self.raw(b"\xf5" + rdb_str(code))

    def build(self, checksum: bool = True) -> bytes:
        body = b"".join(self.parts) + b"\xff"
        if self.version < 5:
            return body
        crc = reference.crc64(body) if checksum else 0
        return body + struct.pack("<Q", crc)


# --- value encoders ------------------------------------------------------------------------------------

T_STRING, T_LIST, T_SET, T_ZSET, T_HASH, T_ZSET_2, T_MODULE_PRE_GA, T_MODULE_2 = range(8)
T_HASH_ZIPMAP, T_LIST_ZIPLIST, T_SET_INTSET, T_ZSET_ZIPLIST, T_HASH_ZIPLIST, T_LIST_QUICKLIST = range(9, 15)
T_STREAM_LISTPACKS, T_HASH_LISTPACK, T_ZSET_LISTPACK, T_LIST_QUICKLIST_2 = range(15, 19)
T_STREAM_LISTPACKS_2, T_SET_LISTPACK, T_STREAM_LISTPACKS_3 = range(19, 22)

LIST = [b"a", b"", b"12", b"-7", b"9223372036854775807", b"x" * 70, b"\x00\xff", b"3000", b"70000", b"-2000000",
        b"3000000000", b"5"]
STRINGS_SET = [b"apple", b"", b"42", b"\x00bin", b"y" * 100]
INT_SET = [0, 1, -1, 7, 300, -40000, 2**31 + 5, -(2**40)]
ZSET = [(b"one", 1.0), (b"half", 2.5), (b"negzero", -0.0), (b"zero", 0.0), (b"top", math.inf), (b"bottom", -math.inf),
        (b"tiny", 1e-300), (b"big", 123456789012.0), (b"neg", -7.0), (b"huge", 1e20), (b"7", 0.1)]
HASH = [(b"name", b"ada"), (b"age", b"36"), (b"bin\x00", b"\xff\x00"), (b"empty", b""), (b"long", b"z" * 300),
        (b"n", b"-12")]


def list_encodings(values: Sequence[bytes]) -> dict[str, tuple[int, bytes]]:
    elems = [elem(v) for v in values]
    half = len(elems) // 2
    big = max(values, key=len)
    i = values.index(big)
    return {
        "plain": (T_LIST, rdb_len(len(values)) + b"".join(rdb_str(v) for v in values)),
        "ziplist": (T_LIST_ZIPLIST, rdb_str(ziplist(elems))),
        "quicklist": (T_LIST_QUICKLIST, rdb_len(2) + rdb_str(ziplist(elems[:half])) + rdb_str(ziplist(elems[half:]))),
        "quicklist2": (T_LIST_QUICKLIST_2, rdb_len(3) + rdb_len(2) + rdb_str(listpack(elems[:i])) + rdb_len(1)
                       + rdb_str(big) + rdb_len(2) + rdb_str(listpack(elems[i + 1:]), "lzf")),
    }


def set_encodings(values: Sequence[bytes]) -> dict[str, tuple[int, bytes]]:
    out = {
        "plain": (T_SET, rdb_len(len(values)) + b"".join(rdb_str(v) for v in reversed(values))),
        "listpack": (T_SET_LISTPACK, rdb_str(listpack([elem(v) for v in values]))),
    }
    if all(isinstance(elem(v), int) for v in values):
        out["intset"] = (T_SET_INTSET, rdb_str(intset([int(v) for v in values])))
    return out


def zset_encodings(pairs: Sequence[tuple[bytes, float]]) -> dict[str, tuple[int, bytes]]:
    flat: list[Elem] = []
    for member, score in pairs:
        flat += [elem(member), score_elem(score)]
    return {
        "v1": (T_ZSET, rdb_len(len(pairs)) + b"".join(rdb_str(m) + score_v1(s) for m, s in pairs)),
        "v2": (T_ZSET_2, rdb_len(len(pairs)) + b"".join(rdb_str(m) + struct.pack("<d", s) for m, s in reversed(pairs))),
        "ziplist": (T_ZSET_ZIPLIST, rdb_str(ziplist(flat))),
        "listpack": (T_ZSET_LISTPACK, rdb_str(listpack(flat), "lzf")),
    }


def hash_encodings(pairs: Sequence[tuple[bytes, bytes]]) -> dict[str, tuple[int, bytes]]:
    flat: list[Elem] = []
    for f, v in pairs:
        flat += [elem(f), elem(v)]
    return {
        "plain": (T_HASH, rdb_len(len(pairs)) + b"".join(rdb_str(f) + rdb_str(v, "lzf" if len(v) > 50 else "raw")
                                                         for f, v in pairs)),
        "zipmap": (T_HASH_ZIPMAP, rdb_str(zipmap(pairs))),
        "ziplist": (T_HASH_ZIPLIST, rdb_str(ziplist(flat))),
        "listpack": (T_HASH_LISTPACK, rdb_str(listpack(flat))),
    }


def string_encodings(value: bytes) -> dict[str, tuple[int, bytes]]:
    out = {"raw": (T_STRING, rdb_str(value)), "lzf": (T_STRING, rdb_str(value, "lzf"))}
    if isinstance(elem(value), int) and -(2**31) <= int(value) < 2**31:
        out["int"] = (T_STRING, rdb_str(value, "int"))
    return out


StreamEntry = tuple[tuple[int, int], list[tuple[bytes, bytes]], bool]  # id, fields, deleted


def stream_nodes(entries: Sequence[StreamEntry], per_node: int = 3) -> bytes:
    """The listpacks of a stream: per_node entries each, master fields from each node's first entry."""
    out = bytearray(rdb_len((len(entries) + per_node - 1) // per_node))
    for start in range(0, len(entries), per_node):
        node = entries[start:start + per_node]
        (mms, mseq), mfields, _ = node[0]
        master = [f for f, _ in mfields]
        live = sum(1 for e in node if not e[2])
        lp: list[Elem] = [live, len(node) - live, len(master), *[elem(f) for f in master], 0]
        for (ms, seq), fields, deleted in node:
            same = [f for f, _ in fields] == master
            flags = (1 if deleted else 0) | (2 if same else 0)
            lp += [flags, ms - mms, seq - mseq]
            if same:
                lp += [elem(v) for _, v in fields]
                lp.append(3 + len(fields))
            else:
                lp.append(len(fields))
                for f, v in fields:
                    lp += [elem(f), elem(v)]
                lp.append(4 + 2 * len(fields))
        out += rdb_str(struct.pack(">QQ", mms, mseq)) + rdb_str(listpack(lp))
    return bytes(out)


Group = tuple[bytes, tuple[int, int], int, list[tuple[tuple[int, int], int, int]], list[tuple[bytes, int, int,
                                                                                            list[tuple[int, int]]]]]
"""name, last id, entries read, PEL [(id, delivery time, count)], consumers [(name, seen, active, [ids])]."""


def stream_payload(version: int, entries: Sequence[StreamEntry], *, length: int, last: tuple[int, int],
                   first: tuple[int, int], maxdel: tuple[int, int], added: int, groups: Sequence[Group]) -> bytes:
    out = bytearray(stream_nodes(entries))
    out += rdb_len(length) + rdb_len(last[0]) + rdb_len(last[1])
    if version >= 2:
        out += rdb_len(first[0]) + rdb_len(first[1]) + rdb_len(maxdel[0]) + rdb_len(maxdel[1]) + rdb_len(added)
    out += rdb_len(len(groups))
    for name, glast, read, pel, consumers in groups:
        out += rdb_str(name) + rdb_len(glast[0]) + rdb_len(glast[1])
        if version >= 2:
            out += rdb_len(read & (2**64 - 1))
        out += rdb_len(len(pel))
        for pid, when, count in pel:
            out += struct.pack(">QQ", *pid) + struct.pack("<Q", when) + rdb_len(count)
        out += rdb_len(len(consumers))
        for cname, seen, active, ids in consumers:
            out += rdb_str(cname) + struct.pack("<Q", seen)
            if version >= 3:
                out += struct.pack("<Q", active)
            out += rdb_len(len(ids)) + b"".join(struct.pack(">QQ", *i) for i in ids)
    return bytes(out)


NOW_MS = int(time.time() * 1000)
BASE_ID = 1_700_000_000_000
ENTRIES: list[StreamEntry] = [
    ((BASE_ID, 0), [(b"n", b"0"), (b"payload", b"first, deleted")], True),
    ((BASE_ID, 1), [(b"n", b"1"), (b"payload", b"event 1")], False),
    ((BASE_ID + 5, 0), [(b"n", b"2"), (b"payload", b"e" * 80)], False),
    ((BASE_ID + 9, 3), [(b"other", b"fields"), (b"x", b"-5")], False),
    ((BASE_ID + 9, 4), [(b"n", b"4"), (b"payload", b"")], False),
]
LIVE_IDS = [e[0] for e in ENTRIES if not e[2]]


def stream_groups(version: int) -> list[Group]:
    """Groups whose entries-read Redis 7 estimates in every way it can (last, first, before first, unknown)."""
    seen = NOW_MS - 5_000
    groups: list[Group] = [
        (b"audit", LIVE_IDS[-1], 4, [(LIVE_IDS[0], NOW_MS - 9_000, 2), (LIVE_IDS[2], NOW_MS - 8_000, 1)],
         [(b"carol", seen, seen, [LIVE_IDS[0], LIVE_IDS[2]]), (b"dave", seen + 1, seen + 1, [])]),
        (b"fresh", (0, 0), 0, [], []),
        (b"middle", LIVE_IDS[1], 2**64 - 1, [(LIVE_IDS[1], NOW_MS - 7_000, 3)],
         [(b"erin", seen + 2, seen + 2, [LIVE_IDS[1]])]),
        (b"workers", LIVE_IDS[0], 1, [(LIVE_IDS[0], NOW_MS - 6_000, 1)],
         [(b"alice", seen + 3, seen + 3, [LIVE_IDS[0]])]),
    ]
    return groups


def stream_encodings() -> dict[str, tuple[int, bytes]]:
    """One stream in the three stream formats; v2/v3 state the values Redis 7 derives from v1."""
    common = {"length": len(LIVE_IDS), "last": LIVE_IDS[-1], "first": LIVE_IDS[0], "maxdel": (0, 0),
              "added": len(LIVE_IDS)}
    return {
        "v1": (T_STREAM_LISTPACKS, stream_payload(1, ENTRIES, groups=stream_groups(1), **common)),  # type: ignore[arg-type]
        "v2": (T_STREAM_LISTPACKS_2, stream_payload(2, ENTRIES, groups=stream_groups(2), **common)),  # type: ignore[arg-type]
        "v3": (T_STREAM_LISTPACKS_3, stream_payload(3, ENTRIES, groups=stream_groups(3), **common)),  # type: ignore[arg-type]
    }


def module_payload(name: str, encver: int, strings: Sequence[bytes]) -> bytes:
    out = bytearray(rdb_len(_module_id(name, encver)))
    out += rdb_len(2) + rdb_len(7)  # UINT
    out += rdb_len(1) + rdb_len(2**40)  # SINT (stored as a length)
    out += rdb_len(3) + struct.pack("<f", 1.5)  # FLOAT
    out += rdb_len(4) + struct.pack("<d", -2.25)  # DOUBLE
    for i, s in enumerate(strings):
        out += rdb_len(5) + rdb_str(s, "lzf" if i % 2 else "raw")
    return bytes(out) + rdb_len(0)


ENCODINGS: dict[str, Callable[[], dict[str, tuple[int, bytes]]]] = {
    "list": lambda: list_encodings(LIST),
    "set of strings": lambda: set_encodings(STRINGS_SET),
    "set of integers": lambda: set_encodings([str(v).encode() for v in INT_SET]),
    "zset": lambda: zset_encodings(ZSET),
    "hash": lambda: hash_encodings(HASH),
    "string": lambda: string_encodings(b"a string long enough for LZF: " + b"abc" * 40),
    "integer string": lambda: string_encodings(b"-2147483648"),
    "stream": stream_encodings,
}


def one_key_file(rdb_type: int, payload: bytes, version: int = 11) -> bytes:
    return (Rdb(version).aux(b"redis-ver", b"test").select(3)
            .key(rdb_type, b"the key", payload, expire_ms=NOW_MS + 86_400_000).build())


def facts(digest: ContentDigest) -> dict[str, object]:
    """What two implementations must agree on: everything but which one ran and how long it took."""
    out = digest.to_facts()
    del out["implementation"], out["seconds"]
    return out


def digest_keys(data: bytes) -> dict[tuple[int, bytes], KeyHash]:
    raw = c_digest.digest_bytes(data, 0, True)["keys"] or []
    return {(db, key): KeyHash(db, key, h.hex(), kind) for db, key, h, kind in raw}


def both(data: bytes) -> tuple[dict[tuple[int, bytes], str], dict[tuple[int, bytes], str], str, str]:
    c = c_digest.digest_bytes(data, 0, True)
    p = reference.digest_bytes(data, 0, True)
    assert c["keys"] is not None and p["keys"] is not None
    return ({(db, key): h.hex() for db, key, h, _ in c["keys"]}, {(db, key): h.hex() for db, key, h, _ in p["keys"]},
            c["value"].hex(), p["value"].hex())


# --- every encoding of a value hashes alike ------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(ENCODINGS))
def test_every_encoding_of_a_value_has_the_same_hash_in_c_and_python(kind: str) -> None:
    hashes: dict[str, str] = {}
    for name, (rdb_type, payload) in ENCODINGS[kind]().items():
        c_keys, py_keys, c_value, py_value = both(one_key_file(rdb_type, payload))
        assert c_keys == py_keys and c_value == py_value, f"{kind} {name}: C and Python disagree"
        assert len(c_keys) == 1
        hashes[name] = c_keys[(3, b"the key")]
    assert len(hashes) >= 2, hashes
    assert len(set(hashes.values())) == 1, f"{kind}: the encodings hash differently: {hashes}"


def test_a_changed_element_score_or_expiry_changes_the_key_hash() -> None:
    base = both(one_key_file(*zset_encodings(ZSET)["listpack"]))[0]
    changed_score = [(m, s + 1 if m == b"half" else s) for m, s in ZSET]
    positive_zero = [(m, 0.0 if m == b"negzero" else s) for m, s in ZSET]
    other_list = list(LIST)
    other_list[0], other_list[1] = other_list[1], other_list[0]
    variants = {
        "score": one_key_file(*zset_encodings(changed_score)["listpack"]),
        "list order": one_key_file(*list_encodings(other_list)["quicklist2"]),
        "expiry": Rdb(11).select(3).key(T_ZSET_LISTPACK, b"the key", zset_encodings(ZSET)["listpack"][1],
                                        expire_ms=NOW_MS + 86_400_001).build(),
        "no expiry": Rdb(11).select(3).key(T_ZSET_LISTPACK, b"the key", zset_encodings(ZSET)["listpack"][1]).build(),
        "db": Rdb(11).select(4).key(T_ZSET_LISTPACK, b"the key", zset_encodings(ZSET)["listpack"][1],
                                    expire_ms=NOW_MS + 86_400_000).build(),
    }
    same = both(one_key_file(*zset_encodings(positive_zero)["v2"]))[0]
    assert same == base, "-0.0 is 0.0 (Redis itself turns -0 into 0 in a listpack)"
    seen = set(base.values())
    for name, data in variants.items():
        digest = digest_bytes(data, implementation="c")
        assert digest.value not in seen, f"{name} did not change the digest"
        seen.add(digest.value)


# --- a file of every format, loaded by Redis 7.0 --------------------------------------------------------


def every_format_file(version: int = 9, *, with_72: bool = False, lzf_keys: bool = True) -> bytes:
    """One key per (type, encoding) in dbs 0, 2 and 17, with TTLs in ms and s, LRU/LFU opcodes and a function."""
    day = 86_400
    rdb = Rdb(version).aux(b"redis-ver", b"6.2.14").raw(b"\xfa" + rdb_str(b"redis-bits") + rdb_str(b"64", "int"))
    rdb.aux(b"ctime", b"1700000000").aux(b"used-mem", b"1000000").aux(b"aof-preamble", b"0")
    rdb.select(0).resize(40, 4)
    for kind, make in sorted(ENCODINGS.items()):
        for name, (rdb_type, payload) in sorted(make().items()):
            if rdb_type in (T_SET_LISTPACK, T_STREAM_LISTPACKS_3, T_STREAM_LISTPACKS_2) and not with_72:
                continue
            key = f"{kind}:{name}".encode()
            rdb.key(rdb_type, key, payload, idle=5 if name == "plain" else None, freq=3 if name == "raw" else None)
    rdb.key(T_STRING, b"ttl:ms", rdb_str(b"expires in ms"), expire_ms=NOW_MS + day * 1000 + 123)
    rdb.key(T_HASH_ZIPLIST, b"ttl:s", rdb_str(ziplist([b"a", 1])), expire_s=NOW_MS // 1000 + day)
    rdb.raw(bytes([T_STRING]) + rdb_str(b"12345", "int") + rdb_str(b"a key stored as an integer"))
    long_key = b"a key long enough to be compressed with LZF by Redis" * 2
    rdb.raw(bytes([T_STRING]) + rdb_str(long_key, "lzf" if lzf_keys else "raw") + rdb_str(b"v"))
    rdb.select(2).key(T_LIST_ZIPLIST, b"db2:list", rdb_str(ziplist([b"only", 1, -1])))
    rdb.select(17).key(T_SET_INTSET, b"db17:set", rdb_str(intset([1, 2, 3])), expire_ms=NOW_MS + day * 2000)
    if version >= 10:
        rdb.function(b"#!lua name=mylib\nredis.register_function('f', function() return 1 end)")
    return rdb.build()


def load_into_redis(data: bytes, workdir: Path, extra: Sequence[str] = ()) -> RedisProcess:
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "dump.rdb").write_bytes(data)
    return spawn_redis(data_dir, name="loader", extra=["--databases", "32", *extra])


@pytest.mark.parametrize("version", [4, 9, 10])
def test_old_formats_load_into_redis_7_and_save_to_the_same_digest(tmp_path: Path, version: int) -> None:
    data = every_format_file(version)
    original = tmp_path / "original.rdb"
    original.write_bytes(data)
    before = digest_file(original, sample=16)
    assert facts(before) == facts(digest_file(original, sample=16, implementation="python"))
    assert before.checksum == ("none" if version < 5 else "verified")
    server = load_into_redis(data, tmp_path)
    try:
        client = server.client()
        info = client.info("keyspace")
        assert {int(db[2:]): v["keys"] for db, v in info.items()} == before.keys
        assert {int(db[2:]): v["expires"] for db, v in info.items()} == before.expires
        assert compare_sample(client, before).ok
        file_keys = key_hashes(original)
        live = live_key_hashes(client, list(file_keys))
        assert {(k.db, k.key): k.hash for k in live} == {name: k.hash for name, k in file_keys.items()}
        client.save()
        resaved = digest_file(server.data_path() / "dump.rdb", sample=16)
    finally:
        server.stop()
    assert resaved.rdb_version == 10
    assert resaved.value == before.value
    assert resaved.sample == before.sample
    assert resaved.keys == before.keys and resaved.functions == before.functions


def test_redis_72_formats_hash_like_their_70_encodings() -> None:
    data = every_format_file(11, with_72=True)
    digest = digest_bytes(data, implementation="c")
    assert facts(digest) == facts(digest_bytes(data, implementation="python"))
    assert digest.rdb_version == 11 and digest.checksum == "verified"
    types = {name: k.type for (_, name), k in digest_keys(data).items()}
    assert types[b"set of strings:listpack"] == "set" and types[b"stream:v3"] == "stream"
    for make in (lambda: set_encodings(STRINGS_SET), stream_encodings):  # a 7.2 encoding hashes like the 7.0 ones
        alone = {name: both(one_key_file(*enc))[0][(3, b"the key")] for name, enc in make().items()}
        assert len(set(alone.values())) == 1, alone


def test_redis_check_rdb_accepts_the_writer_s_files(tmp_path: Path) -> None:
    checker = shutil.which("redis-check-rdb")
    assert checker, "redis-check-rdb is not installed (apt-get install redis-tools)"
    for version in (9, 10):
        path = tmp_path / f"v{version}.rdb"
        path.write_bytes(every_format_file(version))
        result = subprocess.run([checker, str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


# --- modules and functions ---------------------------------------------------------------------------------


def module_file(strings: Sequence[bytes], *, aux: bool = True) -> bytes:
    rdb = Rdb(10).aux(b"redis-ver", b"7.0.15")
    if aux:
        # MODULE_AUX: module id, when-opcode UINT (2), when (2: after the keys), opcodes, EOF
        rdb.raw(b"\xf7" + rdb_len(_module_id("bdrtest-x", 2)) + rdb_len(2) + rdb_len(2)
                + rdb_len(5) + rdb_str(b"global module data") + rdb_len(0))
    rdb.select(0).key(T_MODULE_2, b"module:key", module_payload("bdrtest-x", 2, strings))
    rdb.key(T_STRING, b"plain", rdb_str(b"value"))
    return rdb.build()


def _module_id(name: str, encver: int) -> int:
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    module_id = 0
    for ch in name:
        module_id = module_id << 6 | chars.index(ch)
    return module_id << 10 | encver


def test_module_values_are_skipped_by_their_opcodes_and_hashed(tmp_path: Path) -> None:
    data = module_file([b"state", b"compressed " * 10])
    path = tmp_path / "module.rdb"
    path.write_bytes(data)
    checker = shutil.which("redis-check-rdb")
    assert checker
    result = subprocess.run([checker, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout  # Redis's own checker skips it the same way
    c, py = digest_file(path), digest_file(path, implementation="python")
    assert c.value == py.value and c.module_aux == 1 and c.keys == {0: 2}
    types = {k.key: k.type for k in key_hashes(path).values()}
    assert types == {b"module:key": "bdrtest-x", b"plain": "string"}
    other = digest_bytes(module_file([b"state", b"compressed " * 11]))
    no_aux = digest_bytes(module_file([b"state", b"compressed " * 10], aux=False))
    assert len({c.value, other.value, no_aux.value}) == 3


def test_unsupported_module_and_function_formats_name_their_offset() -> None:
    head = Rdb(10).aux(b"redis-ver", b"4.0-rc")
    offset = len(b"".join(head.parts))
    pre_ga = head.raw(bytes([T_MODULE_PRE_GA]) + rdb_str(b"k") + b"\x00" * 8).build()
    pre_ga_function = Rdb(10).raw(b"\xf6" + rdb_str(b"lua") + rdb_str(b"code")).build()
    newer = Rdb(12).select(0).raw(bytes([24]) + rdb_str(b"hash with field TTLs") + b"\x00").build()
    for data, at, words in ((pre_ga, offset, "pre-GA"), (pre_ga_function, 9, "pre-release"),
                            (newer, 11, "unknown value type or opcode 24")):
        for implementation in ("c", "python"):
            with pytest.raises(RdbUnsupported) as err:
                digest_bytes(data, implementation=implementation)  # type: ignore[arg-type]
            assert err.value.fields["offset"] == at
            assert words in err.value.message
            assert "CRC64 matches" in err.value.message
            assert err.value.exit_code == 6


def test_function_libraries_are_part_of_the_digest() -> None:
    code = b"#!lua name=lib\nredis.register_function('f', function() return 1 end)"
    base = Rdb(10).select(0).key(T_STRING, b"k", rdb_str(b"v"))
    with_function = digest_bytes(Rdb(10).function(code).select(0).key(T_STRING, b"k", rdb_str(b"v")).build())
    other_code = digest_bytes(Rdb(10).function(code + b" ").select(0).key(T_STRING, b"k", rdb_str(b"v")).build())
    without = digest_bytes(base.build())
    assert with_function.functions == 1 and without.functions == 0
    assert len({with_function.value, other_code.value, without.value}) == 3


# --- damaged files: both implementations fail alike -----------------------------------------------------


def outcome(data: bytes, implementation: str) -> tuple[str, ...]:
    call = c_digest.digest_bytes if implementation == "c" else reference.digest_bytes
    try:
        raw = call(data, 4, False)
    except (c_digest.RdbError, RdbParseError) as exc:
        message, offset, kind = exc.args
        return kind, str(offset), message
    return "ok", raw["value"].hex(), repr(raw["sample"])


def small_every_type_file() -> bytes:
    rdb = Rdb(11).aux(b"redis-ver", b"7.2.4").select(1)
    for kind, make in sorted(ENCODINGS.items()):
        for name, (rdb_type, payload) in sorted(make().items())[:2]:
            rdb.key(rdb_type, f"{kind[:3]}{name[:2]}".encode(), payload, expire_ms=NOW_MS if kind == "zset" else None)
    rdb.key(T_MODULE_2, b"mod", module_payload("bdrtest-x", 1, [b"s" * 30]))
    return rdb.function(b"code").build()


def cut_points(size: int) -> Iterator[int]:
    yield from range(0, min(size, 400))
    yield from range(400, size, 3)


def test_a_file_cut_anywhere_fails_alike_in_c_and_python() -> None:
    data = small_every_type_file()
    assert outcome(data, "c") == outcome(data, "python")
    assert outcome(data, "c")[0] == "ok"
    for cut in cut_points(len(data)):
        c, py = outcome(data[:cut], "c"), outcome(data[:cut], "python")
        assert c == py, f"cut at {cut}"
        assert c[0] == "corrupt", f"cut at {cut}: {c}"


def test_random_damage_gives_the_same_answer_in_c_and_python() -> None:
    data = small_every_type_file()
    rng = random.Random(1234)
    for _ in range(400):
        damaged = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 5))):
            damaged[rng.randrange(9, len(data))] = rng.randrange(256)
        body = bytes(damaged[:-8])
        if rng.random() < 0.5:  # half of them with a CRC that matches, so the parser meets the damage
            damaged[-8:] = struct.pack("<Q", reference.crc64(body))
        c, py = outcome(bytes(damaged), "c"), outcome(bytes(damaged), "python")
        assert c == py


def test_damage_is_reported_with_its_offset(tmp_path: Path) -> None:
    data = small_every_type_file()
    path = tmp_path / "cut.rdb"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(RdbCorrupt) as cut:
        digest_file(path)
    assert "truncated" in cut.value.message and cut.value.fields["offset"] <= len(data) // 2
    assert str(path) in cut.value.message
    flipped = bytearray(data)
    flipped[data.index(b"s" * 30) + 3] ^= 0x01  # inside a module string: parses, but the CRC64 differs
    with pytest.raises(RdbCorrupt) as crc:
        digest_bytes(bytes(flipped))
    assert "CRC64 mismatch" in crc.value.message and crc.value.fields["offset"] == len(data) - 8
    unchecked = bytes(flipped[:-8]) + b"\x00" * 8  # rdbchecksum no: nothing to verify
    assert digest_bytes(unchecked).checksum == "absent"
