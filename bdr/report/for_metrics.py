"""A run as :mod:`bdr.monitoring.metrics` reads it: one entry per scenario case, only objectives with a target.

The metrics (``drill_rto_seconds``, ``drill_target_met`` ...) describe objectives against
targets; an objective the policy defines no target for has nothing to export, and the
cases of one scenario (``accidental_deletion/deleted_redis_keys`` ...) are exported apart so
that one cannot hide another's breach.
"""

from __future__ import annotations

from dataclasses import dataclass

from bdr.report.records import RunReport


@dataclass(frozen=True, slots=True)
class MetricCheck:
    kind: str
    name: str
    target_seconds: float
    achieved_seconds: float | None


@dataclass(frozen=True, slots=True)
class MetricResult:
    scenario: str
    finished_at: str
    outcome: str
    checks: tuple[MetricCheck, ...]


@dataclass(frozen=True, slots=True)
class MetricRun:
    finished_at: str
    results: tuple[MetricResult, ...]


def for_metrics(report: RunReport) -> MetricRun:
    results = tuple(
        MetricResult(r.key, r.finished_at, str(r.outcome) if r.targets_met or r.outcome != "passed" else "failed",
                     tuple(MetricCheck(c.kind, c.name, c.target_seconds, c.achieved_seconds)
                           for c in r.checks if c.target_seconds is not None))
        for r in report.results
    )
    return MetricRun(report.finished_at, results)
