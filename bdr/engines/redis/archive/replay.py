"""Turning a base and the archived stream up to ``T`` into files Redis itself loads.

The stream is made of the commands an AOF holds, so the replay *is* an AOF load: the base's
RDB becomes the base file of a Redis 7 multi-part AOF directory, the stream from the base's
offset to the cut its incr file (after a ``SELECT`` of the database the stream was in at
the base's offset)::

    incoming/appendonlydir/appendonly.aof.manifest
    incoming/appendonlydir/appendonly.aof.1.base.rdb     the base set's RDB (a hard link)
    incoming/appendonlydir/appendonly.aof.1.incr.aof     SELECT <db> + the stream (base offset, cut]

The restore's ``check`` step loads that directory into a private temporary redis-server
(:func:`~bdr.engines.redis.prepare.choose_rdb`): Redis's own loader replays the commands, as
fast as it loads any AOF, and the RDB it saves is what the normal install path restores and
verifies. No command is re-encoded or sent over a socket.

**The cut.** Every mark of a segment is a clean boundary (:mod:`.scanner`), so the cut is the
largest offset marked at or before ``T`` (never earlier than the base), read from the last
segment the plan names. The incr file ends exactly there; a segment whose checksum fails stops
the restore here, before anything live is touched.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdr.engines.redis.archive.layout import open_segment
from bdr.engines.redis.archive.window import Plan, iso_us
from bdr.errors import SegmentCorrupt
from bdr.repository import ObjectCipher, Repository

logger = logging.getLogger(__name__)

AOF_DIR = "appendonlydir"
AOF_NAME = "appendonly.aof"


def resp(*args: str | bytes) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class Replayed:
    """What the assembled stream holds."""

    cut: int
    """The master offset the replay stops at (a clean boundary)."""
    cut_us: int
    """When the last replayed command was received (the first mark at the cut): every one had run by then."""
    confirmed_us: int
    """The newest moment at or before the target at which the stream is known to have been at the cut (a later
    mark at the same offset: the master's offset read, nothing newer received): ``target - confirmed_us`` is the
    restore's precision."""
    stream_bytes: int
    segments: int

    def to_dict(self) -> dict[str, Any]:
        return {"cut_offset": self.cut, "last_command_at": iso_us(self.cut_us),
                "confirmed_at": iso_us(self.confirmed_us), "stream_bytes": self.stream_bytes,
                "segments_read": self.segments}


def cut_of(base_offset: int, base_us: int, target_us: int, marks: list[tuple[int, int]]) -> tuple[int, int, int]:
    """The largest offset marked at or before ``target_us`` (never before the base), the time of its first mark,
    and of its last mark at or before the target."""
    best_offset, best_us = base_offset, base_us
    for offset, us in marks:
        if us <= target_us and (offset > best_offset or (offset == best_offset and us < best_us)):
            best_offset, best_us = offset, us
    confirmed = max([best_us] + [us for offset, us in marks if offset == best_offset and us <= target_us])
    return best_offset, best_us, confirmed


def assemble(repo: Repository, plan: Plan, base_rdb: Path, dest: Path, cipher: ObjectCipher | None) -> Replayed:
    """Write ``dest/appendonlydir`` (see the module docstring): the base's RDB and the stream up to the cut."""
    aof = dest / AOF_DIR
    aof.mkdir(parents=True)
    base_name = f"{AOF_NAME}.1.base.rdb"
    incr_name = f"{AOF_NAME}.1.incr.aof"
    try:
        os.link(base_rdb, aof / base_name)
    except OSError:
        shutil.copy2(base_rdb, aof / base_name)
    marks: list[tuple[int, int]] = []
    written = 0
    position = plan.join.offset
    cut, cut_us, confirmed_us = plan.join.offset, plan.join.at_us, plan.join.at_us
    with (aof / incr_name).open("wb") as out:
        out.write(resp("SELECT", str(plan.join.stream_db)))
        for index, segment in enumerate(plan.segments):
            last = index == len(plan.segments) - 1
            with open_segment(repo, segment, cipher) as reader:
                if reader.header.replid != plan.join.replid:
                    raise SegmentCorrupt(key=segment.key, detail=f"it belongs to stream {reader.header.replid}, not "
                                         f"{plan.join.replid}")
                if reader.header.start > position:
                    raise SegmentCorrupt(key=segment.key, detail=f"it starts at offset {reader.header.start}, after "
                                         f"{position}: a segment is missing")
                segment_marks = [(m.offset, m.us) for m in reader.marks]
                marks += segment_marks
                if last:
                    cut, cut_us, confirmed_us = cut_of(plan.join.offset, plan.join.at_us, plan.target_us, marks)
                upto = cut if last else reader.header.end
                for chunk in reader.payload(skip_to=position, upto=upto):
                    out.write(chunk)
                    written += len(chunk)
                position = max(position, upto)
        out.flush()
        os.fsync(out.fileno())
    (aof / f"{AOF_NAME}.manifest").write_text(f"file {base_name} seq 1 type b\nfile {incr_name} seq 1 type i\n")
    logger.info("assembled base %s + %d bytes of the stream up to offset %d (%s)", plan.base_id, written, cut,
                iso_us(cut_us))
    return Replayed(cut, cut_us, confirmed_us, written, len(plan.segments))
