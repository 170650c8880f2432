"""The recoverable window: which moments the archive can restore, and what a restore to one of them uses.

Pure functions over what a repository listing gives (sealed segments by name, bases by their
manifests); no I/O. The rules:

- **Runs.** A stream's segments chain when each starts at the offset the one before ended
  (:mod:`.segment`); a missing segment ends a run, and the moments it held are not
  reachable from a base before it.
- **A base opens a window** at the moment its snapshot's state is known to hold
  (:attr:`~.bases.JoinPoint.at_us`, tightened by the mark that ends the segment holding its
  offset) when its offset lies in a run of its stream; the window lasts to the run's last mark.
- **Blind spans.** A *catch-up* segment holds bytes the master buffered while the archiver was
  away (a restart, a network drop, the transfer of a full sync, a stall of the archiver): when
  each of those commands ran is only known to be before the segment's last mark. The moments
  from the mark before it to its last mark are not reachable exactly, so they are cut out of
  every window (a restart during which nothing was written leaves no catch-up bytes and no
  hole: the master's offset proves nothing happened).
- **A restore to ``T``** uses the newest base whose window holds ``T`` and the run's segments
  from the one after its offset to the last whose first mark is at or before ``T``; the exact
  cut is then read from that segment's marks (:mod:`.replay`).

Anything else is refused with :class:`~bdr.errors.PointInTimeUnreachable`, naming the
earliest and latest reachable moments and the windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bdr.engines.redis.archive.bases import Base, JoinPoint
from bdr.engines.redis.archive.layout import StoredSegment
from bdr.engines.redis.archive.segment import Kind, SegmentName
from bdr.errors import PointInTimeUnreachable

NEVER = -(1 << 62)


def iso_us(us: int) -> str:
    """``2026-12-02T14:04:59.123456Z`` for UTC microseconds."""
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def us_of(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000)


@dataclass(frozen=True, slots=True)
class Run:
    """Segments of one stream that chain without a gap."""

    replid: str
    segments: tuple[StoredSegment, ...]

    @property
    def start(self) -> int:
        return self.segments[0].start

    @property
    def end(self) -> int:
        return self.segments[-1].end

    @property
    def last_us(self) -> int:
        return max(s.name.last_us for s in self.segments)

    def holes(self) -> list[tuple[int, int]]:
        """Blind spans (from, to) of the run's catch-up segments (see the module docstring)."""
        out = []
        for i, segment in enumerate(self.segments):
            if segment.name.kind is Kind.CATCH_UP:
                before = self.segments[i - 1].name.last_us if i else NEVER
                out.append((before, segment.name.last_us))
        return out


def runs_of(segments: Sequence[StoredSegment]) -> list[Run]:
    """Chain each stream's segments; a segment that overlaps the one before is left out (it cannot be replayed
    after it without repeating commands)."""
    runs: list[Run] = []
    current: list[StoredSegment] = []
    for segment in sorted(segments, key=lambda s: (s.replid, s.start, s.end)):
        if current and segment.replid == current[-1].replid and segment.start == current[-1].end:
            current.append(segment)
            continue
        if current and segment.replid == current[-1].replid and segment.start < current[-1].end:
            continue
        if current:
            runs.append(Run(current[0].replid, tuple(current)))
        current = [segment]
    if current:
        runs.append(Run(current[0].replid, tuple(current)))
    return runs


@dataclass(frozen=True, slots=True)
class Window:
    """Moments ``from_us`` .. ``to_us`` a restore can reach exactly, from one of ``bases``."""

    replid: str
    from_us: int
    to_us: int
    bases: tuple[str, ...]
    opened_by: str = "base"
    """``base``: the window opens with a base (the one before, if any, is another stream or ends at a missing
    segment: writes between were not archived); ``blind span``: the same stream goes on, after moments the
    archive cannot tell apart (the archiver was away while Redis took writes; none of them is lost)."""

    def to_dict(self) -> dict[str, Any]:
        return {"stream": self.replid, "from": iso_us(self.from_us), "to": iso_us(self.to_us),
                "seconds": round((self.to_us - self.from_us) / 1e6, 3), "bases": list(self.bases),
                "opened_by": self.opened_by}

    def describe(self) -> str:
        return f"{iso_us(self.from_us)} to {iso_us(self.to_us)}"


