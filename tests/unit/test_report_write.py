"""write_reports: the four files of a run, the JSON that round-trips, and reading a result back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bdr.errors import DrillResultNotFound, InvalidDrillResult, StorageError
from bdr.report import load_run_report, write_reports
from bdr.report.history import read_history
from bdr.report.records import RunReport
from tests.report_samples import RUN_ID, sample_report


def test_a_run_writes_html_json_junit_and_history(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    paths = write_reports(sample_report(), out)
    assert paths.html == out / f"{RUN_ID}.html"
    assert paths.json == out / f"{RUN_ID}.json"
    assert paths.junit == out / f"{RUN_ID}.xml"
    assert paths.history == out / "history.jsonl"
    assert "1 TARGET BREACHED" in paths.html.read_text()
    assert paths.junit.read_text().startswith('<?xml version="1.0" encoding="utf-8"?>')
    assert [e.run_id for e in read_history(paths.history).entries] == [RUN_ID]
    assert sorted(p.name for p in out.iterdir()) == sorted(  # no temporary file left behind
        [f"{RUN_ID}.html", f"{RUN_ID}.json", f"{RUN_ID}.xml", "history.jsonl"])


def test_the_json_is_the_documented_schema_and_round_trips(tmp_path: Path) -> None:
    report = sample_report()
    data = json.loads(write_reports(report, tmp_path).json.read_text())
    assert data["schema_version"] == 2 and data["run_id"] == RUN_ID and data["all_targets_met"] is False
    assert RunReport.from_dict(data).to_dict() == report.to_dict() == data
    loss = next(r for r in data["results"] if r["scenario"] == "complete_data_loss")
    assert loss["checks"][0] == {"kind": "rto", "name": "complete_data_loss", "target_seconds": 900.0,
                                 "achieved_seconds": 1052.4, "margin_seconds": -152.4, "met": False,
                                 "note": "offsite download throttled"}
    assert loss["steps"][1]["name"] == "fault injected" and loss["fault_at"] == loss["steps"][1]["started_at"]
    readme = (Path(__file__).parents[2] / "drills" / "README.md").read_text()
    fields = [*data, *data["results"][0], *loss["steps"][0], *loss["checks"][0], *data["scope"],
              *data["remediation"][0], *data["coverage"][0]]
    for field in fields:
        assert f"`{field}`" in readme, f"{field} is not documented in drills/README.md"


def test_each_run_adds_one_history_line_and_the_report_shows_the_trend(tmp_path: Path) -> None:
    first = sample_report()
    first.run_id, first.started_at = "drill-20261124T060000Z", "2026-11-24T06:00:00.000000Z"
    write_reports(first, tmp_path)
    paths = write_reports(sample_report(), tmp_path)
    assert len(read_history(tmp_path / "history.jsonl").entries) == 2
    assert "over the last runs recorded in" in paths.html.read_text()


def test_history_can_be_left_alone(tmp_path: Path) -> None:
    paths = write_reports(sample_report(), tmp_path, history=False)
    assert paths.history is None
    assert not (tmp_path / "history.jsonl").exists()


def test_an_unusable_reports_directory_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(StorageError):
        write_reports(sample_report(), blocker)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_read_only_reports_directory_is_a_storage_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="cannot write"):
            write_reports(sample_report(), tmp_path)
    finally:
        tmp_path.chmod(0o700)


def test_load_run_report_reads_what_was_written(tmp_path: Path) -> None:
    report = sample_report()
    assert load_run_report(write_reports(report, tmp_path).json).to_dict() == report.to_dict()


@pytest.mark.parametrize(("content", "expected"), [
    (b"{not json", "not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1, 2]", "expected a JSON object, found list"),
    (b'{"started_at": "x", "finished_at": "y"}', "missing field 'run_id'"),
    (b'{"schema_version": 99, "run_id": "x"}', "schema version 99 is newer than this bdr understands (2)"),
    (b'{"run_id": "x", "started_at": "x", "finished_at": "y", "results": [{"scenario": "a", "bogus": 1}]}',
     "unexpected content"),
    (b'{"run_id": "x", "started_at": "x", "finished_at": "y", "results": [{"outcome": "exploded"}]}',
     "unexpected content"),
])
def test_a_file_that_is_not_a_result_is_one_clear_error(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "result.json"
    path.write_bytes(content)
    with pytest.raises(InvalidDrillResult) as caught:
        load_run_report(path)
    message = caught.value.message
    assert expected in message and str(path) in message and "\n" not in message
    assert "drill-<timestamp>.json" in message  # how to fix it
    assert caught.value.exit_code == 2


def test_a_missing_result_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(DrillResultNotFound) as caught:
        load_run_report(tmp_path / "drill-nope.json")
    assert caught.value.exit_code == 4
    assert "drill-nope.json not found" in caught.value.message
