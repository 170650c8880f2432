"""The content digest of a Redis RDB file (``bdr-rdb-1``), computed from the file alone.

Redis 7 ships with ``enable-debug-command no``, so ``DEBUG DIGEST`` is not there on
production, and where it is it blocks the server for seconds. bdr instead digests the RDB
file it has just copied: nothing touches the server, any size works, and the C extension
(:mod:`._digest`, about 1 GB/s on one core) keeps pace with the copy. The digest describes
*content*, not bytes: it does not change with key order, with the encoding Redis chose
(listpack or hash table, intset or listpack, quicklist node sizes, ziplist or listpack,
LZF or not) or with the RDB version, so it also proves after a restore that a Redis that
re-saved its memory holds what the backup held; a sample of per-key hashes lets a live
server be compared key by key with ordinary read commands (:mod:`.live`).

This is not a signature: the SipHash key is public and the combination is a plain sum.
Tamper evidence comes from the manifest's sha256 of every file and its own digest.

Definition (bdr-rdb-1)
----------------------

Notation::

    H(m)     SipHash-2-4 with 128-bit output (Aumasson & Bernstein; the reference
             implementation with outlen 16) keyed with the 16 ASCII bytes
             "bdr-rdb-digest-1"; its 16 output bytes read as a little-endian
             unsigned 128-bit integer
    u8(n)    one byte
    u64(n)   8 bytes little-endian (negative numbers as two's complement)
    u128(n)  16 bytes little-endian
    str(b)   u64(len(b)) || b
    f64(d)   the IEEE-754 binary64 bits of d, little-endian; -0.0 as 0.0 (Redis
             itself stores -0 as the integer 0 when it turns a skiplist into a
             listpack), every NaN as 0x7ff8000000000000
    dec(n)   an integer as ASCII decimal, "-" for negatives (what GET returns for an
             integer-encoded string)
    Σ        sum modulo 2^128

Per-key hash, for a key in database ``db`` with name ``key`` (bytes)::

    h = H( u64(db) || str(key) || expiry || u8(tag) || value )
    expiry = u8(0)                   no expiry
           | u8(1) || u64(ms)        absolute Unix time in milliseconds (an RDB
                                     EXPIRETIME in seconds counts as seconds x 1000)

``tag`` and ``value`` by type (every integer-encoded element or member becomes dec(n)
first; LZF-compressed strings are decompressed)::

    string  's'  str(value)
    list    'l'  str(e1) || str(e2) || ... || str(en)          in list order
    set     'S'  u64(n) || u128( Σ H('S' || str(member)) )
    hash    'h'  u64(n) || u128( Σ H('h' || str(field) || str(value)) )
    zset    'z'  u64(n) || u128( Σ H('z' || str(member) || f64(score)) )
    stream  'x'  entries || meta || groups (below)
    module  'm'  u64(module id) || the value's module opcodes (below)

A zset score is the double Redis holds, whatever the file stores: a binary double
(ZSET_2), a string (ZSET v1, ziplist, listpack; 253/254/255 in ZSET v1 are NaN, +inf,
-inf) or an integer listpack entry, so all encodings of one score hash alike.

Stream (what ``XINFO STREAM key FULL COUNT 0`` shows, less what is derived from it: lag,
pel-count, radix-tree sizes)::

    entries = for each entry in ID order (deleted entries are not entries):
                  'e' || u64(ms) || u64(seq) || u64(nfields) || str(f1) || str(v1) || ...
    meta    = 'm' || u64(length) || u64(last.ms) || u64(last.seq)
                  || u64(first.ms) || u64(first.seq) || u64(maxdel.ms) || u64(maxdel.seq)
                  || u64(entries_added) || u64(ngroups)
    groups  = for each group in name order (byte-wise, as Redis stores them):
                  'g' || str(name) || u64(last.ms) || u64(last.seq) || u64(entries_read)
                      || u64(npending) || for each pending entry in ID order:
                             u64(ms) || u64(seq) || u64(delivery_time) || u64(delivery_count)
                      || u64(nconsumers) || for each consumer in name order:
                             'c' || str(name) || u64(seen_time) || u64(active_time)
                                 || u64(npending) || for each: u64(ms) || u64(seq)

An unknown entries_read (XINFO shows nil) is u64(-1). A stream written by Redis 5/6
(RDB type 15) has no first ID, max deleted ID, entries added, entries read or active
time: they are derived exactly as Redis 7 derives them when it loads such a file (first
ID: the first entry's, or 2^64-1 twice when there is none; max deleted 0-0; entries added:
the length; entries read: streamEstimateDistanceFromFirstEverEntry; active time: the seen
time), so a 6.x file and the 7.x re-save of it hash alike. Consumer seen and active times
are part of the stream (they are data Redis keeps, shown by XINFO); idle/LRU and LFU
information never is.

Module value (RDB_TYPE_MODULE_2; skipped by its opcode structure, no module needed)::

    for each opcode up to and including EOF (0):
        u8(opcode) || SINT/UINT: u64(n) | FLOAT: its 4 bytes | DOUBLE: its 8 bytes
                    | STRING: str(decoded bytes) | EOF: nothing

The dataset digest::

    D = Σ h(key)                                              over every key of every db
      + Σ H('F' || str(library code))                         every FUNCTION library
      + Σ H('A' || u64(module id) || u64(when) || opcodes)    every module aux section
    written as 32 lowercase hex digits, most significant first (an empty dataset is 0).

A per-key hash is written the same way; the sample is the ``k`` keys with the smallest
per-key hashes (bottom-k), smallest first: deterministic, and the same keys for the same
data wherever it is stored.

What the digest is independent of: key order, encodings, RDB version, LZF compression,
the RDB's aux fields (``ctime``, ``redis-ver``...), ``RESIZEDB`` hints, LRU idle and LFU
frequency. A key holding an empty collection is skipped (Redis drops it when it loads the
file). Keys whose TTL has passed are still in a file and so in its digest; a server that
loads the file drops them, so compare a restore with a backup's digest only for data that
has not expired meanwhile.

Covered: every RDB version 1 to 11 (Redis 2.x to 7.2) and the types of version 12 it
shares; strings (raw, integer, LZF); lists (plain, ziplist, quicklist of ziplists,
quicklist 2 of listpacks and plain nodes); sets (plain, intset, listpack); zsets (v1
string scores, v2 binary doubles, ziplist, listpack); hashes (plain, zipmap, ziplist,
listpack); streams v1, v2, v3 with groups, PELs and consumers; module values
(MODULE_2) and module aux data; function libraries (FUNCTION2); opcodes AUX, RESIZEDB,
SELECTDB, EXPIRETIME, EXPIRETIME_MS, IDLE, FREQ, EOF and the CRC64 (verified when not
zero). Refused with :class:`~.errors.RdbUnsupported`: the pre-GA module format (type 6),
pre-GA functions (opcode 246), the hash-field-expiry types of Redis 7.4 (22 to 25) and
any other unknown type or opcode. Truncated or damaged files raise
:class:`~.errors.RdbCorrupt`; both name the byte offset.
"""

from __future__ import annotations

from bdr.engines.redis.rdb.canonical import ALGORITHM
from bdr.engines.redis.rdb.digest import (
    ContentDigest,
    Implementation,
    KeyHash,
    available,
    digest_bytes,
    digest_file,
    key_hashes,
)
from bdr.engines.redis.rdb.live import LiveKey, LiveStatus, SampleComparison, compare_sample, live_key_hashes
from bdr.errors import DigestExtensionMissing, RdbCorrupt, RdbNotFound, RdbUnreadable, RdbUnsupported

__all__ = [
    "ALGORITHM",
    "ContentDigest",
    "DigestExtensionMissing",
    "Implementation",
    "KeyHash",
    "LiveKey",
    "LiveStatus",
    "RdbCorrupt",
    "RdbNotFound",
    "RdbUnreadable",
    "RdbUnsupported",
    "SampleComparison",
    "available",
    "compare_sample",
    "digest_bytes",
    "digest_file",
    "key_hashes",
    "live_key_hashes",
]
