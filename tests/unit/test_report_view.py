"""What the report says about each objective and each piece of evidence, independent of the HTML."""

from __future__ import annotations

from bdr.report.records import DrillResult, Outcome, TargetCheck
from bdr.report.verdict import Verdict, verdict_of
from bdr.report.view import CheckView, Grid, Pairs, Scalar, evidence_node, summarize
from tests.report_samples import sample_report, sample_results


def _result(outcome: Outcome, *checks: TargetCheck) -> DrillResult:
    return DrillResult("s", "t", "n", "process", "2026-11-25T06:00:00.000000Z", outcome=outcome, checks=list(checks))


def test_verdicts() -> None:
    met, missed = TargetCheck("rto", "x", 60, 1), TargetCheck("rto", "x", 60, 61)
    unmeasured = TargetCheck("rpo", "sessions", 60, None)
    assert verdict_of(_result(Outcome.PASSED, met)) is Verdict.MET
    assert verdict_of(_result(Outcome.FAILED, met, missed)) is Verdict.BREACHED
    assert verdict_of(_result(Outcome.FAILED, unmeasured)) is Verdict.BREACHED
    assert verdict_of(_result(Outcome.FAILED, met)) is Verdict.FAILED
    assert verdict_of(_result(Outcome.ERROR)) is Verdict.ERROR
    assert verdict_of(_result(Outcome.SKIPPED, missed)) is Verdict.SKIPPED


def test_margin_and_share_of_target_in_words() -> None:
    assert CheckView(TargetCheck("rto", "x", 300, 12)).margin == "4m48s to spare"
    assert CheckView(TargetCheck("rto", "x", 300, 12)).percent_text == "4.0% of target"
    assert CheckView(TargetCheck("rto", "x", 60, 75)).margin == "15.0s over target"
    assert CheckView(TargetCheck("rto", "x", 60, 75)).percent_text == "125% of target"
    assert CheckView(TargetCheck("rpo", "x", 86400, 0.4)).percent_text == "<0.1% of target"
    assert CheckView(TargetCheck("rpo", "x", 60, None)).margin == "unknown: not measured"
    assert CheckView(TargetCheck("rpo", "x", 60, None)).achieved == "not measured"
    assert CheckView(TargetCheck("loss window", "x", 0, 0)).percent_text == "0.0% of target"
    assert CheckView(TargetCheck("loss window", "x", 0, 1)).percent_text == "∞ % of target"


def test_summary_counts() -> None:
    summary = summarize(sample_report())
    assert summary.status == "breached" and summary.headline == "1 TARGET BREACHED"
    assert summary.targets_checked == 17 and summary.targets_breached == 1  # 16 objectives, 1 check (1 not verified)
    assert summary.counts == {Verdict.MET: 7, Verdict.BREACHED: 1, Verdict.FAILED: 0, Verdict.ERROR: 1,
                              Verdict.SKIPPED: 1}
    two = sample_results()
    two[0].checks.append(TargetCheck("rpo", "config", 60, None))
    assert summarize(sample_report(two)).headline == "2 TARGETS BREACHED"


def test_evidence_is_laid_out_by_shape_and_secrets_never_shown() -> None:
    node = evidence_node({
        "backup_id": "redis-1", "count": 1_530_000, "ok": True, "missing": None, "took_seconds": 75.5,
        "steps": [{"name": "stop", "seconds": 0.1}, {"name": "start", "seconds": 2.0, "extra": "x"}],
        "ids": ["a", "b"], "redis_password": "hunter2", "nested": {"credentials": {"key": "v"}},
    })
    assert isinstance(node, Pairs)
    items = dict(node.items)
    assert items["backup_id"] == Scalar("redis-1", mono=True)
    assert items["count"] == Scalar("1 530 000")
    assert items["ok"] == Scalar("yes") and items["missing"] == Scalar("—")
    assert items["took_seconds"] == Scalar("1m16s (75.5 s)")
    grid = items["steps"]
    assert isinstance(grid, Grid) and grid.columns == ("name", "seconds", "extra")
    assert grid.rows[1] == (Scalar("start"), Scalar("2.0s"), Scalar("x"))
    assert grid.rows[0][2] == Scalar("—")
    assert items["ids"] == Scalar("a, b", mono=True)
    assert items["redis_password"] == Scalar("••• (redacted)")
    nested = items["nested"]
    assert isinstance(nested, Pairs) and dict(nested.items)["credentials"] == Scalar("••• (redacted)")
    assert "hunter2" not in repr(node)
