"""``bdr report RESULT.json``: the HTML rendered again from a run's JSON, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bdr.cli.main import cli
from bdr.report import write_reports
from bdr.report.history import append_history
from tests.report_samples import RUN_ID, sample_history, sample_report


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def _written(tmp_path: Path) -> Path:
    for entry in sample_history(3):
        append_history(tmp_path / "history.jsonl", entry)
    json_path = write_reports(sample_report(), tmp_path).json
    (tmp_path / f"{RUN_ID}.html").unlink()
    return json_path


def test_renders_the_html_next_to_the_result(tmp_path: Path) -> None:
    result = _written(tmp_path)
    code, out, err = _run("report", str(result))
    assert code == 0, err
    html = tmp_path / f"{RUN_ID}.html"
    assert out.strip() == f"wrote {html}: 1 TARGET BREACHED (10 scenarios, run {RUN_ID})"
    text = " ".join(html.read_text().split())
    assert "1 TARGET BREACHED" in text and "17m32s" in text
    assert "(4 runs, oldest on the left)" in text  # the trend from the history beside it


def test_output_elsewhere_and_json_mode(tmp_path: Path) -> None:
    result = _written(tmp_path)
    target = tmp_path / "elsewhere.html"
    code, out, err = _run("report", str(result), "--output", str(target), "--json")
    assert code == 0, err
    assert json.loads(out) == {"html": str(target), "pdf": None, "run_id": RUN_ID, "all_targets_met": False,
                               "headline": "1 TARGET BREACHED"}
    assert "Drill run" in target.read_text()


def test_html_on_stdout_without_history(tmp_path: Path) -> None:
    result = _written(tmp_path)
    code, out, _ = _run("report", str(result), "-o", "-", "--no-history")
    assert code == 0
    assert out.startswith("<!DOCTYPE html>") and "No history yet" in out


def test_a_missing_result_is_one_line(tmp_path: Path) -> None:
    code, out, err = _run("report", str(tmp_path / "drill-nope.json"))
    assert code == 4 and out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"bdr: error: drill result {tmp_path / 'drill-nope.json'} not found: pass a drill-")


def test_an_invalid_result_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "drill.json"
    bad.write_text('{"run_id": ')
    code, _, err = _run("report", str(bad))
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"bdr: error: {bad} is not a drill result: not valid JSON (Expecting value at line 1")
    assert not (tmp_path / "drill.html").exists()


def test_an_unwritable_output_is_a_storage_error(tmp_path: Path) -> None:
    result = _written(tmp_path)
    code, _, err = _run("report", str(result), "--output", str(tmp_path / "missing-dir" / "r.html"))
    assert code == 9
    assert err.startswith("bdr: error: cannot write") and err.count("\n") == 1


def test_an_old_run_is_rendered_with_the_trend_as_it_stood_then(tmp_path: Path) -> None:
    older = sample_report()
    older.run_id, older.started_at = "drill-20261124T060000Z", "2026-11-24T06:00:00.000000Z"
    old_json = write_reports(older, tmp_path).json
    write_reports(sample_report(), tmp_path)  # a later run, also in history.jsonl
    code, out, _ = _run("report", str(old_json), "-o", "-")
    assert code == 0
    text = " ".join(out.split())
    assert "(1 run, oldest on the left)" in text
