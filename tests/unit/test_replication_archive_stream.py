"""The archive's stream format: command boundaries, the segment object, the cut at a moment."""

from __future__ import annotations

import io
import random

import pytest

from bdr.engines.redis.archive.replay import cut_of, resp
from bdr.engines.redis.archive.scanner import CommandScanner, is_whole
from bdr.engines.redis.archive.segment import (
    Header,
    Kind,
    Mark,
    SegmentName,
    SegmentReader,
    encode,
    name_of,
    pack_marks,
)
from bdr.errors import SegmentCorrupt, StreamDesync

STREAM = (resp("SELECT", "0") + resp("SET", "a", "1") + resp("MULTI") + resp("SET", "b", "2")
          + resp("INCRBY", "c", "1") + resp("EXEC") + resp("PING") + resp("REPLCONF", "GETACK", "*")
          + resp("set", "d", b"\x00\r\n*3\r\n$3\r\nSET\r\n"))
"""SELECT, a write, a transaction, a ping, a GETACK, and a value that looks like a command."""


def ends(*commands: bytes) -> int:
    return sum(len(c) for c in commands)


def test_clean_boundaries_skip_the_inside_of_a_transaction_and_pings_change_no_data() -> None:
    scanner = CommandScanner(1000)
    seen = []
    for i in range(len(STREAM)):
        scan = scanner.feed(STREAM[i:i + 1])
        seen.append((scan.clean, scan.data))
    select, write = resp("SELECT", "0"), resp("SET", "a", "1")
    transaction = resp("MULTI") + resp("SET", "b", "2") + resp("INCRBY", "c", "1") + resp("EXEC")
    after_exec = 1000 + ends(select, write, transaction)
    cleans = sorted({c for c, _ in seen})
    assert cleans == [1000, 1000 + len(select), 1000 + ends(select, write), after_exec,
                      after_exec + len(resp("PING")),
                      after_exec + len(resp("PING")) + len(resp("REPLCONF", "GETACK", "*")), 1000 + len(STREAM)]
    assert not any(1000 + ends(select, write) < c < after_exec for c in cleans), "a cut inside MULTI/EXEC"
    assert seen[-1] == (1000 + len(STREAM), 1000 + len(STREAM))
    assert scanner.commands == 9 and scanner.clean_commands == 9


def test_a_ping_after_the_last_write_leaves_the_data_offset_before_it() -> None:
    scanner = CommandScanner(0)
    scan = scanner.feed(resp("SET", "a", "1") + resp("PING") + resp("SELECT", "3"))
    assert scan.data == len(resp("SET", "a", "1"))
    assert scan.clean == len(resp("SET", "a", "1") + resp("PING") + resp("SELECT", "3"))


def test_getack_is_noticed_and_chunks_split_anywhere_give_the_same_boundaries() -> None:
    rng = random.Random(7)
    whole = CommandScanner(0)
    assert whole.feed(STREAM).getack
    for _ in range(50):
        scanner = CommandScanner(0)
        pos = 0
        while pos < len(STREAM):
            step = rng.randint(1, 40)
            scanner.feed(STREAM[pos:pos + step])
            pos += step
        assert (scanner.clean, scanner.data, scanner.commands) == (whole.clean, whole.data, whole.commands)


def test_a_big_value_arriving_in_many_chunks_is_collected_not_reparsed() -> None:
    big = resp("SET", "big", b"x" * (3 << 20)) + resp("SET", "a", "b")
    scanner = CommandScanner(0)
    for i in range(0, len(big), 4096):
        scanner.feed(big[i:i + 4096])
    assert scanner.clean == len(big) and scanner.commands == 2


def test_bytes_that_are_not_resp_are_a_desync() -> None:
    with pytest.raises(StreamDesync):
        CommandScanner(0).feed(b"+OK\r\n")
    assert is_whole(STREAM) and not is_whole(STREAM[:-1]) and not is_whole(resp("MULTI") + resp("SET", "a", "1"))


def segment(payload: bytes = STREAM, kind: Kind = Kind.EXACT) -> tuple[bytes, SegmentName]:
    import hashlib

    marks = [Mark(100 + len(resp("SELECT", "0")), 1_000_000), Mark(100 + len(payload), 2_000_000)]
    header = Header("production", "a" * 40, 100, 100 + len(payload), kind, len(marks), 9,
                    hashlib.sha256(payload).hexdigest(), hashlib.sha256(pack_marks(marks)).hexdigest(),
                    "2026-12-02T14:00:00.000000Z")
    return encode(header, marks, payload), name_of(header, marks)


def test_a_segment_reads_back_its_header_marks_and_payload() -> None:
    data, name = segment()
    assert SegmentName.parse(name.name) == name
    assert (name.start, name.end, name.first_us, name.last_us, name.kind) == (100, 100 + len(STREAM), 1_000_000,
                                                                              2_000_000, Kind.EXACT)
    reader = SegmentReader(io.BytesIO(data), "k", name)
    assert reader.header.replid == "a" * 40 and [m.us for m in reader.marks] == [1_000_000, 2_000_000]
    assert b"".join(reader.payload()) == STREAM
    reader = SegmentReader(io.BytesIO(data), "k", name)
    assert b"".join(reader.payload(skip_to=100 + len(resp("SELECT", "0")), upto=100 + ends(
        resp("SELECT", "0"), resp("SET", "a", "1")))) == resp("SET", "a", "1")


@pytest.mark.parametrize("where", ["payload", "marks", "trailer", "truncated", "appended"])
def test_a_changed_or_cut_segment_is_refused_before_its_last_byte_is_used(where: str) -> None:
    data, name = segment()
    raw = bytearray(data)
    if where == "payload":
        raw[-40] ^= 1
    elif where == "marks":
        raw[len(raw) - 32 - len(STREAM) - 3] ^= 1
    elif where == "trailer":
        raw[-1] ^= 1
    elif where == "truncated":
        del raw[-10:]
    else:
        raw += b"x"
    with pytest.raises(SegmentCorrupt):
        reader = SegmentReader(io.BytesIO(bytes(raw)), "k", name)
        for _ in reader.payload():
            pass


def test_a_segment_whose_name_does_not_match_its_header_is_refused() -> None:
    data, name = segment()
    other = SegmentName(name.start, name.end, name.first_us, name.last_us, Kind.CATCH_UP)
    with pytest.raises(SegmentCorrupt, match="its name"):
        SegmentReader(io.BytesIO(data), "k", other)


def test_the_cut_is_the_largest_offset_marked_by_the_moment_never_before_the_base() -> None:
    marks = [(110, 1_000), (150, 2_000), (150, 2_900), (180, 3_000), (170, 2_500)]
    assert cut_of(100, 500, 2_950, marks) == (170, 2_500, 2_500)
    assert cut_of(100, 500, 2_400, marks) == (150, 2_000, 2_000)
    assert cut_of(100, 500, 2_000, marks)[:2] == (150, 2_000)
    assert cut_of(100, 500, 2_950, [(150, 2_000), (150, 2_900)]) == (150, 2_000, 2_900)
    assert cut_of(200, 500, 9_000, marks) == (200, 500, 500)
