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
from collections.abc import Iterable

from bdr.config import Config, GrafanaInstance
from bdr.lint.context import LintContext, check
from bdr.lint.findings import Finding, Severity, rule
from bdr.lint.source_schedule import ScheduleCheck, schedule_findings

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


SCHEDULE = ScheduleCheck("grafana", "Grafana", "dashboards", 86400.0, GRAFANA_NOT_SCHEDULED, GRAFANA_RPO,
                         "A total loss of grafana.db", "dashboard changes", backup_all_installed=True)


@check
def check_grafana_schedule(ctx: LintContext) -> Iterable[Finding]:
    """BDR-D001/D002: every backed-up Grafana on SQLite is scheduled, within targets.rpo.dashboards."""
    if ctx.policy is None or ctx.policy.path is None or not ctx.policy_found:
        return
    config = ctx.config
    on_sqlite = [i for i in config.grafana.values() if i.backup and database_type(config, i) == "sqlite3"]
    if not on_sqlite:
        return
    names = ", ".join(f"grafana.{i.name}" for i in on_sqlite)
    yield from schedule_findings(ctx, SCHEDULE, [i.name for i in on_sqlite], (
        f"{names} keep{'s' if len(on_sqlite) == 1 else ''} dashboards in SQLite (grafana.db) and nothing "
        "schedules bdr backup grafana",
        "Losing the volume of grafana.db loses every dashboard, folder, data source and alert rule since the "
        "last manual backup;"))
