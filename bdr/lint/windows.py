"""How much data each kind of disaster can cost, per data type, from the configuration alone.

Two events bound the recovery point differently:

- a **crash** (Redis killed, the host reboots or loses power; the disk survives): what is
  lost is what persistence had not yet put on disk (:mod:`bdr.lint.persistence`); with no
  persistence at all, everything since the last backup;
- a **total loss** (the disk or the host is gone, or the data is destroyed): only backups
  remain, so the loss is up to the longest gap between two scheduled backups *plus* the time
  a backup takes (the newest backup is usable only once it is complete). A Redis instance
  archived continuously (``archive.redis``, ``bdr archive redis``) loses at most its archive
  lag instead, which ``bdr status`` and the ArchiveLagging alert hold under its ``max_lag``
  (:class:`ArchiveWindow`).

Each :class:`Exposure` is one such worst case for one data type, compared with its RPO.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from bdr.lint.compose import RedisSetup, redis_setups
from bdr.lint.context import SOURCE_LABELS, BackupDuration, LintContext, data_types_of
from bdr.lint.findings import display_path, human_duration
from bdr.lint.persistence import CrashWindow, crash_window, resolve
from bdr.lint.schedule import CronError, ScheduledBackup, schedule_cadence


class Event(StrEnum):
    CRASH = "crash"
    TOTAL_LOSS = "total loss"


@dataclass(frozen=True, slots=True)
class BackupWindow:
    """The age of the newest usable backup of a source, at worst: longest gap + backup duration."""

    source: str
    interval: float
    mean_interval: float
    duration: BackupDuration
    entries: tuple[ScheduledBackup, ...]

    @property
    def seconds(self) -> float:
        return self.interval + self.duration.seconds

    @property
    def schedule_text(self) -> str:
        return ", ".join(f"`{e.cron}` ({e.program})" for e in self.entries)

    @property
    def basis(self) -> str:
        return (f"{SOURCE_LABELS.get(self.source, self.source)} backups run every {human_duration(self.interval)} "
                f"at worst ({self.schedule_text}) and one takes {self.duration.detail}")


def backup_window(ctx: LintContext, source: str) -> BackupWindow | None:
    """The backup window of ``source``; None when no valid schedule for it is known."""
    entries = []
    for entry in ctx.schedule_for(source):
        try:
            entry.calendar()
            entries.append(entry)
        except CronError:
            continue
    found = schedule_cadence(entries)
    if found is None:
        return None
    return BackupWindow(source, found.worst_gap, found.mean_gap, ctx.backup_duration(source), tuple(entries))


@dataclass(frozen=True, slots=True)
class ArchiveWindow:
    """What a total loss costs an archived Redis instance: its archive lag, at most ``max_lag``."""

    source: str
    instance: str
    seconds: float
    segment_seconds: float

    @property
    def basis(self) -> str:
        return (f"Redis {self.instance} is archived continuously (bdr archive redis): a total loss loses at most the "
                f"archive lag, which bdr status and the ArchiveLagging alert hold under archive.redis.{self.instance}"
                f".max_lag {human_duration(self.seconds)} (segments sealed every "
                f"{human_duration(self.segment_seconds)})")


def archive_window(ctx: LintContext, source: str) -> ArchiveWindow | None:
    """The archive window of ``source`` (Redis whose default instance is archived), else None."""
    config = ctx.config
    if source != "redis" or config.redis_default not in config.archive:
        return None
    settings = config.archive[config.redis_default]
    return ArchiveWindow(source, settings.name, settings.max_lag, settings.segment_seconds)


def archive_exposures(ctx: LintContext) -> list[tuple[ArchiveWindow, list[Exposure]]]:
    """For an archived Redis: what a total loss costs each Redis data type (the archive lag)."""
    window = archive_window(ctx, "redis")
    if window is None:
        return []
    path = ctx.policy.path if ctx.policy is not None else None
    line = ctx.policy.line("archive", "redis", window.instance) if ctx.policy is not None and path else None
    exposures = [Exposure(t, "redis", Event.TOTAL_LOSS, window.seconds, ctx.config.targets.rpo[t], window.basis,
                          path, line, f"archive.redis.{window.instance}")
                 for t in data_types_of("redis", ctx.config)]
    return [(window, exposures)]


@dataclass(frozen=True, slots=True)
class Exposure:
    """The worst-case data loss of one data type in one event, against its RPO."""

    data_type: str
    source: str
    event: Event
    seconds: float | None
    """None: nothing bounds it (no persistence and no backup schedule)."""
    rpo: float
    basis: str
    path: Path | None
    line: int | None
    setup: str = ""

    @property
    def breached(self) -> bool:
        return self.seconds is None or self.seconds > self.rpo

    @property
    def window_text(self) -> str:
        return "unbounded" if self.seconds is None else human_duration(self.seconds)

    def to_dict(self, base: Path | None = None) -> dict[str, Any]:
        return {
            "data_type": self.data_type, "source": self.source, "event": str(self.event),
            "window_seconds": self.seconds, "rpo_seconds": self.rpo, "ok": not self.breached,
            "basis": self.basis, "setup": self.setup,
            "path": display_path(self.path, base) if self.path else None, "line": self.line,
        }


@dataclass(frozen=True, slots=True)
class CrashExposure:
    """One Redis setup's crash window and the exposures it gives each Redis data type."""

    setup: RedisSetup
    crash: CrashWindow
    exposures: tuple[Exposure, ...]


