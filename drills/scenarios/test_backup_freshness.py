"""Runbook: "Backup Retention Policy" and the RPO table: is the schedule fresh enough?

A backup schedule bounds what a total loss costs: up to the longest gap between two
scheduled backups plus the time one backup takes (the newest backup is usable only once
it is complete). The drill takes a real backup of each source to measure that time, reads
the schedule of bdr.yaml (cron expressions), and holds each data type's worst case against
its RPO. It also proves the check has teeth: a daily Redis schedule must breach the 1-hour
session RPO. (The runbook's *hourly* schedule does not strictly meet a 1-hour RPO either,
because a backup takes time: bdr's defaults back Redis up every 30 minutes.)
"""

from __future__ import annotations

import pytest

from bdr import api
from bdr.lint.context import data_types_of
from bdr.lint.schedule import cadence, parse_cron
from bdr.util.durations import format_duration
from drills.recorder import Drill
from drills.stack import Stack

pytestmark = pytest.mark.drill("backup_freshness", title="Backup freshness: schedule against the RPO targets",
                                sources=("redis", "qdrant"), objectives=("rpo sessions", "rpo rbac", "rpo vectors"))


def window(cron: str, duration: float) -> float:
    """Worst case age of the newest usable backup: longest gap between runs + one backup's duration."""
    found = cadence([parse_cron(cron)])
    assert found is not None, f"schedule {cron!r} never runs twice"
    return found.worst_gap + duration


def test_backup_freshness(stack: Stack, drill: Drill) -> None:
    durations: dict[str, float] = {}
    drill.start("freshness check begins (nothing is broken: the schedule is what is tested)")
    for source in ("redis", "qdrant"):
        with drill.step(f"measure backup {source}") as step:
            outcome = api.backup(stack.config, source)
            durations[source] = (outcome.manifest.finished - outcome.manifest.started).total_seconds()
            step.detail = f"{outcome.manifest.id} took {format_duration(durations[source])}"
    schedule = {entry.source: entry.cron for entry in stack.config.schedule}
    windows: dict[str, dict[str, object]] = {}
    described: list[str] = []
    with drill.step("evaluate schedule") as step:
        for source, duration in durations.items():
            cron = schedule.get(source)
            for data_type in data_types_of(source, stack.config):
                if data_type not in stack.config.targets.rpo:
                    continue
                worst = window(cron, duration) if cron else None
                windows[data_type] = {"source": source, "cron": cron, "window_seconds": worst}
                described.append(f"{data_type}: {format_duration(worst) if worst is not None else 'unscheduled'}")
                drill.check("rpo", data_type, stack.config.targets.rpo[data_type], worst,
                            note=f"schedule {cron!r} + {format_duration(duration)} backup" if cron
                            else f"no schedule for {source} in bdr.yaml")
        step.detail = ", ".join(described)
    with drill.step("the check has teeth") as step:
        daily = window("0 2 * * *", durations["redis"])
        half_hourly = window("*/30 * * * *", durations["redis"])
        sessions_rpo = stack.config.targets.rpo["sessions"]
        assert daily > sessions_rpo, "a daily Redis schedule must breach the 1-hour session RPO"
        assert half_hourly <= sessions_rpo
        step.detail = (f"daily: {format_duration(daily)} > {format_duration(sessions_rpo)} (breach, as it must); "
                          f"every 30 min: {format_duration(half_hourly)} (met)")
    drill.verified("schedule evaluated")
    drill.evidence.update(schedule=schedule, backup_seconds=durations, windows=windows,
                          counterfactual={"daily_redis_window_seconds": daily, "sessions_rpo_seconds": sessions_rpo})
    drill.assert_targets()
