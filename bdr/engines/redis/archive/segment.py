"""The segment format: a sealed, checksummed, time-indexed piece of a Redis replication stream.

A segment holds the bytes a master streamed between two replication offsets, unchanged
(RESP commands, exactly what an AOF holds), plus the *time index* that lets a restore stop
at a moment. Its name says what it covers, so a listing alone maps the archive::

    <start:020d>-<end:020d>-<first_us:016d>-<last_us:016d>-<kind>.seg

``start``/``end`` are master offsets (the bytes ``start+1 .. end``; ``start`` is the ``end``
of the segment before it), ``first_us``/``last_us`` the earliest and latest time of its
marks (UTC microseconds, the archiver's clock), ``kind`` ``x`` (*exact*: every byte was
received as the master sent it) or ``c`` (*catch-up*: bytes the master had buffered while
the archiver was away or loading a full sync; when they were executed is only known to lie
before ``last_us``).

The object (before the repository's optional encryption)::

    b"BDRSEG1\\n"                     magic
    uint32 big-endian                length of the header
    header                           JSON: format, instance, replid, start, end, kind, marks, commands,
                                     payload_sha256, marks_sha256, sealed_at, archiver host and pid
    marks                            16 bytes each: int64 offset, int64 time (UTC microseconds)
    payload                          the stream bytes (start, end]
    sha256                           32 bytes: of everything before it

A **mark** ``(offset, t)`` says: every byte up to ``offset`` had been executed by the master at
time ``t`` (it had reached the archiver, or the master reported a larger offset by then).
Every mark is a clean command boundary (:mod:`.scanner`); the last mark is ``(end, seal
time)``. A restore to ``T`` replays up to the largest offset marked at or before ``T``.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, BinaryIO

from bdr.errors import SegmentCorrupt

MAGIC = b"BDRSEG1\n"
FORMAT = "bdr-redis-stream-1"
MARK = struct.Struct(">qq")
LENGTH = struct.Struct(">I")
SUFFIX = ".seg"
NAME = re.compile(r"^(?P<start>\d{20})-(?P<end>\d{20})-(?P<first>\d{16})-(?P<last>\d{16})-(?P<kind>[xc])\.seg$")
COPY_CHUNK = 1 << 20


class Kind(StrEnum):
    EXACT = "x"
    CATCH_UP = "c"


@dataclass(frozen=True, slots=True)
class Mark:
    """Every byte up to ``offset`` had been executed by ``us`` (UTC microseconds)."""

    offset: int
    us: int


@dataclass(frozen=True, slots=True)
class SegmentName:
    """What a segment's name says: its offsets, the times of its marks, its kind."""

    start: int
    end: int
    first_us: int
    last_us: int
    kind: Kind

    @property
    def name(self) -> str:
        return f"{self.start:020d}-{self.end:020d}-{self.first_us:016d}-{self.last_us:016d}-{self.kind}{SUFFIX}"

    @property
    def size(self) -> int:
        return self.end - self.start

    @classmethod
    def parse(cls, name: str) -> SegmentName | None:
        match = NAME.match(name)
        if match is None:
            return None
        return cls(int(match["start"]), int(match["end"]), int(match["first"]), int(match["last"]),
                   Kind(match["kind"]))


@dataclass(frozen=True, slots=True)
class Header:
    """The JSON header of a segment."""

    instance: str
    replid: str
    start: int
    end: int
    kind: Kind
    marks: int
    commands: int
    payload_sha256: str
    marks_sha256: str
    sealed_at: str
    host: str = ""
    pid: int = 0

    def to_json(self) -> bytes:
        return json.dumps({"format": FORMAT, "instance": self.instance, "replid": self.replid, "start": self.start,
                           "end": self.end, "kind": str(self.kind), "marks": self.marks, "commands": self.commands,
                           "payload_sha256": self.payload_sha256, "marks_sha256": self.marks_sha256,
                           "sealed_at": self.sealed_at, "host": self.host, "pid": self.pid},
                          sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, key: str) -> Header:
        try:
            data: dict[str, Any] = json.loads(raw)
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, not {FORMAT}")
            return cls(str(data["instance"]), str(data["replid"]), int(data["start"]), int(data["end"]),
                       Kind(data["kind"]), int(data["marks"]), int(data["commands"]), str(data["payload_sha256"]),
                       str(data["marks_sha256"]), str(data["sealed_at"]), str(data.get("host", "")),
                       int(data.get("pid", 0)))
        except (ValueError, KeyError, TypeError) as exc:
            raise SegmentCorrupt(key=key, detail=f"unreadable header ({exc})") from exc


