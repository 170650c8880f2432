"""Checks of Grafana's protection: a Grafana on SQLite needs scheduled backups within the dashboards RPO.

Grafana keeps every dashboard, folder, data source and alert rule made in its UI in one
SQLite file (``grafana.db``) unless grafana.ini points it at PostgreSQL or MySQL. A Grafana of
``grafana:`` in bdr.yaml whose database is SQLite, with no ``schedule.grafana`` (or ``all``)
and no installed ``bdr backup grafana``, loses everything made since its last manual backup
when its volume goes (BDR-D001); scheduled further apart than ``targets.rpo.dashboards``, a
total loss costs more than the RPO (BDR-D002).
"""

from __future__ import annotations

import configparser
import dataclasses
from collections.abc import Iterable

from bdr.config import Config, GrafanaInstance
from bdr.lint.context import LintContext, check
from bdr.lint.findings import Finding, Severity, human_duration, rule
from bdr.lint.schedule import ScheduledBackup, schedule_cadence
from bdr.lint.windows import suggest_schedule

GRAFANA_NOT_SCHEDULED = rule(
    "BDR-D001", "grafana-not-scheduled", Severity.ERROR,
    "A Grafana on SQLite has no scheduled backup.",
    "Dashboards, folders, data sources and alert rules made in Grafana's UI live only in grafana.db: without a "
    "scheduled bdr backup grafana, losing its volume loses everything since the last backup taken by hand.",
)
GRAFANA_RPO = rule(
    "BDR-D002", "grafana-schedule-exceeds-rpo", Severity.ERROR,
    "Grafana's backups are scheduled further apart than the dashboards RPO.",
    "A total loss costs the dashboard changes of up to the longest gap between two backups.",
)


def database_type(config: Config, instance: GrafanaInstance) -> str:
    """``[database] type`` of grafana.ini (``sqlite3`` when unset or unreadable, Grafana's default)."""
    if not instance.config_file:
        return "sqlite3"
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(config.resolve(instance.config_file))
    except (configparser.Error, OSError, UnicodeDecodeError):
        return "sqlite3"
    return parser.get("database", "type", fallback="sqlite3").strip() or "sqlite3"


def _scheduled(ctx: LintContext) -> list[ScheduledBackup]:
    """The backups that take Grafana: its own, and every ``bdr backup all`` (of bdr.yaml or installed)."""
    entries = list(ctx.schedule_for("grafana"))
    entries += [dataclasses.replace(e, source="grafana") for e in ctx.crontab_entries[0]
                if e.source == "redis" and e.program == "bdr backup all"]
    if ctx.policy is not None and ctx.policy.path is not None and ctx.policy_found:
        for entry in ctx.policy.config.schedule:
            if entry.takes_backup and entry.source == "all":
                entries.append(ScheduledBackup("grafana", entry.cron, ctx.policy.path,
                                               ctx.policy.line("schedule", entry.key), f"schedule.{entry.key}"))
    return entries


@check
def check_grafana_schedule(ctx: LintContext) -> Iterable[Finding]:
    """BDR-D001/D002: every backed-up Grafana on SQLite is scheduled, within targets.rpo.dashboards."""
    if ctx.policy is None or ctx.policy.path is None or not ctx.policy_found:
        return
    config = ctx.config
    on_sqlite = [i for i in config.grafana.values() if i.backup and database_type(config, i) == "sqlite3"]
    if not on_sqlite:
        return
    rpo = config.targets.rpo.get("dashboards", 86400.0)
    names = ", ".join(f"grafana.{i.name}" for i in on_sqlite)
    entries = _scheduled(ctx)
    if not entries:
        yield GRAFANA_NOT_SCHEDULED.finding(
            ctx.policy.path, ctx.policy.line("grafana") or ctx.policy.line("schedule"),
            f"{names} keep{'s' if len(on_sqlite) == 1 else ''} dashboards in SQLite (grafana.db) and nothing "
            "schedules bdr backup grafana",
            f"Losing the volume of grafana.db loses every dashboard, folder, data source and alert rule since the "
            f"last manual backup; the dashboards RPO is {human_duration(rpo)}.",
            f"Add `grafana: \"{suggest_schedule(rpo / 2)}\"` under schedule: in bdr.yaml and install it "
            "(bdr schedule --install --enable).",
            facts={"source": "grafana", "instances": [i.name for i in on_sqlite], "rpo_seconds": rpo},
        )
        return
    cadence = schedule_cadence(entries)
    if cadence is not None and cadence.worst_gap > rpo:
        first = entries[0]
        yield GRAFANA_RPO.finding(
            first.path or ctx.policy.path, first.line,
            f"{first.program} `{first.cron}` backs up Grafana every {human_duration(cadence.worst_gap)} at worst, "
            f"more than the dashboards RPO of {human_duration(rpo)}",
            f"A total loss of grafana.db can cost {human_duration(cadence.worst_gap)} of dashboard changes.",
            f"Back up Grafana at least every {human_duration(rpo / 2)} (e.g. cron `{suggest_schedule(rpo / 2)}`), or "
            "raise targets.rpo.dashboards.",
            facts={"source": "grafana", "interval_seconds": cadence.worst_gap, "rpo_seconds": rpo},
        )
