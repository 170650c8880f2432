"""Where the commands of a replication stream begin and end: the boundaries a restore may cut at.

A master streams its writes to a replica as RESP arrays of bulk strings, exactly what an AOF
holds (``*3\\r\\n$3\\r\\nSET\\r\\n...``), and counts its *replication offset* in bytes of that
stream. The archiver stores the bytes unchanged; this scanner walks them as they arrive and
reports, for each received chunk, the offset just after the last command that is a **clean
boundary**: a whole command outside a ``MULTI`` ... ``EXEC`` block. Every mark, every
segment end and every restore cut is such a boundary, so a segment is a loadable AOF fragment
on its own and a restore never replays half a transaction.

It also notices the master's ``REPLCONF GETACK`` (answered at once with an ACK) and which
commands change data (everything but ``PING``, ``SELECT``, ``REPLCONF``): a stretch of pings
changes nothing, so a restore to a time inside it needs no newer segment.

Pure Python, one pass, about a microsecond and a half per command: the stream of 50,000
writes a second costs the archiver well under a tenth of a core.
"""

from __future__ import annotations

from dataclasses import dataclass

from bdr.errors import StreamDesync

QUIET = frozenset({b"PING", b"SELECT", b"REPLCONF"})
"""Commands of the stream that change no data."""


@dataclass(slots=True)
class Scan:
    """What one chunk brought (offsets relative to the scanner's origin)."""

    clean: int
    """Offset after the last clean boundary seen so far."""
    data: int
    """Offset after the last clean boundary that follows a data-changing command."""
    commands: int
    """Whole commands completed by this chunk."""
    getack: bool = False
    """The master asked for an acknowledgement (``REPLCONF GETACK``)."""


class CommandScanner:
    """Incremental boundary finder over the bytes of a stream, fed chunk by chunk.

    ``origin`` is the offset of the first byte fed minus one (the master's offset *after*
    which the bytes start); every offset it reports is absolute in the master's terms.
    """

    def __init__(self, origin: int, name: str = "?", in_multi: bool = False) -> None:
        self.origin = origin
        self.name = name
        self._tail = b""
        self._waiting: list[bytes] = []
        self._waiting_size = 0
        self._need = 0
        """Bytes (tail included) the command in progress needs at least: a big value arriving in many chunks is
        collected, not re-parsed with every chunk."""
        self._tail_at = origin
        """Absolute offset of the first byte of ``_tail`` minus one."""
        self.in_multi = in_multi
        self.clean = origin
        self.data = origin
        self.commands = 0
        self.clean_commands = 0
        """Whole commands up to :attr:`clean`."""

    @property
    def position(self) -> int:
        """Offset after the last whole command (clean or inside a transaction)."""
        return self._tail_at

    def feed(self, chunk: bytes) -> Scan:
        if self._need:
            self._waiting.append(chunk)
            self._waiting_size += len(chunk)
            if self._waiting_size < self._need:
                return Scan(self.clean, self.data, 0)
            chunk = b"".join(self._waiting)
            self._waiting, self._waiting_size, self._need = [], 0, 0
        data = self._tail + chunk if self._tail else chunk
        base = self._tail_at
        pos = 0
        size = len(data)
        find = data.find
        getack = False
        count = 0
        multi = self.in_multi
        clean = self.clean
        changed = self.data
        done_before = self.commands
        clean_commands = self.clean_commands
        while pos < size:
            if data[pos] != 42:  # '*'
                raise StreamDesync(name=self.name, offset=base + pos + 1, head=bytes(data[pos:pos + 16]))
            nl = find(b"\r\n", pos)
            if nl < 0:
                break
            argc = int(data[pos + 1:nl])
            p = nl + 2
            name = b""
            complete = True
            for i in range(argc):
                nl = find(b"\r\n", p)
                if nl < 0:
                    complete = False
                    break
                length = int(data[p + 1:nl])
                start = nl + 2
                end = start + length + 2
                if end > size:
                    complete = False
                    if end - pos > 1 << 16:
                        self._need = end - pos
                    break
                if i == 0:
                    name = data[start:start + length]
                    if length <= 8:
                        name = name.upper()
                elif i == 1 and name == b"REPLCONF" and data[start:start + length].upper() == b"GETACK":
                    getack = True
                p = end
            if not complete:
                break
            pos = p
            count += 1
            if name == b"MULTI":
                multi = True
            elif name in (b"EXEC", b"DISCARD"):
                multi = False
                clean = base + pos
                changed = clean
                clean_commands = done_before + count
            elif not multi:
                clean = base + pos
                clean_commands = done_before + count
                if name not in QUIET:
                    changed = clean
        self._tail = data[pos:]
        if self._need:
            self._waiting, self._waiting_size = [self._tail], len(self._tail)
            self._tail = b""
        self._tail_at = base + pos
        self.in_multi = multi
        self.clean = clean
        self.data = changed
        self.commands += count
        self.clean_commands = clean_commands
        return Scan(clean, changed, count, getack)


def is_whole(data: bytes) -> bool:
    """Whether ``data`` is whole commands ending on a clean boundary (what every segment payload must be)."""
    scanner = CommandScanner(0)
    try:
        scanner.feed(data)
    except (StreamDesync, ValueError):
        return False
    return scanner.clean == len(data) and not scanner.in_multi