def pack_marks(marks: Sequence[Mark]) -> bytes:
    return b"".join(MARK.pack(m.offset, m.us) for m in marks)


def unpack_marks(raw: bytes) -> list[Mark]:
    return [Mark(offset, us) for offset, us in MARK.iter_unpack(raw)]


def encode(header: Header, marks: Sequence[Mark], payload: bytes) -> bytes:
    """The whole segment object (see the module docstring)."""
    head = header.to_json()
    body = MAGIC + LENGTH.pack(len(head)) + head + pack_marks(marks) + payload
    return body + hashlib.sha256(body).digest()


def name_of(header: Header, marks: Sequence[Mark]) -> SegmentName:
    return SegmentName(header.start, header.end, min(m.us for m in marks), max(m.us for m in marks), header.kind)


class _Hashing:
    """Reads exactly, hashing everything read."""

    def __init__(self, stream: BinaryIO, key: str) -> None:
        self.stream = stream
        self.key = key
        self.digest = hashlib.sha256()

    def exact(self, size: int, what: str) -> bytes:
        parts = []
        left = size
        while left:
            chunk = self.stream.read(min(left, COPY_CHUNK))
            if not chunk:
                raise SegmentCorrupt(key=self.key, detail=f"truncated in its {what}")
            parts.append(chunk)
            left -= len(chunk)
        data = b"".join(parts)
        self.digest.update(data)
        return data


class SegmentReader:
    """A segment read from a stream: header and marks first (checked), then the payload, checked at its end.

    ``payload(upto)`` yields the payload bytes up to the absolute offset ``upto`` and
    then reads (and checks) the rest: a segment is never used without its checksum passing.
    """

    def __init__(self, stream: BinaryIO, key: str, expected: SegmentName | None = None) -> None:
        self.key = key
        self._in = _Hashing(stream, key)
        magic = self._in.exact(len(MAGIC), "magic")
        if magic != MAGIC:
            raise SegmentCorrupt(key=key, detail=f"not a bdr stream segment (starts {magic!r})")
        (length,) = LENGTH.unpack(self._in.exact(LENGTH.size, "header length"))
        if length > 1 << 20:
            raise SegmentCorrupt(key=key, detail=f"header of {length} bytes")
        self.header = Header.from_json(self._in.exact(length, "header"), key)
        raw = self._in.exact(self.header.marks * MARK.size, "time index")
        if hashlib.sha256(raw).hexdigest() != self.header.marks_sha256:
            raise SegmentCorrupt(key=key, detail="its time index does not match its checksum")
        self.marks = unpack_marks(raw)
        if expected is not None and (expected.start, expected.end, expected.kind) != (
                self.header.start, self.header.end, self.header.kind):
            raise SegmentCorrupt(key=key, detail=f"its header covers {self.header.start}-{self.header.end} "
                                 f"({self.header.kind}), its name {expected.start}-{expected.end} ({expected.kind})")
        if not self.marks or max(m.offset for m in self.marks) != self.header.end:
            raise SegmentCorrupt(key=key, detail="its time index does not reach its end")
        self._done = False

    def payload(self, skip_to: int | None = None, upto: int | None = None) -> Iterator[bytes]:
        """The payload bytes after absolute offset ``skip_to`` up to ``upto`` (inclusive).

        The whole object is read and checked (:class:`SegmentCorrupt`) before the last chunk is
        yielded: a caller that consumes the generator to its end never uses an unchecked byte.
        """
        start, end = self.header.start, self.header.end
        lo = max(start, skip_to if skip_to is not None else start)
        hi = min(end, upto if upto is not None else end)
        payload_hash = hashlib.sha256()
        position = start
        pending: list[bytes] = []
        while position < end:
            chunk = self._in.exact(min(COPY_CHUNK, end - position), "payload")
            payload_hash.update(chunk)
            first, last = position, position + len(chunk)
            position = last
            a, b = max(lo, first), min(hi, last)
            if a < b:
                pending.append(chunk[a - first:b - first])
            if len(pending) > 4:
                yield from pending
                pending = []
        if payload_hash.hexdigest() != self.header.payload_sha256:
            raise SegmentCorrupt(key=self.key, detail="its payload does not match its checksum")
        self._finish()
        yield from pending

    def _finish(self) -> None:
        expected = self._in.digest.digest()
        trailer = self._in.stream.read(32)
        if trailer != expected:
            raise SegmentCorrupt(key=self.key, detail="its trailing checksum does not match (truncated or changed)")
        if self._in.stream.read(1):
            raise SegmentCorrupt(key=self.key, detail="bytes after its trailing checksum")
        self._done = True

    def verify(self) -> None:
        """Read the rest and check it."""
        for _ in self.payload(upto=self.header.start):
            pass
