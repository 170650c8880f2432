"""Remediation items: what must be fixed after a run, by whom, by when, until a run proves it fixed.

Every breached objective, failed verification, failed or errored scenario, and skipped
scenario of a run becomes an item with a stable id (``<scenario key>: <what>``), an owner
(from ``owners:`` in bdr.yaml, by the sources the scenario exercises) and a due date (the
run's date plus ``drill.remediation_due``, 14 days by default). The items still open after a
run are written into its history record; the next run carries them over:

- the same problem again: the item stays open, with its first run, opening date and due date;
- the scenario ran and the problem is gone: the item is *resolved* by that run (shown once,
  then dropped from the history);
- the scenario did not run again (a sandbox run after a live one, a ``--scenario`` subset):
  the item stays open, *not re-tested*.

Pure functions of (this run, the previous open items, owners, now): no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from bdr.report.records import DrillResult, ItemStatus, RemediationItem, RunReport
from bdr.report.verdict import Verdict, verdict_of
from bdr.repository.manifest import to_iso
from bdr.util.durations import format_duration

DEFAULT_DUE_SECONDS = 14 * 86400.0
UNASSIGNED = "unassigned (set owners.{source} in bdr.yaml)"


def owner_for(sources: Sequence[str], owners: Mapping[str, str]) -> str:
    """Who owns a scenario's items: the owners of its sources, else ``owners.default``; never blank."""
    names = list(dict.fromkeys(owners[s] for s in sources if owners.get(s)))
    if names:
        return ", ".join(names)
    if owners.get("default"):
        return owners["default"]
    return UNASSIGNED.format(source=sources[0] if len(sources) == 1 else "default")


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in this run, before it becomes (or updates) an item."""

    id: str
    kind: str
    title: str
    detail: str


def problems_of(result: DrillResult) -> list[Problem]:
    """What is wrong with one scenario case (nothing when it met every target)."""
    verdict = verdict_of(result)
    key = result.key
    if verdict is Verdict.SKIPPED:
        return [Problem(f"{key}: not run", "skipped", f"{result.title}: skipped, its targets were not tested",
                        result.failure or "skipped")]
    if verdict is Verdict.ERROR:
        return [Problem(f"{key}: could not run", "error", f"{result.title}: the drill could not run",
                        result.failure)]
    out: list[Problem] = []
    if verdict is Verdict.FAILED or (result.outcome == "failed" and result.failure):
        out.append(Problem(f"{key}: recovery failed", "failure", f"{result.title}: the recovery failed",
                           result.failure))
    for check in result.checks:
        if check.breached:
            achieved = "not measured" if check.achieved_seconds is None else format_duration(check.achieved_seconds)
            target = format_duration(check.target_seconds or 0.0)
            out.append(Problem(f"{key}: {check.kind.upper()} {check.name}", "breach",
                               f"{check.kind.upper()} {check.name} breached: {achieved} against {target}",
                               check.note or check.describe()))
    for verification in result.failed_verifications:
        out.append(Problem(f"{key}: {verification.kind} check {verification.name}", "breach",
                           f"{verification.kind} check failed: {verification.name}", verification.detail))
    return out


def remediation_items(report: RunReport, previous: Sequence[RemediationItem], owners: Mapping[str, str],
                      now: datetime, due_after: float = DEFAULT_DUE_SECONDS) -> list[RemediationItem]:
    """This run's items: the previous open ones carried over (resolved when passed), then the new ones."""
    found: dict[str, tuple[Problem, DrillResult]] = {}
    for result in report.results:
        for problem in problems_of(result):
            found.setdefault(problem.id, (problem, result))
    retested = {r.key for r in report.results if verdict_of(r) is not Verdict.SKIPPED}
    items: list[RemediationItem] = []
    seen: set[str] = set()
    for item in previous:
        if not item.open or item.id in seen:
            continue
        seen.add(item.id)
        if item.id in found:
            problem, _result = found[item.id]
            items.append(dataclasses.replace(item, detail=problem.detail, title=problem.title,
                                             last_seen_run=report.run_id, carried=True))
        elif item.scenario in retested:
            items.append(dataclasses.replace(item, status=ItemStatus.RESOLVED, resolved_run=report.run_id,
                                             carried=True))
        else:
            items.append(dataclasses.replace(item, carried=True))
    due = (now + timedelta(seconds=due_after)).date().isoformat()
    for item_id, (problem, result) in found.items():
        if item_id in seen:
            continue
        items.append(RemediationItem(
            id=item_id, scenario=result.key, kind=problem.kind, title=problem.title, detail=problem.detail,
            owner=owner_for(result.sources or ["default"], owners), due=due, status=ItemStatus.OPEN,
            opened_run=report.run_id, opened_at=to_iso(now), last_seen_run=report.run_id,
        ))
    return items


def overdue(item: RemediationItem, today: str) -> bool:
    """An open item whose due date (ISO) is before ``today`` (ISO)."""
    return item.open and item.due < today
