"""history.jsonl: one chained record per run (and per review), read back tolerant of torn lines; the trend from it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from bdr.report.history import (
    History,
    HistoryEntry,
    ReviewEntry,
    append_history,
    entry_of,
    line_hash,
    read_history,
    trend,
)
from bdr.report.records import Outcome
from bdr.report.verdict import Verdict
from tests.report_samples import RUN_ID, sample_history, sample_report


def test_a_run_becomes_one_line_with_every_objective_of_every_case(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    append_history(path, entry_of(sample_report(), files={"json": "a" * 64}))
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["run_id"] == RUN_ID and line["time"] == "2026-11-25T06:00:00.000000Z" and line["kind"] == "run"
    assert line["all_targets_met"] is False and line["scope"] == "sandbox" and line["operator"] == "ci"
    assert line["prev"] is None and line["files"] == {"json": "a" * 64}
    loss = line["scenarios"]["complete_data_loss"]
    assert loss == {"scenario": "complete_data_loss", "verdict": "BREACHED", "objectives": {
        "rto complete_data_loss": {"achieved": 1052.4, "target": 900.0},
        "rpo sessions": {"achieved": 1810.0, "target": 3600.0},
        "rpo embeddings": {"achieved": 1810.0, "target": 86400.0}}}
    cases = [k for k in line["scenarios"] if k.startswith("accidental_deletion/")]
    assert cases == ["accidental_deletion/deleted_redis_keys", "accidental_deletion/dropped_qdrant_collection",
                     "accidental_deletion/deleted_points_matching_a_filter"]
    assert line["scenarios"]["offsite_restore"] == {"scenario": "offsite_restore", "verdict": "skipped",
                                                    "objectives": {}}


def test_each_line_carries_the_hash_of_the_one_before(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    entries = sample_history(3)
    for entry in entries:
        append_history(path, entry)
    append_history(path, ReviewEntry(RUN_ID, "2026-11-25T07:00:00.000000Z", "A. Auditor", "auditor", "accepted"))
    raw = path.read_bytes().split(b"\n")[:-1]
    assert json.loads(raw[0])["prev"] is None
    for before, line in itertools.pairwise(raw):
        assert json.loads(line)["prev"] == line_hash(before)


def test_runs_read_back_in_order_and_reviews_apart(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    entries = sample_history(5)
    for entry in reversed(entries):  # appended out of order: read back by time
        append_history(path, entry)
    append_history(path, ReviewEntry(entries[0].run_id, "2026-11-25T07:00:00.000000Z", "A. Auditor", "auditor",
                                     "rejected", "the RTO of complete_data_loss"))
    history = read_history(path)
    assert [e.run_id for e in history.entries] == [e.run_id for e in entries]
    assert [e.scenarios for e in history.entries] == [e.scenarios for e in entries]
    assert [(r.reviewer, r.decision) for r in history.reviews_of(entries[0].run_id)] == [("A. Auditor", "rejected")]
    assert history.ignored_lines == 0


def test_bad_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    good = sample_history(2)
    append_history(path, good[0])
    with path.open("a") as handle:
        handle.write("not json\n")
        handle.write('{"run_id": "drill-x"}\n')  # no time, no scenarios
        handle.write('[1, 2]\n')
        handle.write('{"run_id": "drill-y", "time": "t", "scenarios": {"a": {"verdict": "nope"}}}\n')
        handle.write("\n")
        handle.write('{"run_id": "drill-torn", "time": "2026-')  # a crash mid-write: no newline
    append_history(path, good[1])  # starts on a line of its own
    history = read_history(path)
    assert [e.run_id for e in history.entries] == [e.run_id for e in good]
    assert history.ignored_lines == 5


def test_a_schema_1_line_is_still_read() -> None:
    line = {"schema_version": 1, "run_id": "drill-20261101T060000Z", "time": "2026-11-01T06:00:00.000000Z",
            "all_targets_met": True, "scenarios": {"redis_restart": {
                "verdict": "met", "rto_seconds": 1.0, "rto_target_seconds": 60.0,
                "rpo_seconds": {"sessions": 0.4}, "rpo_target_seconds": {"sessions": 3600.0}}}}
    entry = HistoryEntry.from_dict(line)
    points = trend(History((entry,)), "redis_restart", "rto redis_restart")
    assert [(p.achieved_seconds, p.target_seconds) for p in points] == [(1.0, 60.0)]
    assert trend(History((entry,)), "redis_restart", "rpo sessions")[0].achieved_seconds == 0.4


def test_a_missing_history_is_empty(tmp_path: Path) -> None:
    assert read_history(tmp_path / "history.jsonl") == History()


def test_the_same_run_twice_counts_once_and_until_cuts_later_runs() -> None:
    entries = sample_history(4)
    history = History(tuple(entries)).including(entries[1])
    assert len(history.entries) == 4
    assert [e.run_id for e in history.until(entries[1].run_id).entries] == [e.run_id for e in entries[:2]]
    assert [e.run_id for e in history.before(entries[1].run_id).entries] == [entries[0].run_id]
    assert history.until("drill-unknown") == history


def test_trend_follows_one_objective_of_one_case_and_leaves_skipped_runs_out() -> None:
    report = sample_report()
    history = History(tuple(sample_history(3))).including(entry_of(report))
    points = trend(history, "complete_data_loss", "rto complete_data_loss")
    assert len(points) == 4
    assert points[-1].run_id == RUN_ID and points[-1].achieved_seconds == 1052.4 and not points[-1].met
    assert all(p.target_seconds == 900.0 for p in points)
    embeddings = trend(history, "complete_data_loss", "rpo embeddings")
    assert [p.target_seconds for p in embeddings] == [86400.0] * 4
    assert trend(history, "offsite_restore", "rto offsite_restore") == []
    assert trend(history, "no_such_scenario", "rto redis_restart") == []


def test_each_case_of_a_scenario_has_its_own_trend_so_an_earlier_breach_cannot_hide() -> None:
    report = sample_report()
    history = History(tuple(sample_history())).including(entry_of(report))
    redis = trend(history, "accidental_deletion/deleted_redis_keys", "rto redis_local_restore")
    dropped = trend(history, "accidental_deletion/dropped_qdrant_collection", "rto qdrant_restore")
    points = trend(history, "accidental_deletion/deleted_points_matching_a_filter", "rto qdrant_restore")
    assert len(redis) == len(dropped) == len(points) == 10
    assert [p.met for p in dropped].count(False) == 1, "the breach of the earlier case, six runs ago"
    assert all(p.met for p in redis) and all(p.met for p in points)
    assert redis[-1].achieved_seconds == 2.81 and points[-1].achieved_seconds == 2.42


def test_a_skipped_scenario_is_not_a_point_even_with_numbers() -> None:
    report = sample_report()
    report.results[0].outcome = Outcome.SKIPPED
    entry = entry_of(report)
    assert entry.scenarios["redis_restart"].verdict is Verdict.SKIPPED
    assert trend(History((entry,)), "redis_restart", "rto redis_restart") == []
