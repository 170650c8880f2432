"""Checks of Prometheus's protection: the admin API a backup needs, and scheduled backups within the metrics RPO.

``bdr backup prometheus`` takes a TSDB snapshot through the admin API, which Prometheus
serves only with ``--web.enable-admin-api``. A Prometheus of ``prometheus:`` in bdr.yaml
that says ``admin_api: false``, or that answers on 127.0.0.1 with the flag off (its
``/api/v1/status/flags``, a read-only probe of at most 2 s), cannot be backed up at all
(BDR-M001). A backed-up Prometheus that nothing schedules loses everything since its last
manual backup with its volume (BDR-M002); scheduled further apart than
``targets.rpo.metrics``, a total loss costs more than the RPO (BDR-M003).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlparse

from bdr.config import PrometheusInstance
from bdr.errors import BdrError
from bdr.lint.context import LintContext, check
from bdr.lint.findings import Finding, Severity, rule
from bdr.lint.source_schedule import ScheduleCheck, schedule_findings

ADMIN_API_OFF = rule(
    "BDR-M001", "prometheus-admin-api-off", Severity.ERROR,
    "A Prometheus bdr backs up runs without its admin API.",
    "bdr backs up Prometheus through its TSDB snapshot (POST /api/v1/admin/tsdb/snapshot), which Prometheus "
    "serves only when started with --web.enable-admin-api: without it every backup of the metrics fails.",
)
METRICS_NOT_SCHEDULED = rule(
    "BDR-M002", "prometheus-not-scheduled", Severity.ERROR,
    "A Prometheus bdr backs up has no scheduled backup.",
    "Without a scheduled bdr backup prometheus, losing the metrics volume loses all history since the last "
    "backup taken by hand.",
)
METRICS_RPO = rule(
    "BDR-M003", "prometheus-schedule-exceeds-rpo", Severity.ERROR,
    "Prometheus's backups are scheduled further apart than the metrics RPO.",
    "A total loss costs the metrics of up to the longest gap between two backups.",
)


def _loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def admin_api_state(instance: PrometheusInstance) -> tuple[bool | None, str]:
    """(on?, how bdr knows): ``admin_api`` of bdr.yaml, else the running server's flags (loopback only)."""
    if not instance.admin_api:
        return False, f"prometheus.{instance.name}.admin_api is false"
    if not _loopback(instance.url):
        return None, "not probed (not on this host)"
    from bdr.engines.prometheus.client import PrometheusClient

    try:
        flags = PrometheusClient(instance.name, instance.url, timeout=2.0).flags()
    except BdrError:
        return None, "not probed (not answering)"
    value = flags.get("web.enable-admin-api")
    if value is None:
        return None, "its flags do not say"
    return value == "true", f"{instance.url}/api/v1/status/flags says web.enable-admin-api={value}"


@check
def check_admin_api(ctx: LintContext) -> Iterable[Finding]:
    """BDR-M001: every backed-up Prometheus serves the admin API."""
    if ctx.policy is None or ctx.policy.path is None or not ctx.policy_found:
        return
    for instance in ctx.config.prometheus.values():
        if not instance.backup:
            continue
        on, how = admin_api_state(instance)
        if on is None:
            ctx.note(f"prometheus.{instance.name}: admin API {how}")
            continue
        if not on:
            yield ADMIN_API_OFF.finding(
                ctx.policy.path, ctx.policy.line("prometheus", instance.name, "admin_api")
                or ctx.policy.line("prometheus", instance.name),
                f"Prometheus {instance.name} runs without --web.enable-admin-api ({how})",
                "bdr backup prometheus cannot take a TSDB snapshot: the metrics are not backed up at all.",
                "Start Prometheus with --web.enable-admin-api (and keep its port on a trusted network), then set "
                f"prometheus.{instance.name}.admin_api: true.",
                facts={"source": "prometheus", "instance": instance.name},
            )


SCHEDULE = ScheduleCheck("prometheus", "Prometheus", "metrics", 7 * 86400.0, METRICS_NOT_SCHEDULED, METRICS_RPO,
                         "A total loss of the TSDB", "metrics")


@check
def check_metrics_schedule(ctx: LintContext) -> Iterable[Finding]:
    """BDR-M002/M003: every backed-up Prometheus is scheduled, within targets.rpo.metrics."""
    if ctx.policy is None or ctx.policy.path is None or not ctx.policy_found:
        return
    backed = [i for i in ctx.config.prometheus.values() if i.backup]
    if not backed:
        return
    names = ", ".join(f"prometheus.{i.name}" for i in backed)
    yield from schedule_findings(ctx, SCHEDULE, [i.name for i in backed], (
        f"nothing schedules bdr backup prometheus for {names}",
        "Losing the metrics volume loses all history since the last manual backup;"))
