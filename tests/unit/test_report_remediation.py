"""Remediation items: every breach, failure and skipped scenario, with an owner and a due date, carried over
from run to run until a later run passes it; and the coverage matrix with the targets no scenario tested."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from bdr.report import write_reports
from bdr.report.coverage import coverage_of
from bdr.report.history import read_history
from bdr.report.records import ItemStatus, Outcome, TargetCheck
from bdr.report.remediation import UNASSIGNED, owner_for, remediation_items
from tests.report_samples import RTO, sample_report

OWNERS = {"redis": "platform-team", "qdrant": "ml-platform", "config": "sre-oncall"}
NOW = datetime(2026, 11, 25, 6, 20, tzinfo=UTC)


def _items(report: object) -> dict[str, object]:
    return {i.id: i for i in report.remediation}  # type: ignore[attr-defined]


def test_every_breach_failure_and_skip_is_an_item_with_an_owner_and_a_due_date() -> None:
    report = sample_report()
    items = {i.id: i for i in remediation_items(report, (), OWNERS, NOW)}
    assert set(items) == {"complete_data_loss: recovery failed", "complete_data_loss: RTO complete_data_loss",
                          "backup_freshness: could not run", "offsite_restore: not run"}
    breach = items["complete_data_loss: RTO complete_data_loss"]
    assert breach.kind == "breach" and breach.owner == "platform-team" and breach.due == "2026-12-09"
    assert "17m32s against 15m00s" in breach.title and breach.status == ItemStatus.OPEN and not breach.carried
    assert items["offsite_restore: not run"].kind == "skipped"


def test_owners_come_from_the_sources_and_are_never_blank() -> None:
    assert owner_for(["redis", "qdrant"], OWNERS) == "platform-team, ml-platform"
    assert owner_for(["redis"], {"default": "dr-lead"}) == "dr-lead"
    assert owner_for(["qdrant"], {}) == UNASSIGNED.format(source="qdrant")


def test_open_items_are_carried_over_until_a_later_run_passes_them(tmp_path: Path) -> None:
    first = sample_report()
    write_reports(first, tmp_path, owners=OWNERS, now=NOW)
    opened = _items(first)
    assert all(not i.carried for i in opened.values())  # type: ignore[attr-defined]

    second = sample_report()
    second.run_id, second.started_at = "drill-20261202T060000Z", "2026-12-02T06:00:00.000000Z"
    second.finished_at = "2026-12-02T06:19:13.200000Z"
    loss = next(r for r in second.results if r.scenario == "complete_data_loss")
    loss.outcome, loss.failure = Outcome.PASSED, ""
    loss.checks = [TargetCheck("rto", "complete_data_loss", RTO["complete_data_loss"], 612.0)]  # fixed
    second.results = [r for r in second.results if r.scenario != "backup_freshness"]  # not re-tested
    write_reports(second, tmp_path, owners=OWNERS, now=datetime(2026, 12, 2, 6, 20, tzinfo=UTC))
    carried = _items(second)
    fixed = carried["complete_data_loss: RTO complete_data_loss"]
    assert fixed.status == ItemStatus.RESOLVED and fixed.resolved_run == second.run_id  # type: ignore[attr-defined]
    assert fixed.opened_run == first.run_id and fixed.carried  # type: ignore[attr-defined]
    stale = carried["backup_freshness: could not run"]
    assert stale.status == ItemStatus.OPEN and stale.last_seen_run == first.run_id  # type: ignore[attr-defined]
    again = carried["offsite_restore: not run"]
    assert again.status == ItemStatus.OPEN and again.due == "2026-12-09"  # type: ignore[attr-defined]
    assert again.last_seen_run == second.run_id  # type: ignore[attr-defined]

    history = read_history(tmp_path / "history.jsonl")
    latest = history.run(second.run_id)
    assert latest is not None
    assert {i.id for i in latest.open_items} == {"backup_freshness: could not run", "offsite_restore: not run"}
    html = " ".join((tmp_path / f"{second.run_id}.html").read_text().split())
    assert f"✔ resolved by {second.run_id}" in html and "carried over" in html and "platform-team" in html


def test_an_overdue_item_says_so(tmp_path: Path) -> None:
    first = sample_report()
    write_reports(first, tmp_path, owners=OWNERS, now=NOW)
    later = dataclasses.replace(sample_report(), run_id="drill-20270105T060000Z",
                                started_at="2027-01-05T06:00:00.000000Z", finished_at="2027-01-05T06:19:13.000000Z")
    write_reports(later, tmp_path, owners=OWNERS, now=datetime(2027, 1, 5, 6, 20, tzinfo=UTC))
    html = " ".join((tmp_path / f"{later.run_id}.html").read_text().split())
    assert "✘ OVERDUE" in html


def test_the_coverage_matrix_flags_every_untested_target() -> None:
    report = sample_report()
    rows = {r.objective: r for r in coverage_of(report.results, report.policy)}
    assert set(rows) == {f"rto {n}" for n in report.policy["rto"]} | {f"rpo {n}" for n in report.policy["rpo"]}
    metrics = rows["rpo metrics"]
    assert not metrics.tested and "UNTESTED" in metrics.note and "Prometheus" in metrics.note
    offsite = rows["rto offsite_restore"]
    assert not offsite.tested and offsite.planned_by == ("offsite_restore",)
    assert "meant to be tested by offsite_restore" in offsite.note
    qdrant = rows["rto qdrant_restore"]
    assert qdrant.tested_by == (("accidental_deletion/dropped_qdrant_collection", "met"),
                                ("accidental_deletion/deleted_points_matching_a_filter", "met"))
    assert rows["rto complete_data_loss"].tested_by == (("complete_data_loss", "BREACHED"),)


def test_the_report_shows_the_matrix_and_the_items(tmp_path: Path) -> None:
    paths = write_reports(sample_report(), tmp_path, owners=OWNERS, now=NOW)
    text = " ".join(paths.html.read_text().split())
    assert "Coverage: every target of the policy" in text and "⚠ UNTESTED" in text
    assert "UNTESTED: no scenario measured it in this run; tested by the sandbox drill metrics_loss" in text
    assert "Remediation" in text and "2026-12-09" in text and "sre-oncall" not in text  # no config scenario failed
