"""Which segments the archive no longer needs: classify (pure), then delete.

A segment is only useful after a base: a restore replays the stream from a base's offset on.
So, per stream, a segment that ends at or before the offset of the **oldest base set that
retention keeps** is prunable (``bdr prune`` decides which sets stay, by the same rules as for
every set), and so is every segment of a stream none of whose bases is left, once a newer
stream has a base (the archiver has moved on). ``archive.redis.NAME.keep`` (a duration)
also drops segments whose last mark is older than that. A run of the archive's own prune
never deletes a base; it runs every hour in the archiver and on ``bdr archive prune``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bdr.engines.redis.archive.bases import Base, bases_of
from bdr.engines.redis.archive.layout import StoredSegment, delete_segment, list_segments
from bdr.engines.redis.archive.window import iso_us
from bdr.repository import Repository

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prunable:
    segment: StoredSegment
    reason: str


def prunable(segments: Sequence[StoredSegment], bases: Sequence[Base], now_us: int,
             keep_seconds: float | None = None) -> list[Prunable]:
    """The segments no restore can use any more (see the module docstring), each with why."""
    oldest: dict[str, Base] = {}
    for base in bases:
        seen = oldest.get(base.join.replid)
        if seen is None or base.join.offset < seen.join.offset:
            oldest[base.join.replid] = base
    newest_base_us = max((b.join.at_us for b in bases), default=None)
    last_of: dict[str, int] = {}
    for segment in segments:
        last_of[segment.replid] = max(last_of.get(segment.replid, 0), segment.name.last_us)
    out = []
    for segment in segments:
        first = oldest.get(segment.replid)
        if first is not None and segment.end <= first.join.offset:
            out.append(Prunable(segment, f"ends before the oldest base of its stream, {first.id}"))
        elif first is None and newest_base_us is not None and last_of[segment.replid] < newest_base_us:
            out.append(Prunable(segment, "its stream has no base left and a newer stream has one"))
        elif keep_seconds is not None and segment.name.last_us < now_us - int(keep_seconds * 1e6):
            out.append(Prunable(segment, f"its last command is from {iso_us(segment.name.last_us)}, older than keep"))
    return out


def prune_archive(repo: Repository, instance: str, now_us: int, keep_seconds: float | None = None,
                  dry_run: bool = False) -> list[Prunable]:
    """Delete (unless ``dry_run``) the prunable segments of ``instance`` in ``repo``; what was (or would be)."""
    found = prunable(list_segments(repo, instance), bases_of(repo, instance), now_us, keep_seconds)
    if not dry_run:
        for item in found:
            delete_segment(repo, item.segment)
        if found:
            logger.info("pruned %d archive segment(s) of redis %s in %s", len(found), instance, repo.url)
    return found