@dataclass(frozen=True, slots=True)
class Opening:
    """Where a base opens its window in a run."""

    base: Base
    run: Run
    from_us: int


def _opening(base: Base, run: Run) -> Opening | None:
    join = base.join
    if join.replid != run.replid or not run.start <= join.offset <= run.end:
        return None
    at = join.at_us
    for segment in run.segments:
        if segment.end >= join.offset:  # its last mark, at its end, is past the base: the state held by then
            at = min(at, segment.name.last_us)
            break
    for i, segment in enumerate(run.segments):
        if segment.name.kind is Kind.CATCH_UP and segment.end > join.offset:
            low = run.segments[i - 1].name.last_us if i else NEVER
            if low < at < segment.name.last_us:  # the base's moment is in a blind span it must replay
                at = segment.name.last_us
    return Opening(base, run, at)


def openings(segments: Sequence[StoredSegment], bases: Sequence[Base]) -> list[Opening]:
    found = []
    for run in runs_of(segments):
        for base in bases:
            opening = _opening(base, run)
            if opening is not None:
                found.append(opening)
    return found


def _cut_holes(replid: str, start: int, end: int, holes: list[tuple[int, int]], bases: tuple[str, ...]) \
        -> list[Window]:
    out = []
    opened_by = "base"
    for low, high in sorted(holes):
        if high <= start or low >= end:
            continue
        if low > start:
            out.append(Window(replid, start, low, bases, opened_by))
            opened_by = "blind span"
        start = max(start, high)
    if start <= end:
        out.append(Window(replid, start, end, bases, opened_by))
    return out


def windows(segments: Sequence[StoredSegment], bases: Sequence[Base]) -> list[Window]:
    """The recoverable windows, oldest first (see the module docstring)."""
    by_run: dict[tuple[str, int], list[Opening]] = {}
    for opening in openings(segments, bases):
        by_run.setdefault((opening.run.replid, opening.run.start), []).append(opening)
    out: list[Window] = []
    for found in by_run.values():
        run = found[0].run
        start = min(o.from_us for o in found)
        ids = tuple(o.base.id for o in sorted(found, key=lambda o: o.from_us))
        end = max(run.last_us, start)
        out += _cut_holes(run.replid, start, end, run.holes(), ids)
    return sorted(out, key=lambda w: (w.from_us, w.to_us))


def reachable_text(found: Sequence[Window]) -> str:
    """``reachable: from X to Y (windows ...)`` for an error message."""
    if not found:
        return ("nothing is reachable yet: the archive needs a base (the archiver's first full sync, or a bdr "
                "backup taken while it runs) and the segments after it; run `bdr archive list`")
    listed = ", ".join(w.describe() for w in found[-5:])
    more = f" ({len(found) - 5} earlier windows not shown)" if len(found) > 5 else ""
    return (f"reachable: the earliest {iso_us(found[0].from_us)}, the latest {iso_us(found[-1].to_us)}; windows "
            f"{listed}{more}")


