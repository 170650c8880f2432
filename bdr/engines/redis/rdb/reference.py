"""The digest in pure Python: a readable RDB decoder feeding :mod:`.canonical`.

Two jobs. The tests hold the C extension to it on every file they make (same digest, same
per-key hashes, same sample, same error at the same byte offset). And it is the fallback
when the extension cannot be imported (no compiler where bdr was installed):
:func:`bdr.engines.redis.rdb.digest_file` then says ``implementation="python"``. It is
slow (about 1 MB/s: SipHash in Python), so bdr only falls back to it with a warning.

The decoder follows Redis's own loader (``rdb.c``): every encoding Redis 2.x to 7.x writes
(RDB versions 1 to 12) is decoded to the canonical value of its type, so a listpack and a
hash table holding the same fields give the same per-key hash.
"""

from __future__ import annotations

import heapq
import math
import struct
from collections.abc import Iterator
from pathlib import Path

from bdr.engines.redis.rdb import canonical as cn
from bdr.engines.redis.rdb.raw import RawDigest, RawKeyHash, RdbParseError

MAX_RDB_VERSION = 12

T_STRING, T_LIST, T_SET, T_ZSET, T_HASH, T_ZSET_2, T_MODULE_PRE_GA, T_MODULE_2 = range(8)
T_HASH_ZIPMAP, T_LIST_ZIPLIST, T_SET_INTSET, T_ZSET_ZIPLIST, T_HASH_ZIPLIST, T_LIST_QUICKLIST = range(9, 15)
T_STREAM_LISTPACKS, T_HASH_LISTPACK, T_ZSET_LISTPACK, T_LIST_QUICKLIST_2 = range(15, 19)
T_STREAM_LISTPACKS_2, T_SET_LISTPACK, T_STREAM_LISTPACKS_3 = range(19, 22)

OP_FUNCTION2, OP_FUNCTION_PRE_GA, OP_MODULE_AUX, OP_IDLE, OP_FREQ, OP_AUX = range(245, 251)
OP_RESIZEDB, OP_EXPIRETIME_MS, OP_EXPIRETIME, OP_SELECTDB, OP_EOF = range(251, 256)

MOD_EOF, MOD_SINT, MOD_UINT, MOD_FLOAT, MOD_DOUBLE, MOD_STRING = range(6)

LISTS = {T_LIST, T_LIST_ZIPLIST, T_LIST_QUICKLIST, T_LIST_QUICKLIST_2}
SETS = {T_SET, T_SET_INTSET, T_SET_LISTPACK}
ZSETS = {T_ZSET, T_ZSET_2, T_ZSET_ZIPLIST, T_ZSET_LISTPACK}
HASHES = {T_HASH, T_HASH_ZIPMAP, T_HASH_ZIPLIST, T_HASH_LISTPACK}
STREAMS = {T_STREAM_LISTPACKS, T_STREAM_LISTPACKS_2, T_STREAM_LISTPACKS_3}

MODULE_NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

Element = int | bytes
"""A listpack or ziplist entry: an integer or a string."""


def module_name(module_id: int) -> str:
    """The 9-character module type name encoded in a module id (what TYPE shows)."""
    module_id >>= 10
    chars = []
    for _ in range(9):
        chars.append(MODULE_NAME_CHARS[module_id & 63])
        module_id >>= 6
    return "".join(reversed(chars))


