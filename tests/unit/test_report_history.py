"""history.jsonl: one line per run, read back tolerant of torn or foreign lines, and the trend from it."""

from __future__ import annotations

import json
from pathlib import Path

from drills.evidence import Outcome
from drills.report.history import History, append_history, entry_of, read_history, trend
from drills.report.verdict import Verdict
from tests.report_samples import RUN_ID, sample_history, sample_report


def test_a_run_becomes_one_line_with_its_achieved_objectives(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    append_history(path, entry_of(sample_report()))
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["run_id"] == RUN_ID and line["time"] == "2026-11-25T06:00:00.000000Z"
    assert line["all_targets_met"] is False
    loss = line["scenarios"]["complete_data_loss"]
    assert loss == {"verdict": "BREACHED", "rto_seconds": 1052.4, "rto_target_seconds": 900.0,
                    "rpo_seconds": {"sessions": 1810.0, "embeddings": 1810.0},
                    "rpo_target_seconds": {"sessions": 3600.0, "embeddings": 86400.0}}
    assert line["scenarios"]["offsite_restore"]["verdict"] == "skipped"
    assert line["scenarios"]["offsite_restore"]["rto_seconds"] is None


def test_runs_read_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    entries = sample_history(5)
    for entry in reversed(entries):  # appended out of order: read back by time
        append_history(path, entry)
    history = read_history(path)
    assert [e.run_id for e in history.entries] == [e.run_id for e in entries]
    assert history.entries == tuple(entries)
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


def test_a_missing_history_is_empty(tmp_path: Path) -> None:
    assert read_history(tmp_path / "history.jsonl") == History()


def test_the_same_run_twice_counts_once_and_until_cuts_later_runs() -> None:
    entries = sample_history(4)
    history = History(tuple(entries)).including(entries[1])
    assert len(history.entries) == 4
    assert [e.run_id for e in history.until(entries[1].run_id).entries] == [e.run_id for e in entries[:2]]
    assert history.until("drill-unknown") == history


def test_trend_follows_one_objective_and_leaves_skipped_runs_out() -> None:
    report = sample_report()
    history = History(tuple(sample_history(3))).including(entry_of(report))
    points = trend(history, "complete_data_loss", "rto")
    assert len(points) == 4
    assert points[-1].run_id == RUN_ID and points[-1].achieved_seconds == 1052.4 and not points[-1].met
    assert all(p.target_seconds == 900.0 for p in points)
    embeddings = trend(history, "complete_data_loss", "rpo", "embeddings")
    assert [p.target_seconds for p in embeddings] == [86400.0] * 4
    assert trend(history, "offsite_restore", "rto") == []
    assert trend(history, "no_such_scenario", "rto") == []


def test_a_skipped_scenario_is_not_a_point_even_with_numbers() -> None:
    report = sample_report()
    report.results[0].outcome = Outcome.SKIPPED
    entry = entry_of(report)
    assert entry.scenarios["redis_restart"].verdict is Verdict.SKIPPED
    assert trend(History((entry,)), "redis_restart", "rto") == []
