"""The schedule checks every backed-up source shares: something schedules its backups, within its RPO.

:mod:`.grafana` (BDR-D001/D002) and :mod:`.prometheus` (BDR-M002/M003) differ only in their
rules, their RPO and their words: :class:`ScheduleCheck` holds those, :func:`schedule_findings`
does the checking.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bdr.lint.context import LintContext
from bdr.lint.findings import Finding, Rule, human_duration
from bdr.lint.schedule import ScheduledBackup, schedule_cadence
from bdr.lint.windows import suggest_schedule


@dataclass(frozen=True, slots=True)
class ScheduleCheck:
    """One source's schedule rules and the words of their findings."""

    source: str
    """``grafana``: the source of ``bdr backup SOURCE`` and of ``schedule.SOURCE``."""
    title: str
    """``Grafana``, as a sentence names it."""
    rpo_key: str
    """The key of ``targets.rpo`` (``dashboards``)."""
    rpo_default: float
    not_scheduled: Rule
    exceeds_rpo: Rule
    total_loss: str
    """``A total loss of grafana.db``."""
    loses: str
    """What such a loss costs: ``dashboard changes``."""
    backup_all_installed: bool = False
    """An installed ``bdr backup all`` (a crontab line) takes this source too."""


def scheduled_backups(ctx: LintContext, spec: ScheduleCheck) -> list[ScheduledBackup]:
    """The backups that take ``spec.source``: its own, and every ``bdr backup all`` of bdr.yaml (or installed)."""
    entries = list(ctx.schedule_for(spec.source))
    if spec.backup_all_installed:
        entries += [dataclasses.replace(e, source=spec.source) for e in ctx.crontab_entries[0]
                    if e.source == "redis" and e.program == "bdr backup all"]
    if ctx.policy is not None and ctx.policy.path is not None and ctx.policy_found:
        for entry in ctx.policy.config.schedule:
            if entry.takes_backup and entry.source == "all":
                entries.append(ScheduledBackup(spec.source, entry.cron, ctx.policy.path,
                                               ctx.policy.line("schedule", entry.key), f"schedule.{entry.key}"))
    return entries


def schedule_findings(ctx: LintContext, spec: ScheduleCheck, instances: Sequence[str],
                      unscheduled: tuple[str, str]) -> Iterator[Finding]:
    """The not-scheduled finding (``unscheduled``: its message and why) or the exceeds-RPO one for ``instances``.

    The caller has checked that the policy file was found and that ``instances`` is not empty."""
    assert ctx.policy is not None and ctx.policy.path is not None
    rpo = ctx.config.targets.rpo.get(spec.rpo_key, spec.rpo_default)
    entries = scheduled_backups(ctx, spec)
    if not entries:
        message, why = unscheduled
        yield spec.not_scheduled.finding(
            ctx.policy.path, ctx.policy.line(spec.source) or ctx.policy.line("schedule"), message,
            why + f" the {spec.rpo_key} RPO is {human_duration(rpo)}.",
            f"Add `{spec.source}: \"{suggest_schedule(rpo / 2)}\"` under schedule: in bdr.yaml and install it "
            "(bdr schedule --install --enable).",
            facts={"source": spec.source, "instances": list(instances), "rpo_seconds": rpo},
        )
        return
    cadence = schedule_cadence(entries)
    if cadence is not None and cadence.worst_gap > rpo:
        first = entries[0]
        yield spec.exceeds_rpo.finding(
            first.path or ctx.policy.path, first.line,
            f"{first.program} `{first.cron}` backs up {spec.title} every {human_duration(cadence.worst_gap)} at "
            f"worst, more than the {spec.rpo_key} RPO of {human_duration(rpo)}",
            f"{spec.total_loss} can cost {human_duration(cadence.worst_gap)} of {spec.loses}.",
            f"Back up {spec.title} at least every {human_duration(rpo / 2)} (e.g. cron `{suggest_schedule(rpo / 2)}`), "
            f"or raise targets.rpo.{spec.rpo_key}.",
            facts={"source": spec.source, "interval_seconds": cadence.worst_gap, "rpo_seconds": rpo},
        )
