"""Everything one ``bdr lint`` run looks at, parsed once and shared by the checks.

The context holds the files to lint (by kind), the policy (``bdr.yaml``: targets, retention,
schedule) with the line of each setting, the scheduled backups (from ``schedule:``, and what is
installed: crontabs and systemd timers), how long a backup of each source takes (measured from
the newest set in the repository, else the estimate of ``lint.backup_duration``), and which
files git tracks.

Data types map to the source that holds them (:data:`DATA_SOURCES`): sessions and RBAC
live in Redis, vectors in Qdrant, configuration and secrets are files. That is how a Redis
setting is held to the sessions RPO.

Checks are functions from a context to findings, registered with :func:`check`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar, cast

from bdr.config import Config
from bdr.errors import BdrError
from bdr.formats.redis_conf import RedisConf, parse_redis_conf
from bdr.lint.files import ConfigKind
from bdr.lint.findings import Finding, human_duration
from bdr.lint.git import TrackedFiles
from bdr.lint.schedule import CrontabProblem, ScheduledBackup, parse_crontab
from bdr.lint.systemd import TimerSchedule, read_timers, timers_in
from bdr.lint.yamlmarks import MarkedDict
from bdr.sources import all_sources

logger = logging.getLogger(__name__)

T = TypeVar("T")

DATA_SOURCES: Mapping[str, str] = {kind: source.name for source in all_sources() if not source.optional
                                   for kind in source.data_types}
"""Which source holds each data type of ``targets.rpo`` (the catalogue's; metrics and dashboards:
:mod:`bdr.lint.prometheus` and :mod:`bdr.lint.grafana`, when configured)."""

SOURCE_LABELS: Mapping[str, str] = {source.name: source.title for source in all_sources()}


def data_types_of(source: str, config: Config) -> list[str]:
    """The data types with an RPO target that live in ``source``."""
    return [t for t in config.targets.rpo if DATA_SOURCES.get(t) == source]


@dataclass(frozen=True, slots=True)
class Policy:
    """The policy in force: ``bdr.yaml`` (with line marks) or the embedded defaults (``path`` None)."""

    config: Config
    path: Path | None = None
    doc: Any = None

    def line(self, *keys: str) -> int | None:
        """The line of ``keys`` in the file (``line("schedule", "redis")``), else of the nearest parent."""
        node = self.doc
        found: int | None = None
        for key in keys:
            if not (isinstance(node, MarkedDict) and key in node):
                break
            found = node.line_of(key)
            node = node[key]
        return found


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """A policy file that does not load; every policy check is skipped."""

    path: Path
    line: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class BackupDuration:
    """How long a backup of a source takes, and where the number comes from."""

    seconds: float
    measured: bool
    detail: str


@dataclass
class LintContext:
    """One lint run's inputs. Parsed views are computed on first use."""

    cwd: Path
    files: Mapping[Path, ConfigKind]
    policy: Policy | None
    """None when the policy file does not load (see ``policy_problem``)."""
    policy_found: bool = False
    """A bdr.yaml was found; without one its schedule is the embedded default, not a fact."""
    policy_problem: PolicyProblem | None = None
    crontabs: Sequence[Path] = ()
    unit_dirs: Sequence[Path] = ()
    """Directories of systemd units (``--systemd``, ``--installed``) whose timers take backups."""
    duration_overrides: Mapping[str, float] = field(default_factory=dict)
    tracked: TrackedFiles = field(default_factory=TrackedFiles)
    notes: list[str] = field(default_factory=list)
    """What lint could not check, and why (printed after the findings)."""
    _duration_cache: dict[str, BackupDuration] = field(default_factory=dict, repr=False)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def memo(self, key: str, factory: Callable[[], T]) -> T:
        """``factory()`` computed once per run (parsed files shared by several checks)."""
        if key not in self._memo:
            self._memo[key] = factory()
        return cast(T, self._memo[key])

    def of_kind(self, kind: ConfigKind) -> list[Path]:
        return [p for p, k in self.files.items() if k == kind]

    @property
    def config(self) -> Config:
        return self.policy.config if self.policy else Config()

    @cached_property
    def redis_confs(self) -> dict[Path, RedisConf]:
        return {p: parse_redis_conf(p) for p in self.of_kind(ConfigKind.REDIS_CONF)}

    def redis_role(self, path: Path) -> str | None:
        """The bdr.yaml Redis instance that starts with this file (``config_file``), if any."""
        config = self.config
        for instance in config.redis.values():
            if instance.config_file and config.resolve(instance.config_file).resolve() == path.resolve():
                return instance.name
        return None

    def holds_production_data(self, path: Path) -> bool:
        """False for a redis.conf that belongs to another instance than the default (``test``)."""
        role = self.redis_role(path)
        return role is None or role == self.config.redis_default

    @cached_property
    def timers(self) -> list[TimerSchedule]:
        """The installed systemd timers that take backups (with the problems in ``crontab_entries``)."""
        return self._installed[0]

    @cached_property
    def _installed(self) -> tuple[list[TimerSchedule], list[ScheduledBackup], list[CrontabProblem]]:
        entries: list[ScheduledBackup] = []
        problems: list[CrontabProblem] = []
        paths = list(dict.fromkeys([*self.of_kind(ConfigKind.CRONTAB), *self.crontabs]))
        for path in paths:
            found, trouble = parse_crontab(path)
            entries += found
            problems += trouble
        timer_files = timers_in([*self.of_kind(ConfigKind.SYSTEMD_TIMER), *self.unit_dirs])
        timers, trouble = read_timers(timer_files)
        problems += trouble
        entries += [b for t in timers for b in t.backups]
        return timers, entries, problems

    @cached_property
    def crontab_entries(self) -> tuple[list[ScheduledBackup], list[CrontabProblem]]:
        """What is installed: the backups of the crontabs and the systemd timers, and their problems."""
        _timers, entries, problems = self._installed
        return entries, problems

    @property
    def installed_known(self) -> bool:
        """Lint was shown what is installed (a crontab or a unit directory)."""
        return bool(self.crontabs or self.unit_dirs or self.of_kind(ConfigKind.CRONTAB)
                    or self.of_kind(ConfigKind.SYSTEMD_TIMER))

    @cached_property
    def policy_schedule(self) -> list[ScheduledBackup]:
        """The backups of ``schedule:`` in bdr.yaml (``all`` expands to every source; the off-site copy counts,
        prune, verify and drill jobs take no backup)."""
        if self.policy is None or not self.policy_found:
            return []
        out = []
        for entry in self.policy.config.schedule:
            if not entry.takes_backup:
                continue
            sources = ("redis", "qdrant", "config") if entry.source == "all" else (entry.source,)
            line = self.policy.line("schedule", entry.key)
            out += [ScheduledBackup(s, entry.cron, self.policy.path, line, f"schedule.{entry.key} in bdr.yaml",
                                    offsite=entry.kind == "offsite")
                    for s in sources]
        return out

    @property
    def schedule_known(self) -> bool:
        return bool(self.policy_schedule or self.crontab_entries[0])

    def schedule_for(self, source: str) -> list[ScheduledBackup]:
        """The backups of ``source`` that actually run: what is installed (crontab, timers) when it has any, else
        bdr.yaml's."""
        from_crontab = [e for e in self.crontab_entries[0] if e.source == source]
        return from_crontab or [e for e in self.policy_schedule if e.source == source]

    def backup_duration(self, source: str) -> BackupDuration:
        if source not in self._duration_cache:
            self._duration_cache[source] = self._measure(source)
        return self._duration_cache[source]

    def _measure(self, source: str) -> BackupDuration:
        if source in self.duration_overrides:
            seconds = self.duration_overrides[source]
            return BackupDuration(seconds, False, f"{human_duration(seconds)} (given with --backup-duration)")
        measured = self._measured(source)
        if measured is not None:
            return measured
        estimates = self.config.lint.backup_duration
        seconds = estimates.get(source, estimates.get("default", 300.0))
        key = source if source in estimates else "default"
        return BackupDuration(
            seconds, False,
            f"{human_duration(seconds)} (estimated: no {source} backup in the repository to measure; "
            f"lint.backup_duration.{key} in bdr.yaml)",
        )

    def _measured(self, source: str) -> BackupDuration | None:
        if self.policy is None or "://" in self.config.repository:
            return None
        location = self.config.repository_path()
        if not (location / source).is_dir():
            return None
        try:
            from bdr.repository import Repository

            sets = Repository.open(location).sets(source, include_safety=False)
        except (BdrError, OSError, ValueError) as exc:
            logger.debug("cannot read backup sets of %s in %s: %s", source, location, exc)
            return None
        if not sets:
            return None
        newest = sets[0].manifest
        try:
            seconds = max(0.0, (newest.finished - newest.started).total_seconds())
        except ValueError:
            return None
        return BackupDuration(
            seconds, True, f"{human_duration(seconds)} (measured: the newest backup, {newest.id})"
        )

    def is_tracked(self, path: Path) -> bool:
        return self.tracked(path)


Check = Callable[[LintContext], Iterable[Finding]]

CHECKS: list[Check] = []
"""Every check, in the order its module registered it."""


def check(func: Check) -> Check:
    """Register ``func`` as a check run by every ``bdr lint``."""
    CHECKS.append(func)
    return func
