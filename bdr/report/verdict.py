"""The verdict of a scenario: did the drill prove its targets, and if not, why not.

A scenario is ``met`` when it ran to the end and every objective it measured was within
its target, ``BREACHED`` when an objective was missed (or could not be measured) or a
verification failed (content, an application check, production touched), and
otherwise carries the outcome that stopped it: ``failed``, ``error`` or ``skipped``. The
same verdict is shown in the terminal summary, pytest-html, the compliance report, the
JUnit XML and the history, so an auditor sees one word everywhere.
"""

from __future__ import annotations

from enum import StrEnum

from bdr.report.records import DrillResult, Outcome


class Verdict(StrEnum):
    MET = "met"
    BREACHED = "BREACHED"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"

    @property
    def proven(self) -> bool:
        """The scenario's targets are demonstrated as met."""
        return self is Verdict.MET


def verdict_of(result: DrillResult) -> Verdict:
    """``met``, ``BREACHED`` (a target missed), or the outcome (failed, error, skipped)."""
    if result.outcome == Outcome.SKIPPED:
        return Verdict.SKIPPED
    if result.measured_anything and not result.targets_met:
        return Verdict.BREACHED
    if result.outcome == Outcome.PASSED:
        return Verdict.MET
    return Verdict(str(result.outcome))