def lzf_decompress(data: bytes, expected: int) -> bytes | None:
    """LZF (liblzf's lzf_decompress), every bound checked; None when ``data`` is not LZF of that length."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        ctrl = data[i]
        i += 1
        if ctrl < 32:
            run = ctrl + 1
            if run > expected - len(out) or run > n - i:
                return None
            out += data[i:i + run]
            i += run
            continue
        length = ctrl >> 5
        back = ((ctrl & 0x1F) << 8) + 1
        if length == 7:
            if i >= n:
                return None
            length += data[i]
            i += 1
        if i >= n:
            return None
        back += data[i]
        i += 1
        length += 2
        if back > len(out) or length > expected - len(out):
            return None
        start = len(out) - back
        if back >= length:
            out += out[start:start + length]
        else:
            for k in range(length):
                out.append(out[start + k])
    return bytes(out) if len(out) == expected else None


def crc64(data: bytes | memoryview, crc: int = 0) -> int:
    """CRC-64/Jones as Redis computes it (reflected, polynomial 0xad93d23594c935a9, init 0)."""
    table = _crc_table()
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


_CRC_TABLE: list[int] = []


def _crc_table() -> list[int]:
    if not _CRC_TABLE:
        for n in range(256):
            crc = n
            for _ in range(8):
                crc = (crc >> 1) ^ 0x95AC9329AC4BC9B5 if crc & 1 else crc >> 1
            _CRC_TABLE.append(crc)
    return _CRC_TABLE


def escaped(data: bytes) -> str:
    """Bytes for a message: printable ASCII as it is, anything else as \\xNN."""
    return "".join(chr(b) if 32 <= b < 127 and b != 0x5C else f"\\x{b:02x}" for b in data)


def _score(text: bytes, offset: int, what: str) -> float:
    """A score written as text, read the way Redis reads it (strtod of the whole string)."""
    if not text or len(text) >= 320:
        raise RdbParseError(f"{what}: a score of {len(text)} characters", offset)
    try:
        if text != text.strip() or b"_" in text:
            raise ValueError(text)
        return float(text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise RdbParseError(f'{what}: score "{escaped(text[:40])}" is not a number', offset) from None


class _Blob:
    """A listpack or ziplist held in one RDB string, iterated entry by entry."""

    def __init__(self, data: bytes, offset: int, what: str, listpack: bool) -> None:
        self.data, self.offset, self.what = data, offset, what
        kind = "listpack" if listpack else "ziplist"
        header = 6 if listpack else 10
        if len(data) < header + 1:
            raise RdbParseError(f"{what}: {len(data)} bytes are too few for a {kind}", offset)
        total = int.from_bytes(data[:4], "little")
        if total != len(data):
            raise RdbParseError(f"{what}: the {kind} header says {total} bytes, the value holds {len(data)}", offset)
        if data[-1] != 0xFF:
            raise RdbParseError(f"{what}: the {kind} does not end with 0xFF", offset)
        self.p = header
        self.end = len(data) - 1
        self.listpack = listpack

    def fail(self, at: int, message: str) -> RdbParseError:
        return RdbParseError(f"{self.what}: {message} at byte {at} of the value", self.offset)

    def __iter__(self) -> Iterator[Element]:
        step = self._lp_next if self.listpack else self._zl_next
        while self.p != self.end:
            yield step()

    def next(self, missing: str) -> Element:
        if self.p == self.end:
            raise self.fail(self.p, missing)
        return self._lp_next() if self.listpack else self._zl_next()

    def next_int(self, missing: str) -> int:
        value = self.next(missing)
        if not isinstance(value, int):
            raise self.fail(self.p, "a stream listpack field that should be an integer is a string")
        return value

    def _lp_next(self) -> Element:
        d, p = self.data, self.p
        room = self.end - p
        x = d[p]
        value: Element
        string = False
        hdr = length = 0
        if x < 0x80:
            value, entlen = x, 1
        elif x & 0xC0 == 0x80:
            string, hdr, length = True, 1, x & 0x3F
        elif x & 0xE0 == 0xC0:
            if room < 2:
                raise self.fail(p, "truncated listpack entry")
            u = ((x & 0x1F) << 8) | d[p + 1]
            value, entlen = (u - 8192 if u >= 4096 else u), 2
        elif x & 0xF0 == 0xE0:
            if room < 2:
                raise self.fail(p, "truncated listpack entry")
            string, hdr, length = True, 2, ((x & 0x0F) << 8) | d[p + 1]
        elif x == 0xF0:
            if room < 5:
                raise self.fail(p, "truncated listpack entry")
            string, hdr, length = True, 5, int.from_bytes(d[p + 1:p + 5], "little")
        elif x in _LP_INTS:
            size = _LP_INTS[x]
            if room < size + 1:
                raise self.fail(p, "truncated listpack entry")
            value, entlen = int.from_bytes(d[p + 1:p + 1 + size], "little", signed=True), size + 1
        elif x == 0xFF:
            raise self.fail(p, "listpack end marker before the end")
        else:
            raise self.fail(p, "unknown listpack entry encoding")
        if string:
            if length > room or hdr > room - length:
                raise self.fail(p, "listpack string runs past the end")
            entlen = hdr + length
            value = d[p + hdr:p + entlen]
        back = _backlen_size(entlen)
        if entlen + back > room:
            raise self.fail(p, "listpack entry runs past the end")
        self.p = p + entlen + back
        return value

    def _zl_next(self) -> Element:
        d, p = self.data, self.p
        room = self.end - p
        if d[p] == 0xFF:
            raise self.fail(p, "ziplist end marker before the end")
        prev = 1 if d[p] < 254 else 5
        if prev >= room:
            raise self.fail(p, "truncated ziplist entry")
        q = p + prev
        room -= prev
        x = d[q]
        hdr, length, string = 1, 0, False
        imm: int | None = None
        if x >> 6 == 0:
            string, length = True, x & 0x3F
        elif x >> 6 == 1:
            if room < 2:
                raise self.fail(q, "truncated ziplist entry")
            string, hdr, length = True, 2, ((x & 0x3F) << 8) | d[q + 1]
        elif x >> 6 == 2:
            if room < 5:
                raise self.fail(q, "truncated ziplist entry")
            string, hdr, length = True, 5, int.from_bytes(d[q + 1:q + 5], "big")
        elif x in _ZL_INTS:
            length = _ZL_INTS[x]
        elif 0xF1 <= x <= 0xFD:
            imm = (x & 0x0F) - 1
        else:
            raise self.fail(q, "unknown ziplist entry encoding")
        if length > room or hdr > room - length:
            raise self.fail(q, "ziplist entry runs past the end")
        data = d[q + hdr:q + hdr + length]
        self.p = q + hdr + length
        if string:
            return data
        if imm is not None:
            return imm
        return int.from_bytes(data, "little", signed=True)


def _backlen_size(entlen: int) -> int:
    """How many bytes lpEncodeBacklen uses for an entry of ``entlen`` bytes (Redis's listpack.c, strict bounds)."""
    return 1 if entlen <= 127 else 2 if entlen < 16383 else 3 if entlen < 2097151 else 4 if entlen < 268435455 else 5


_LP_INTS = {0xF1: 2, 0xF2: 3, 0xF3: 4, 0xF4: 8}
_ZL_INTS = {0xC0: 2, 0xD0: 4, 0xE0: 8, 0xF0: 3, 0xFE: 1}


def _text(e: Element) -> bytes:
    return cn.decimal(e) if isinstance(e, int) else e


def _element_score(e: Element, offset: int, what: str) -> float:
    return float(e) if isinstance(e, int) else _score(e, offset, what)


def _estimate_entries_read(added: int, length: int, last: cn.StreamID, first: cn.StreamID,
                           maxdel: cn.StreamID, group_id: cn.StreamID) -> int:
    """streamEstimateDistanceFromFirstEverEntry: a group's entries-read as Redis 7 derives it for a 5.x/6.x stream."""
    if not added:
        return 0
    if not length and group_id <= last:
        return added
    if group_id == last:
        return added
    if group_id > last:
        return cn.INVALID_ENTRIES_READ
    if maxdel == (0, 0) or maxdel < first:
        if group_id < first:
            return (added - length) & cn.MASK64
        if group_id == first:
            return (added - length + 1) & cn.MASK64
    return cn.INVALID_ENTRIES_READ


class _Parser:
    def __init__(self, data: bytes, sample: int, all_keys: bool) -> None:
        self.buf = data
        self.pos = 0
        self.version = 0
        self.sample = sample
        self.db = 0
        self.counts: dict[int, list[int]] = {}
        self.order: list[int] = []
        self.hashes: list[int] = []
        self.keys: list[RawKeyHash] = []
        self.heap: list[tuple[int, int, int, bytes, str]] = []  # (-hash, seq, db, key, type): a max-heap
        self.seq = 0
        self.all_keys = all_keys
        self.aux: list[tuple[bytes, bytes]] = []
        self.functions = 0
        self.module_aux = 0
        self.checksum = "none"

    # --- primitives ---------------------------------------------------------------------------------

    def take(self, n: int, what: str) -> bytes:
        remaining = len(self.buf) - self.pos
        if n > remaining:
            raise RdbParseError(f"truncated: {what} needs {n} bytes, only {remaining} remain", self.pos)
        data = self.buf[self.pos:self.pos + n]
        self.pos += n
        return data

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def length_or_encoding(self, what: str) -> tuple[int, bool]:
        off = self.pos
        b = self.u8(what)
        kind = b >> 6
        if kind == 0:
            return b & 0x3F, False
        if kind == 1:
            return ((b & 0x3F) << 8) | self.u8(what), False
        if kind == 2:
            if b == 0x80:
                return int.from_bytes(self.take(4, what), "big"), False
            if b == 0x81:
                return int.from_bytes(self.take(8, what), "big"), False
            raise RdbParseError(f"unknown length encoding 0x{b:02x} in {what}", off)
        return b & 0x3F, True

    def length(self, what: str) -> int:
        off = self.pos
        value, encoded = self.length_or_encoding(what)
        if encoded:
            raise RdbParseError(f"{what}: expected a length, found an encoded-value marker 0x{self.buf[off]:02x}", off)
        return value

    def string(self, what: str) -> bytes:
        off = self.pos
        n, encoded = self.length_or_encoding(what)
        if not encoded:
            return self.take(n, what)
        if n == 0:
            return cn.decimal(struct.unpack("<b", self.take(1, what))[0])
        if n == 1:
            return cn.decimal(struct.unpack("<h", self.take(2, what))[0])
        if n == 2:
            return cn.decimal(struct.unpack("<i", self.take(4, what))[0])
        if n == 3:
            clen = self.length("LZF compressed length")
            ulen = self.length("LZF uncompressed length")
            remaining = len(self.buf) - self.pos
            if clen > remaining:
                raise RdbParseError(f"truncated: {what} (LZF) needs {clen} bytes, only {remaining} remain", self.pos)
            if ulen == 0 or ulen // 96 > clen + 64:
                raise RdbParseError(f"{what}: LZF length {ulen} is impossible for {clen} compressed bytes", off)
            data = lzf_decompress(self.take(clen, what), ulen)
            if data is None:
                raise RdbParseError(f"{what}: LZF data does not decompress to its declared {ulen} bytes", off)
            return data
        raise RdbParseError(f"{what}: unknown string encoding {n}", off)

    def blob(self, what: str, listpack: bool) -> _Blob:
        off = self.pos
        return _Blob(self.string(what), off, what, listpack)

    # --- values ---------------------------------------------------------------------------------------

    def list_elements(self, rdb_type: int) -> list[bytes]:
        if rdb_type == T_LIST:
            return [self.string("list element") for _ in range(self.length("list length"))]
        if rdb_type == T_LIST_ZIPLIST:
            return [_text(e) for e in self.blob("list ziplist", listpack=False)]
        elements: list[bytes] = []
        for _ in range(self.length("quicklist node count")):
            if rdb_type == T_LIST_QUICKLIST_2:
                off = self.pos
                container = self.length("quicklist node container")
                if container == 1:
                    elements.append(self.string("quicklist plain node"))
                    continue
                if container != 2:
                    raise RdbParseError(f"quicklist node container {container} (neither 1 plain nor 2 packed)", off)
                elements += [_text(e) for e in self.blob("quicklist listpack node", listpack=True)]
            else:
                elements += [_text(e) for e in self.blob("quicklist ziplist node", listpack=False)]
        return elements

    def set_members(self, rdb_type: int) -> list[bytes]:
        if rdb_type == T_SET:
            return [self.string("set member") for _ in range(self.length("set size"))]
        if rdb_type == T_SET_LISTPACK:
            return [_text(e) for e in self.blob("set listpack", listpack=True)]
        off = self.pos
        data = self.string("intset")
        if len(data) < 8:
            raise RdbParseError(f"intset: {len(data)} bytes are too few", off)
        enc, count = struct.unpack_from("<II", data)
        if enc not in (2, 4, 8):
            raise RdbParseError(f"intset: unknown encoding {enc}", off)
        if enc * count + 8 != len(data):
            raise RdbParseError(f"intset: {count} members of {enc} bytes do not fill its {len(data)} bytes", off)
        fmt = {2: "h", 4: "i", 8: "q"}[enc]
        return [cn.decimal(v) for v in struct.unpack_from(f"<{count}{fmt}", data, 8)]

    def double_v1(self) -> float:
        off = self.pos
        n = self.u8("zset score")
        if n == 253:
            return math.nan
        if n == 254:
            return math.inf
        if n == 255:
            return -math.inf
        return _score(self.take(n, "zset score"), off, "zset score")

    def pairs(self, what: str, listpack: bool) -> Iterator[tuple[Element, Element, _Blob]]:
        blob = self.blob(what, listpack)
        items = iter(blob)
        for first in items:
            second = next(items, None)
            if second is None:
                raise RdbParseError(f"{what}: an odd number of entries", blob.offset)
            yield first, second, blob

    def zset_pairs(self, rdb_type: int) -> list[tuple[bytes, float]]:
        if rdb_type in (T_ZSET, T_ZSET_2):
            out = []
            for _ in range(self.length("zset size")):
                member = self.string("zset member")
                binary = rdb_type == T_ZSET_2
                out.append((member, struct.unpack("<d", self.take(8, "zset score"))[0] if binary else self.double_v1()))
            return out
        what = "zset listpack" if rdb_type == T_ZSET_LISTPACK else "zset ziplist"
        return [(_text(m), _element_score(s, blob.offset, what))
                for m, s, blob in self.pairs(what, rdb_type == T_ZSET_LISTPACK)]

    def hash_pairs(self, rdb_type: int) -> list[tuple[bytes, bytes]]:
        if rdb_type == T_HASH:
            out = []
            for _ in range(self.length("hash size")):
                field = self.string("hash field")
                out.append((field, self.string("hash value")))
            return out
        if rdb_type == T_HASH_ZIPMAP:
            return self.zipmap()
        what = "hash listpack" if rdb_type == T_HASH_LISTPACK else "hash ziplist"
        return [(_text(f), _text(v)) for f, v, _ in self.pairs(what, rdb_type == T_HASH_LISTPACK)]

    def zipmap(self) -> list[tuple[bytes, bytes]]:
        off = self.pos
        data = self.string("zipmap")
        end = len(data)

        def broken(message: str = "runs past the end") -> RdbParseError:
            return RdbParseError(f"zipmap: {message}", off)

        if end < 2 or data[-1] != 0xFF:
            raise broken("does not end with 0xFF")
        p = 1
        out: list[tuple[bytes, bytes]] = []
        while True:
            if p >= end:
                raise broken()
            if data[p] == 0xFF:
                return out
            parts: list[bytes] = []
            for j in range(2):
                if p >= end:
                    raise broken()
                n = data[p]
                if n == 254:
                    if end - p < 5:
                        raise broken()
                    n = int.from_bytes(data[p + 1:p + 5], "little")
                    p += 5
                elif n == 255:
                    raise broken("end marker inside an entry")
                else:
                    p += 1
                free = 0
                if j == 1:
                    if p >= end:
                        raise broken()
                    free = data[p]
                    p += 1
                if end - p < n + free:
                    raise broken()
                parts.append(data[p:p + n])
                p += n + free
            out.append((parts[0], parts[1]))

    def stream(self, rdb_type: int) -> cn.Stream:
        entries: list[tuple[cn.StreamID, tuple[tuple[bytes, bytes], ...]]] = []
        for _ in range(self.length("stream listpack count")):
            off = self.pos
            node_key = self.string("stream node key")
            if len(node_key) != 16:
                raise RdbParseError(f"stream node key of {len(node_key)} bytes (a stream ID has 16)", off)
            master_ms, master_seq = struct.unpack(">QQ", node_key)
            blob = self.blob("stream listpack", listpack=True)
            missing = "stream listpack without a master entry"
            blob.next_int(missing)
            blob.next_int(missing)
            nmf = blob.next_int(missing)
            if nmf < 0 or nmf > len(blob.data):
                raise blob.fail(blob.p, "impossible number of master fields")
            master_fields = [blob.next("stream master entry cut short") for _ in range(nmf)]
            blob.next_int("stream master entry without its terminator")
            while blob.p != blob.end:
                flags = blob.next("")
                if not isinstance(flags, int):
                    raise blob.fail(blob.p, "stream entry flags are not an integer")
                ms = (master_ms + blob.next_int("stream entry cut short")) & cn.MASK64
                seq = (master_seq + blob.next_int("stream entry cut short")) & cn.MASK64
                same = bool(flags & 2)
                nf = nmf if same else blob.next_int("stream entry cut short")
                if nf < 0:
                    raise blob.fail(blob.p, "negative number of stream entry fields")
                fields: list[tuple[bytes, bytes]] = []
                for j in range(nf):
                    if same:
                        fields.append((_text(master_fields[j]), _text(blob.next("stream entry cut short"))))
                    else:
                        f = blob.next("stream entry cut short")
                        fields.append((_text(f), _text(blob.next("stream entry cut short"))))
                blob.next_int("stream entry without its lp-count")
                if not flags & 1:
                    entries.append(((ms, seq), tuple(fields)))
        length = self.length("stream length")
        last = (self.length("stream last ID"), self.length("stream last ID"))
        if rdb_type >= T_STREAM_LISTPACKS_2:
            first = (self.length("stream first ID"), self.length("stream first ID"))
            maxdel = (self.length("stream max deleted ID"), self.length("stream max deleted ID"))
            added = self.length("stream entries added")
        else:  # what Redis 7 derives when it loads a stream of Redis 5/6
            first = entries[0][0] if entries else (cn.MASK64, cn.MASK64)
            maxdel = (0, 0)
            added = length
        groups = []
        for _ in range(self.length("stream group count")):
            name = self.string("stream group name")
            group_last = (self.length("stream group last ID"), self.length("stream group last ID"))
            if rdb_type >= T_STREAM_LISTPACKS_2:
                read = self.length("stream group entries read")
            else:
                read = _estimate_entries_read(added, length, last, first, maxdel, group_last)
            pel = []
            for _ in range(self.length("stream PEL size")):
                pid = struct.unpack(">QQ", self.take(16, "stream PEL entry ID"))
                when = int.from_bytes(self.take(8, "stream PEL delivery time"), "little")
                pel.append(cn.StreamPending(pid, when, self.length("stream PEL delivery count")))
            consumers = []
            for _ in range(self.length("stream consumer count")):
                cname = self.string("stream consumer name")
                seen = int.from_bytes(self.take(8, "stream consumer seen time"), "little")
                active = seen
                if rdb_type >= T_STREAM_LISTPACKS_3:
                    active = int.from_bytes(self.take(8, "stream consumer active time"), "little")
                pending = tuple(struct.unpack(">QQ", self.take(16, "stream consumer PEL ID"))
                                for _ in range(self.length("stream consumer PEL size")))
                consumers.append(cn.StreamConsumer(cname, seen, active, pending))
            groups.append(cn.StreamGroup(name, group_last, read, tuple(pel), tuple(consumers)))
        return cn.Stream(tuple(entries), length, last, first, maxdel, added, tuple(groups))

    def module_opcodes(self) -> bytes:
        out = bytearray()
        while True:
            off = self.pos
            op = self.length("module opcode")
            out.append(op & 0xFF)
            if op == MOD_EOF:
                return bytes(out)
            if op in (MOD_SINT, MOD_UINT):
                out += cn.u64(self.length("module integer"))
            elif op == MOD_FLOAT:
                out += self.take(4, "module float")
            elif op == MOD_DOUBLE:
                out += self.take(8, "module double")
            elif op == MOD_STRING:
                out += cn.framed(self.string("module string"))
            else:
                raise RdbParseError(f"unknown module opcode {op}", off)

    # --- keys and the file ----------------------------------------------------------------------------

    def key(self, rdb_type: int, type_off: int, expire_ms: int | None) -> None:
        if rdb_type == T_MODULE_PRE_GA:
            raise RdbParseError("a module value of the pre-GA format (RDB type 6, Redis 4.0 release candidates) "
                                "cannot be skipped without its module", type_off, "unsupported")
        known = {T_STRING, T_MODULE_2} | LISTS | SETS | ZSETS | HASHES | STREAMS
        if rdb_type not in known:
            raise RdbParseError(f"unknown value type or opcode {rdb_type} (0x{rdb_type:02x})", type_off,
                                "unsupported")
        key = self.string("key")
        count = 1
        if rdb_type == T_STRING:
            tag, type_name, value = cn.TAG_STRING, "string", cn.string_value(self.string("string value"))
        elif rdb_type in LISTS:
            elements = self.list_elements(rdb_type)
            tag, type_name, value, count = cn.TAG_LIST, "list", cn.list_value(elements), len(elements)
        elif rdb_type in SETS:
            members = self.set_members(rdb_type)
            tag, type_name, value, count = cn.TAG_SET, "set", cn.set_value(members), len(members)
        elif rdb_type in ZSETS:
            scored = self.zset_pairs(rdb_type)
            tag, type_name, value, count = cn.TAG_ZSET, "zset", cn.zset_value(scored), len(scored)
        elif rdb_type in HASHES:
            fields = self.hash_pairs(rdb_type)
            tag, type_name, value, count = cn.TAG_HASH, "hash", cn.hash_value(fields), len(fields)
        elif rdb_type in STREAMS:
            tag, type_name, value = cn.TAG_STREAM, "stream", cn.stream_value(self.stream(rdb_type))
        else:
            module_id = self.length("module id")
            tag, type_name = cn.TAG_MODULE, module_name(module_id)
            value = cn.u64(module_id) + self.module_opcodes()
        if count == 0:
            return  # Redis drops an empty collection when it loads the file
        h = cn.key_hash(self.db, key, expire_ms, tag, value)
        self.hashes.append(h)
        if self.db not in self.counts:
            self.counts[self.db] = [0, 0]
            self.order.append(self.db)
        self.counts[self.db][0] += 1
        if expire_ms is not None:
            self.counts[self.db][1] += 1
        entry = (self.db, key, h.to_bytes(16, "little"), type_name)
        if self.all_keys:
            self.keys.append(entry)
        if self.sample > 0:
            item = (-h, -self.seq, self.db, key, type_name)
            self.seq += 1
            if len(self.heap) < self.sample:
                heapq.heappush(self.heap, item)
            elif h < -self.heap[0][0]:
                heapq.heapreplace(self.heap, item)

    def parse(self) -> None:
        buf = self.buf
        if not buf:
            raise RdbParseError("truncated: the file is empty", 0)
        if len(buf) < 9 or buf[:5] != b"REDIS":
            shown = escaped(buf[:9])
            raise RdbParseError(f'not an RDB file: it starts with "{shown}", not "REDIS" and a 4-digit version', 0)
        digits = buf[5:9]
        if not all(0x30 <= b <= 0x39 for b in digits):
            raise RdbParseError("not an RDB file: the version is not 4 digits", 5)
        self.version = int(digits)
        if not 1 <= self.version <= MAX_RDB_VERSION:
            raise RdbParseError(f"RDB version {self.version} (this build reads versions 1 to {MAX_RDB_VERSION})", 5,
                                "unsupported")
        self.pos = 9
        expire_ms: int | None = None
        while True:
            off = self.pos
            op = self.u8("the next type or opcode (the file ends before its EOF marker)")
            if op == OP_EXPIRETIME_MS:
                expire_ms = struct.unpack("<q", self.take(8, "expire time"))[0]
            elif op == OP_EXPIRETIME:
                expire_ms = struct.unpack("<i", self.take(4, "expire time"))[0] * 1000
            elif op == OP_IDLE:
                self.length("LRU idle time")
            elif op == OP_FREQ:
                self.u8("LFU frequency")
            elif op == OP_SELECTDB:
                self.db = self.length("database number")
            elif op == OP_RESIZEDB:
                self.length("database size hint")
                self.length("expires size hint")
            elif op == OP_AUX:
                name = self.string("aux field name")
                self.aux.append((name, self.string("aux field value")))
            elif op == OP_MODULE_AUX:
                module_id = self.length("module aux id")
                woff = self.pos
                when_op = self.length("module aux when-opcode")
                when = self.length("module aux when")
                if when_op != MOD_UINT:
                    raise RdbParseError(f"module aux: when-opcode {when_op} (expected 2)", woff)
                self.hashes.append(cn.siphash128(cn.TAG_MODULE_AUX + cn.u64(module_id) + cn.u64(when)
                                                 + self.module_opcodes()))
                self.module_aux += 1
            elif op == OP_FUNCTION_PRE_GA:
                raise RdbParseError("a function library in the pre-release format of the Redis 7.0 release "
                                    "candidates (opcode 246)", off, "unsupported")
            elif op == OP_FUNCTION2:
                self.hashes.append(cn.function_hash(self.string("function library code")))
                self.functions += 1
            elif op == OP_EOF:
                self.finish()
                return
            else:
                self.key(op, off, expire_ms)
                expire_ms = None

    def finish(self) -> None:
        end = self.pos
        if self.version < 5:
            return
        stored = int.from_bytes(self.take(8, "the CRC64 after the EOF marker"), "little")
        if stored == 0:
            self.checksum = "absent"
            return
        computed = crc64(memoryview(self.buf)[:end])
        if computed != stored:
            raise RdbParseError(f"CRC64 mismatch: the file stores {stored:016x}, its bytes give {computed:016x} "
                                "(a byte changed after Redis wrote it)", end)
        self.checksum = "verified"

    def crc_hint(self) -> int:
        buf = self.buf
        if self.version < 5 or len(buf) < 18 or buf[-9] != OP_EOF:
            return -1
        stored = int.from_bytes(buf[-8:], "little")
        if stored == 0:
            return -1
        return int(crc64(memoryview(buf)[:-8]) == stored)

    def result(self) -> RawDigest:
        sample = sorted(((db, key, (-neg).to_bytes(16, "little"), kind) for neg, _, db, key, kind in self.heap),
                        key=lambda item: int.from_bytes(item[2], "little"))
        return RawDigest(
            value=cn.combine(self.hashes).to_bytes(16, "little"),
            rdb_version=self.version,
            dbs=[(db, self.counts[db][0], self.counts[db][1]) for db in self.order],
            functions=self.functions,
            module_aux=self.module_aux,
            aux=self.aux,
            sample=sample,
            keys=self.keys if self.all_keys else None,
            checksum=self.checksum,
            bytes=len(self.buf),
        )


def digest_bytes(data: bytes, sample: int = 64, all_keys: bool = False) -> RawDigest:
    """The digest of RDB bytes in memory (the same answer as ``_digest.digest_bytes``)."""
    parser = _Parser(bytes(data), sample, all_keys)
    try:
        parser.parse()
    except RdbParseError as exc:
        message, offset, kind = exc.args
        hint = parser.crc_hint()
        if hint == 0 and not message.startswith("CRC64"):
            message += "; the file's CRC64 does not match either: it is corrupt"
        elif hint == 1:
            message += "; the file's CRC64 matches, so Redis wrote it like this (a newer Redis?)"
        raise RdbParseError(message, offset, kind) from None
    return parser.result()


def digest_file(path: str | Path, sample: int = 64, all_keys: bool = False) -> RawDigest:
    """The digest of an RDB file (read whole into memory)."""
    return digest_bytes(Path(path).read_bytes(), sample, all_keys)
