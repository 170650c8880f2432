"""The recoverable window: runs, blind spans, gaps, which base a restore to a moment uses, and pruning."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from bdr.engines.redis.archive.bases import Base, JoinPoint, join_point
from bdr.engines.redis.archive.layout import StoredSegment
from bdr.engines.redis.archive.retention import prunable
from bdr.engines.redis.archive.segment import Kind, SegmentName
from bdr.engines.redis.archive.window import iso_us, plan, runs_of, windows
from bdr.errors import PointInTimeUnreachable
from bdr.repository import BackupSet
from tests.backup_sets import make_manifest

A = "a" * 40
B = "b" * 40
S = 1_000_000
T0 = 1_796_000_000 * S


def seg(start: int, end: int, first: float, last: float, kind: Kind = Kind.EXACT, replid: str = A) -> StoredSegment:
    name = SegmentName(start, end, T0 + int(first * S), T0 + int(last * S), kind)
    return StoredSegment(replid, name, f"archive/redis/production/{replid}/{name.name}")


def base(offset: int, at: float, replid: str = A, ident: str = "") -> Base:
    finished = datetime.fromtimestamp((T0 + int(at * S)) / S, UTC)
    manifest = make_manifest(finished, ident=ident or None)
    return Base(BackupSet(manifest, "/repo", "local"), JoinPoint(replid, offset, 0, T0 + int(at * S)))


def at(seconds: float) -> int:
    return T0 + int(seconds * S)


def test_a_full_sync_base_opens_its_window_when_the_catch_up_after_it_ends() -> None:
    segments = [seg(0, 500, 0.0, 2.0, Kind.CATCH_UP), seg(500, 900, 2.1, 12.0), seg(900, 1500, 12.1, 22.0)]
    found = windows(segments, [base(0, 0.0)])
    assert [(w.from_us, w.to_us, w.opened_by) for w in found] == [(at(2.0), at(22.0), "base")]


def test_a_restart_with_writes_meanwhile_is_a_blind_span_and_without_writes_is_not() -> None:
    first = [seg(0, 500, 0.0, 10.0), seg(500, 700, 30.0, 31.0, Kind.CATCH_UP), seg(700, 900, 31.1, 40.0)]
    blind = windows(first, [base(0, 0.0)])
    assert [(w.from_us, w.to_us, w.opened_by) for w in blind] == [(at(0.0), at(10.0), "base"),
                                                                  (at(31.0), at(40.0), "blind span")]
    quiet = windows([seg(0, 500, 0.0, 10.0), seg(500, 900, 30.0, 40.0)], [base(0, 0.0)])
    assert [(w.from_us, w.to_us) for w in quiet] == [(at(0.0), at(40.0))]


def test_a_missing_segment_splits_the_run_and_only_a_later_base_reaches_past_it() -> None:
    segments = [seg(0, 500, 0.0, 10.0), seg(600, 900, 11.0, 20.0), seg(900, 1000, 20.1, 30.0)]
    assert [r.end for r in runs_of(segments)] == [500, 1000]
    assert len(windows(segments, [base(0, 0.0)])) == 1
    found = windows(segments, [base(0, 0.0), base(700, 15.0)])
    assert [(w.from_us, w.to_us) for w in found] == [(at(0.0), at(10.0)), (at(15.0), at(30.0))]
    with pytest.raises(PointInTimeUnreachable) as refused:
        plan("production", segments, [base(0, 0.0), base(700, 15.0)], at(12.0))
    message = refused.value.message
    assert "gap" in message and f"the earliest {iso_us(at(0.0))}" in message and f"the latest {iso_us(at(30.0))}" \
        in message


def test_the_newest_base_whose_window_holds_the_moment_is_used_with_the_segments_up_to_it() -> None:
    segments = [seg(0, 500, 0.0, 10.0), seg(500, 900, 10.1, 20.0), seg(900, 1300, 20.1, 30.0),
                seg(1300, 1600, 30.1, 40.0)]
    bases = [base(0, 0.0, ident="redis-20261202T000000Z-aaaaaa"),
             base(700, 15.0, ident="redis-20261202T000015Z-bbbbbb")]
    chosen = plan("production", segments, bases, at(25.0))
    assert chosen.base_id == "redis-20261202T000015Z-bbbbbb"
    assert [s.start for s in chosen.segments] == [500, 900]  # the one holding offset 700, then up to 25 s
    early = plan("production", segments, bases, at(12.0))
    assert early.base_id == "redis-20261202T000000Z-aaaaaa" and [s.start for s in early.segments] == [0, 500]
    forced = plan("production", segments, bases, at(25.0), base_id="redis-20261202T000000Z-aaaaaa")
    assert [s.start for s in forced.segments] == [0, 500, 900]


def test_a_base_whose_offset_no_segment_holds_does_not_join() -> None:
    segments = [seg(0, 500, 0.0, 10.0)]
    with pytest.raises(PointInTimeUnreachable, match="does not join"):
        plan("production", segments, [base(0, 0.0), base(5000, 5.0, ident="redis-20261202T000005Z-cccccc")],
             at(8.0), base_id="redis-20261202T000005Z-cccccc")
    assert windows(segments, [base(0, 0.0, replid=B)]) == []


def test_times_outside_the_archive_are_refused_naming_the_earliest_and_latest() -> None:
    segments = [seg(0, 500, 5.0, 10.0)]
    for moment, why in ((at(2.0), "before the oldest base"), (at(11.0), "after the newest sealed segment")):
        with pytest.raises(PointInTimeUnreachable, match=why):
            plan("production", segments, [base(0, 5.0)], moment)
    with pytest.raises(PointInTimeUnreachable, match="nothing is reachable yet"):
        plan("production", segments, [], at(7.0))


def test_a_plan_survives_the_journal() -> None:
    from bdr.engines.redis.archive.window import Plan

    segments = [seg(0, 500, 0.0, 10.0), seg(500, 900, 10.1, 20.0)]
    chosen = plan("production", segments, [base(0, 0.0)], at(15.0))
    assert Plan.from_state(chosen.to_state()) == dataclasses.replace(chosen)


def test_join_points_come_from_the_archivers_facts_or_the_rdb_header() -> None:
    finished = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    plain = make_manifest(finished)
    assert join_point(plain) is None
    aux = dataclasses.replace(plain, facts={"content": {"aux": {"repl-id": A, "repl-offset": "1234",
                                                                  "repl-stream-db": "3"}}})
    point = join_point(aux)
    assert point is not None and (point.replid, point.offset, point.stream_db) == (A, 1234, 3)
    assert point.at_us == int(finished.timestamp() * S)
    own = dataclasses.replace(plain, facts={"archive_base": {"replid": B, "offset": 9, "stream_db": 0,
                                                               "at_us": int(finished.timestamp() * S) - 5}})
    assert join_point(own) == JoinPoint(B, 9, 0, int(finished.timestamp() * S) - 5)
    no_backlog = dataclasses.replace(plain, facts={"content": {"aux": {"repl-id": A, "repl-offset": "-1"}}})
    assert join_point(no_backlog) is None


def test_segments_before_the_oldest_kept_base_or_of_a_stream_left_without_one_are_prunable() -> None:
    old_stream = [seg(0, 500, 0.0, 10.0, replid=B)]
    segments = [*old_stream, seg(0, 500, 20.0, 30.0), seg(500, 900, 30.1, 40.0), seg(900, 1000, 40.1, 50.0)]
    found = prunable(segments, [base(600, 35.0)], at(60.0))
    assert {(p.segment.replid, p.segment.start) for p in found} == {(B, 0), (A, 0)}
    kept_25s = prunable(segments, [base(0, 20.0)], at(60.0), keep_seconds=25.0)
    assert {(p.segment.replid, p.segment.start) for p in kept_25s} == {(B, 0), (A, 0)}
    assert "older than keep" in kept_25s[-1].reason
    live = [seg(0, 500, 100.0, 110.0, replid=B)]  # a new stream whose base is not stored yet: kept
    assert prunable([*live, *segments[1:]], [base(0, 20.0)], at(120.0)) == []