def crash_exposures(ctx: LintContext) -> list[CrashExposure]:
    """For each Redis setup holding production data: what a crash costs each Redis data type."""
    types = data_types_of("redis", ctx.config)
    backups = backup_window(ctx, "redis")
    out = []
    for setup in _setups(ctx):
        settings = resolve(setup.conf.directives)
        crash = crash_window(settings)
        seconds = crash.seconds
        basis = crash.explanation
        archived = archive_window(ctx, "redis")
        if seconds is None and archived is not None:
            seconds = archived.seconds
            basis += f"; {archived.basis}"
        elif seconds is None:
            if backups is not None:
                seconds = backups.seconds
                basis += f"; {backups.basis}"
            else:
                basis += "; and no backup schedule of Redis is known"
        where = crash.decided_by
        path, line = (where.path, where.line) if where else (setup.path, setup.line)
        exposures = tuple(
            Exposure(t, "redis", Event.CRASH, seconds, ctx.config.targets.rpo[t], basis, path, line, setup.label)
            for t in types
        )
        out.append(CrashExposure(setup, crash, exposures))
    return out


def _setups(ctx: LintContext) -> list[RedisSetup]:
    standalone = [
        RedisSetup(label=display_path(p, ctx.cwd), conf=conf, path=p, line=None)
        for p, conf in ctx.redis_confs.items() if ctx.holds_production_data(p)
    ]
    return standalone + redis_setups(ctx)


def total_loss_exposures(ctx: LintContext) -> list[tuple[BackupWindow, list[Exposure]]]:
    """For each source with a known schedule: what a total loss costs each of its data types."""
    out = []
    for source in ("redis", "qdrant", "config"):
        types = data_types_of(source, ctx.config)
        window = backup_window(ctx, source) if types else None
        archived = archive_window(ctx, source)
        if window is None or (archived is not None and archived.seconds <= window.seconds):
            continue  # an archived Redis: archive_exposures
        first = window.entries[0]
        label = ", ".join(dict.fromkeys(_where(e, ctx) for e in window.entries))
        exposures = [
            Exposure(t, source, Event.TOTAL_LOSS, window.seconds, ctx.config.targets.rpo[t], window.basis,
                     first.path, first.line, label)
            for t in types
        ]
        out.append((window, exposures))
    return out


def _where(entry: ScheduledBackup, ctx: LintContext) -> str:
    if entry.program.startswith("schedule.") or entry.path is None:
        return entry.program
    return f"{entry.program} ({display_path(entry.path, ctx.cwd)})"


def all_exposures(ctx: LintContext) -> list[Exposure]:
    """Every exposure, for the report's table."""
    crash = [e for c in crash_exposures(ctx) for e in c.exposures]
    loss = [e for _, group in total_loss_exposures(ctx) for e in group]
    archived = [e for _, group in archive_exposures(ctx) for e in group]
    return crash + loss + archived


SUGGESTED_SCHEDULES: tuple[tuple[float, str], ...] = (
    (86400, "0 2 * * *"), (43200, "0 */12 * * *"), (21600, "0 */6 * * *"), (14400, "0 */4 * * *"),
    (10800, "0 */3 * * *"), (7200, "0 */2 * * *"), (3600, "0 * * * *"), (1800, "*/30 * * * *"),
    (1200, "*/20 * * * *"), (900, "*/15 * * * *"), (600, "*/10 * * * *"), (300, "*/5 * * * *"),
    (60, "* * * * *"),
)


def suggest_schedule(max_interval: float) -> str | None:
    """The least frequent common cron schedule whose runs are at most ``max_interval`` apart."""
    for interval, cron in SUGGESTED_SCHEDULES:
        if interval <= max_interval:
            return cron
    return None
