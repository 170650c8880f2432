"""The coverage matrix: every target of the policy against the scenarios that tested it.

A target no scenario measured in the run is listed as *untested*, never left out, with where
it is tested otherwise (the 7-day metrics RPO by the ``metrics_loss`` drill, which needs a
``prometheus`` binary). A target a scenario was meant to test but did not (skipped, failed
before it got there) names that scenario. Pure: computed from the run's results and its policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bdr.report.records import CoverageRow, DrillResult, Outcome

NOT_BACKED_UP: dict[str, str] = {}
"""Data types of the runbook's RPO table that are no source of bdr's (none since Prometheus became one)."""
ELSEWHERE = {
    "rto redis_restart": "a restart is no restore: the sandbox drill redis_restart tests it",
    "rto offsite_restore": "tested by bdr drill --live --remote, and by the sandbox drill offsite_restore",
    "rto full_system_restore": "tested by bdr drill --live (all three sources), and by the sandbox drill "
                               "complete_data_loss",
    "rto config_restore": "tested by bdr drill --live: no sandbox scenario restores the configuration alone",
    "rpo metrics": "tested by the sandbox drill metrics_loss, which restores Prometheus's TSDB (it runs where a "
                   "prometheus binary is installed)",
    "rto metrics_restore": "tested by the sandbox drill metrics_loss (it runs where a prometheus binary is "
                           "installed)",
    "rpo dashboards": "tested by the sandbox drill dashboards_loss, which restores grafana.db under a stand-in "
                      "service",
    "rto dashboards_restore": "tested by the sandbox drill dashboards_loss",
}
"""Where a target is tested when this run could not test it."""


def _verdict(result: DrillResult, objective: str) -> str:
    check = next(c for c in result.checks if c.objective == objective)
    if check.achieved_seconds is None:
        return "not measured"
    return "met" if check.met else "BREACHED"


def coverage_of(results: list[DrillResult], policy: Mapping[str, Any]) -> list[CoverageRow]:
    """One row per RTO and RPO target of ``policy`` (``{"rto": {...}, "rpo": {...}}``)."""
    rows: list[CoverageRow] = []
    for kind in ("rto", "rpo"):
        targets = policy.get(kind)
        if not isinstance(targets, Mapping):
            continue
        for name, seconds in sorted(targets.items()):
            objective = f"{kind} {name}"
            ran = [r for r in results if r.outcome != Outcome.SKIPPED]
            tested = tuple((r.key, _verdict(r, objective)) for r in ran
                           if any(c.objective == objective for c in r.checks))
            tested_keys = {key for key, _ in tested}
            planned = tuple(dict.fromkeys(r.key for r in results if objective in r.planned
                                          and r.key not in tested_keys))
            note = ""
            if not tested:
                reasons = ["UNTESTED: no scenario measured it in this run"]
                if kind == "rpo" and name in NOT_BACKED_UP:
                    reasons.append(NOT_BACKED_UP[name])
                if planned:
                    reasons.append(f"meant to be tested by {', '.join(planned)}, which did not measure it")
                elif objective in ELSEWHERE:
                    reasons.append(ELSEWHERE[objective])
                note = "; ".join(reasons)
            rows.append(CoverageRow(objective, float(seconds), tested, planned, note))
    return rows
