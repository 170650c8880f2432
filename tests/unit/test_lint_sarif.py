"""SARIF 2.1.0 as code-scanning UIs read it: rules, results, levels, relative locations."""

from __future__ import annotations

import shutil
from pathlib import Path

from bdr.lint.findings import RULES
from bdr.lint.runner import LintOptions, run_lint
from bdr.lint.sarif import to_sarif

DATA = Path(__file__).parent.parent / "data" / "lint"


def test_a_sarif_log_of_real_findings(tmp_path: Path) -> None:
    for item in (DATA / "runbook").iterdir():
        shutil.copy(item, tmp_path / item.name)
    (tmp_path / "deploy").mkdir()
    shutil.move(tmp_path / "docker-compose.yml", tmp_path / "deploy" / "docker-compose.yml")
    report = run_lint(LintOptions(), cwd=tmp_path)
    log = to_sarif(report, tmp_path)

    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "bdr"
    ids = [r["id"] for r in driver["rules"]]
    assert ids == sorted(RULES) and len(set(ids)) == len(ids)
    for entry in driver["rules"]:
        assert entry["shortDescription"]["text"] and entry["fullDescription"]["text"]
        assert entry["defaultConfiguration"]["level"] in ("error", "warning", "note")
    secret_rule = next(r for r in driver["rules"] if r["id"] == "BDR-K001")
    assert "security" in secret_rule["properties"]["tags"]
    assert float(secret_rule["properties"]["security-severity"]) > 0

    results = run["results"]
    assert len(results) == len(report.findings) > 0
    for result, finding in zip(results, report.findings, strict=True):
        assert result["ruleId"] == finding.rule
        assert driver["rules"][result["ruleIndex"]]["id"] == finding.rule
        assert result["level"] == {"error": "error", "warning": "warning", "info": "note"}[finding.severity]
        assert finding.message in result["message"]["text"] and finding.fix in result["message"]["text"]
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert not physical["artifactLocation"]["uri"].startswith("/")
        assert physical["region"]["startLine"] >= 1
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert "deploy/docker-compose.yml" in uris and "crontab" in uris
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"].startswith("file:///")
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"].endswith("/")


def test_notes_become_tool_notifications(tmp_path: Path) -> None:
    shutil.copy(DATA / "clean" / "redis.conf", tmp_path / "redis.conf")
    report = run_lint(LintOptions(), cwd=tmp_path)
    log = to_sarif(report, tmp_path)
    (run,) = log["runs"]
    assert run["results"] == []
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert [n["level"] for n in notes] == ["note"] and "no backup schedule known" in notes[0]["message"]["text"]