@dataclass(frozen=True, slots=True)
class Plan:
    """What a restore to ``target_us`` uses: a base, the segments after it, and the window it lies in."""

    instance: str
    target_us: int
    base_id: str
    join: JoinPoint
    segments: tuple[StoredSegment, ...]
    window: Window
    skipped: tuple[str, ...] = field(default=())
    """Newer sets that were not usable as the base, and why."""

    def to_state(self) -> dict[str, Any]:
        return {"instance": self.instance, "target_us": self.target_us, "base": self.base_id,
                "join": self.join.to_state(),
                "segments": [{"replid": s.replid, "key": s.key, "name": s.name.name} for s in self.segments],
                "window": {"replid": self.window.replid, "from_us": self.window.from_us, "to_us": self.window.to_us,
                           "bases": list(self.window.bases)},
                "skipped": list(self.skipped)}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Plan:
        segments = []
        for item in data["segments"]:
            name = SegmentName.parse(str(item["name"]))
            assert name is not None
            segments.append(StoredSegment(str(item["replid"]), name, str(item["key"])))
        w = data["window"]
        return cls(str(data["instance"]), int(data["target_us"]), str(data["base"]), JoinPoint.from_state(data["join"]),
                   tuple(segments), Window(str(w["replid"]), int(w["from_us"]), int(w["to_us"]), tuple(w["bases"])),
                   tuple(data.get("skipped") or ()))

    @property
    def stream_bytes(self) -> int:
        return sum(s.end - max(s.start, self.join.offset) for s in self.segments)

    def describe(self) -> str:
        size = self.stream_bytes
        return (f"base {self.base_id} (stream {self.join.replid[:12]}… offset {self.join.offset}) + "
                f"{len(self.segments)} segment(s), {size} bytes of the stream")


def _moment_text(target_us: int) -> str:
    return iso_us(target_us)


def plan(instance: str, segments: Sequence[StoredSegment], bases: Sequence[Base], target_us: int,
         base_id: str | None = None) -> Plan:
    """The base and segments of a restore to ``target_us``; :class:`PointInTimeUnreachable` when the archive
    cannot reach it (``base_id``: use that set as the base)."""
    found = windows(segments, bases)
    opened = openings(segments, bases)
    if base_id is not None:
        chosen_bases = [b for b in bases if b.id == base_id]
        if not chosen_bases:
            raise PointInTimeUnreachable(instance=instance, time=_moment_text(target_us),
                                         why=f"{base_id} does not join the archived stream (its snapshot records no "
                                         "replication offset, or no segment of its stream holds it)",
                                         reachable=reachable_text(found))
        opened = [o for o in opened if o.base.id == base_id]
    usable: list[tuple[Opening, Window]] = []
    for opening in opened:
        for window in _cut_holes(opening.run.replid, opening.from_us, max(opening.run.last_us, opening.from_us),
                                 opening.run.holes(), (opening.base.id,)):
            if window.from_us <= target_us <= window.to_us:
                usable.append((opening, window))
    if not usable:
        raise PointInTimeUnreachable(instance=instance, time=_moment_text(target_us),
                                     why=_why_not(target_us, found, base_id, bool(opened)),
                                     reachable=reachable_text(found))
    usable.sort(key=lambda item: (item[0].from_us, item[0].base.join.offset))
    opening, window = usable[-1]
    newer = [b for b in bases if b.join.at_us > opening.base.join.at_us and b.join.at_us <= target_us
             and b.id != opening.base.id]
    skipped = tuple(f"{b.id}: does not join the archived stream at {_moment_text(target_us)}" for b in newer)
    offset = opening.base.join.offset
    after = [s for s in opening.run.segments if s.end > offset]
    last = max((i for i, s in enumerate(after) if s.name.first_us <= target_us), default=-1)
    needed = after[:last + 1]
    enclosing = next((w for w in found if w.replid == window.replid and w.from_us <= target_us <= w.to_us), window)
    return Plan(instance, target_us, opening.base.id, opening.base.join, tuple(needed), enclosing, skipped)


def _why_not(target_us: int, found: Sequence[Window], base_id: str | None, opened: bool) -> str:
    if base_id is not None and not opened:
        return f"{base_id} does not join a run of archived segments"
    if not found:
        return "no base joins the archived stream"
    if target_us < found[0].from_us:
        return "it is before the oldest base that joins the archive"
    if target_us > found[-1].to_us:
        return ("it is after the newest sealed segment (the archiver has not sealed that moment yet, or is not "
                "running: see `bdr status`)")
    return ("it falls in a gap of the archive (a missing segment, or a time the archiver was away while Redis took "
            "writes, so when they ran is not known)")
