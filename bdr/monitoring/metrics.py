"""Prometheus metrics of backups and drills, in the text exposition format, for alerting.

What is exported, labelled by ``source`` and ``instance`` (drills by ``scenario``):

=====================================  ===============================================================
backup_last_success_timestamp          when the newest good set finished (0: none yet)
backup_size_bytes                      stored size of that set
backup_duration_seconds                how long that backup took
backup_last_verify_timestamp           the newest successful ``bdr verify`` of any set (0: never)
backup_last_verify_failure_timestamp   the newest failed ``bdr verify``
backup_last_failure_timestamp          the newest failed ``bdr backup``
backup_sets                            complete (non-safety) sets, per ``location``
backup_321_ok                          1 when the 3-2-1 rule holds (see :mod:`bdr.monitoring.status`)
backup_repository_up                   1 when a repository could be listed, per ``repository``
drill_rto_seconds / drill_rpo_seconds  achieved by the last drill, per RTO ``target`` / RPO ``data_type``
drill_target_seconds / drill_target_met  each objective of the last drill: its target and 1 when met
drill_last_run_timestamp               when the last drill of each scenario finished
backup_archive_*                       continuous archiving (lag, windows, new bases), per archived instance:
                                       :mod:`bdr.engines.redis.archive.metrics`
=====================================  ===============================================================

Almost everything is recomputed from the repositories (the configured local repository and
the remote) each time, so the numbers cannot drift from what ``bdr list`` shows. What a
repository cannot tell, failed backups, drill results and runs into other repositories, is
kept in a small JSON state file (``metrics_state``, default beside ``metrics_textfile``),
updated under a file lock by :func:`record_backup`, :func:`record_failure`,
:func:`record_verify` and :func:`record_drill`.

The series cover the groups ``bdr status`` checks (every instance of each scheduled source,
plus any ``max_backup_age`` key ``source/instance``) and any group whose last backup failed.
Every command that changes what the metrics say rewrites the textfile for node_exporter's
textfile collector, atomically (temporary file + rename in the same directory): a backup
(each member of ``bdr backup all`` too), a backup to a remote or another directory (that
repository is remembered in the state and listed from then on, for
:data:`REMEMBER_REPOSITORIES`), a failed backup, ``bdr prune``, ``bdr verify`` and a drill.
``bdr exporter`` serves the same text over HTTP (:mod:`bdr.monitoring.exporter`).

prometheus_client writes the exposition (HELP and TYPE lines, escaping, Go-style values):
:class:`BackupCollector` is its custom collector over the repositories, the textfile goes
through its ``write_to_textfile`` (:func:`write_exposition`). Label names stay bdr's own
(``source``, ``instance``, ...): the scrape job needs ``honor_labels: true`` to keep ``instance``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bdr.config import Config
from bdr.errors import BdrError, NotWritable, StorageError
from bdr.monitoring.status import RepositoryView, StatusReport, evaluate, expected_groups, views_for
from bdr.repository import BackupSet
from bdr.repository.manifest import Manifest, from_iso, to_iso, utcnow
from bdr.repository.retention import is_safety

logger = logging.getLogger(__name__)

STATE_VERSION = 1
REMEMBER_REPOSITORIES = 30 * 86400.0
"""How long a repository bdr wrote a backup to (``--remote``, ``--destination``) keeps being listed for the
metrics after its last backup."""


# --- the exposition format: prometheus_client ------------------------------------------------------


class MetricType(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"


@dataclass(slots=True)
class MetricFamily:
    """One metric name as it is collected: its help, its type and its samples, each with its labels by name.

    :meth:`to_prometheus` hands it to prometheus_client, which writes the exposition (HELP and TYPE
    lines, escaping, values); a counter keeps its ``_total`` name."""

    name: str
    help: str
    type: MetricType = MetricType.GAUGE
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> None:
        self.samples.append((labels, float(value)))

    def to_prometheus(self) -> Metric:
        """The family for prometheus_client, samples sorted by their labels (every sample has the same names)."""
        names = sorted(self.samples[0][0]) if self.samples else []
        family: GaugeMetricFamily | CounterMetricFamily = (
            CounterMetricFamily(self.name, self.help, labels=names) if self.type is MetricType.COUNTER
            else GaugeMetricFamily(self.name, self.help, labels=names))
        for labels, value in sorted(self.samples, key=lambda sample: sorted(sample[0].items())):
            if sorted(labels) != names:
                raise ValueError(f"{self.name}: a sample labelled {sorted(labels)}, the others {names}")
            family.add_metric([labels[name] for name in names], value)
        return family


class StaticCollector(Collector):
    """Families already collected, for a registry."""

    def __init__(self, families: Iterable[MetricFamily]) -> None:
        self._families = sorted(families, key=lambda f: f.name)

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.to_prometheus()


def registry_of(collector: Collector) -> CollectorRegistry:
    """A registry holding only ``collector`` (never prometheus_client's global one: no process metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(families: Iterable[MetricFamily]) -> str:
    """The Prometheus text exposition format (version 0.0.4), families sorted by name."""
    return generate_latest(registry_of(StaticCollector(families))).decode()


# --- drill results: the typed input of record_drill ---------------------------------------------


class Objective(StrEnum):
    RTO = "rto"
    RPO = "rpo"


@dataclass(frozen=True, slots=True)
class ObjectiveResult:
    """One objective a drill measured: an RTO (by target name) or an RPO (by data type)."""

    objective: Objective
    name: str
    target_seconds: float
    achieved_seconds: float | None
    """None when it could not be measured: then it is not met."""

    @property
    def met(self) -> bool:
        return self.achieved_seconds is not None and self.achieved_seconds <= self.target_seconds

    def to_dict(self) -> dict[str, Any]:
        return {"objective": str(self.objective), "name": self.name, "target_seconds": self.target_seconds,
                "achieved_seconds": self.achieved_seconds}


@dataclass(frozen=True, slots=True)
class DrillMetrics:
    """What one drill scenario proved: its objectives and whether the scenario itself passed."""

    scenario: str
    finished_at: datetime
    objectives: tuple[ObjectiveResult, ...] = ()
    passed: bool = True

    @property
    def met(self) -> bool:
        return self.passed and all(o.met for o in self.objectives)

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "finished_at": to_iso(self.finished_at), "passed": self.passed,
                "objectives": [o.to_dict() for o in self.objectives]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DrillMetrics:
        return cls(
            scenario=str(data["scenario"]),
            finished_at=from_iso(str(data["finished_at"])),
            passed=bool(data.get("passed", True)),
            objectives=tuple(
                ObjectiveResult(Objective(o["objective"]), str(o["name"]), float(o["target_seconds"]),
                                None if o.get("achieved_seconds") is None else float(o["achieved_seconds"]))
                for o in data.get("objectives", ())
            ),
        )


class _TargetCheck(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def target_seconds(self) -> float: ...
    @property
    def achieved_seconds(self) -> float | None: ...


class _DrillResult(Protocol):
    @property
    def scenario(self) -> str: ...
    @property
    def finished_at(self) -> str: ...
    @property
    def outcome(self) -> Any: ...
    @property
    def checks(self) -> Sequence[_TargetCheck]: ...


class _RunReport(Protocol):
    @property
    def finished_at(self) -> str: ...
    @property
    def results(self) -> Sequence[_DrillResult]: ...


def drill_metrics_from_report(report: _RunReport) -> list[DrillMetrics]:
    """The drill suite's run report (``drills.evidence.RunReport``) as typed drill metrics; skipped ones out."""
    out = []
    for result in report.results:
        outcome = str(result.outcome)
        if outcome == "skipped":
            continue
        objectives = tuple(
            ObjectiveResult(Objective(c.kind), c.name, float(c.target_seconds),
                            None if c.achieved_seconds is None else float(c.achieved_seconds))
            for c in result.checks if c.kind in (Objective.RTO, Objective.RPO)
        )
        finished = result.finished_at or report.finished_at
        out.append(DrillMetrics(result.scenario, from_iso(finished), objectives, passed=outcome == "passed"))
    return out


# --- state: what the repositories cannot tell ------------------------------------------------------


def group_key(source: str, instance: str) -> str:
    return f"{source}/{instance}"


def _split_key(key: str) -> tuple[str, str]:
    source, _, instance = key.partition("/")
    return source, instance


@dataclass(slots=True)
class MetricsState:
    """Failures, drills and the last run of each group: the JSON state file, as read."""

    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    verifications: dict[str, dict[str, Any]] = field(default_factory=dict)
    drills: dict[str, dict[str, Any]] = field(default_factory=dict)
    repositories: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Repositories backups went to besides the configured ones (url: {"at", "location"})."""

    def to_json(self) -> bytes:
        data = {"version": STATE_VERSION, "failures": self.failures, "runs": self.runs,
                "verifications": self.verifications, "drills": self.drills, "repositories": self.repositories}
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> MetricsState:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("the state is not a JSON object")
        return cls(**{name: dict(data.get(name) or {})
                      for name in ("failures", "runs", "verifications", "drills", "repositories")})

    def remembered(self, now: datetime | None = None) -> list[str]:
        """The extra repositories written to within :data:`REMEMBER_REPOSITORIES`."""
        moment = (now or utcnow()).timestamp()
        return sorted(url for url, entry in self.repositories.items()
                      if moment - _state_ts(entry) <= REMEMBER_REPOSITORIES)


def state_path(config: Config) -> Path | None:
    """``metrics_state``, else ``<textfile stem>.state.json`` beside ``metrics_textfile``, else None (off)."""
    if config.metrics_state:
        return config.resolve(config.metrics_state)
    if config.metrics_textfile:
        textfile = config.resolve(config.metrics_textfile)
        return textfile.with_name(f"{textfile.stem}.state.json")
    return None


def read_state(path: Path | None) -> MetricsState:
    if path is None:
        return MetricsState()
    try:
        return MetricsState.from_json(path.read_bytes())
    except FileNotFoundError:
        return MetricsState()
    except (OSError, ValueError, TypeError) as exc:
        logger.warning("ignoring unreadable metrics state %s: %s", path, exc)
        return MetricsState()


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` whole or not at all: a temporary file in the same directory, fsync, rename, fsync dir."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except PermissionError as exc:
        raise NotWritable(path=str(path), detail=exc.strerror or str(exc)) from exc
    except OSError as exc:
        raise StorageError(detail=f"cannot write {path}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def updating_state(path: Path) -> Iterator[MetricsState]:
    """Read, let the caller change, and write back the state, under an exclusive file lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            state = read_state(path)
            yield state
            atomic_write(path, state.to_json(), 0o600)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


# --- computing the metrics ---------------------------------------------------------------------------


FAMILIES: dict[str, tuple[str, MetricType]] = {
    "backup_last_success_timestamp": ("Unix time the newest good backup set finished (0: none yet).", MetricType.GAUGE),
    "backup_size_bytes": ("Stored size in bytes of the newest good backup set.", MetricType.GAUGE),
    "backup_duration_seconds": ("How long the newest good backup took, in seconds.", MetricType.GAUGE),
    "backup_last_verify_timestamp": ("Unix time of the newest successful bdr verify (0: never).", MetricType.GAUGE),
    "backup_last_verify_failure_timestamp": ("Unix time of the newest failed bdr verify.", MetricType.GAUGE),
    "backup_last_failure_timestamp": ("Unix time of the newest failed bdr backup.", MetricType.GAUGE),
    "backup_sets": ("Complete backup sets (safety sets excluded) per location.", MetricType.GAUGE),
    "backup_321_ok": ("1 when the 3-2-1 rule holds: 3 copies with the live data, 2 media, 1 off-site.",
                      MetricType.GAUGE),
    "backup_repository_up": ("1 when bdr could list the repository.", MetricType.GAUGE),
    "backup_restore_interrupted": ("1 when a restore of the instance was interrupted (bdr killed) and must be "
                                   "finished with --resume or rolled back with --abort.", MetricType.GAUGE),
    "drill_rto_seconds": ("Recovery time achieved by the last drill, per RTO target.", MetricType.GAUGE),
    "drill_rpo_seconds": ("Data loss window achieved by the last drill, per data type.", MetricType.GAUGE),
    "drill_target_seconds": ("The objective the last drill was measured against.", MetricType.GAUGE),
    "drill_target_met": ("1 when the last drill met the objective.", MetricType.GAUGE),
    "drill_last_run_timestamp": ("Unix time the last drill of the scenario finished.", MetricType.GAUGE),
    "drill_passed": ("1 when the last drill of the scenario passed.", MetricType.GAUGE),
}


def _families() -> dict[str, MetricFamily]:
    return {name: MetricFamily(name, text, kind) for name, (text, kind) in FAMILIES.items()}


def _ts(text: str) -> float:
    return from_iso(text).timestamp()


def _state_ts(entry: Mapping[str, Any] | None, key: str = "at") -> float:
    if not entry or not entry.get(key):
        return 0.0
    try:
        return _ts(str(entry[key]))
    except ValueError:
        return 0.0


def _group_sets(views: Sequence[RepositoryView], source: str, instance: str) -> list[BackupSet]:
    return [b for v in views for b in v.sets
            if b.source == source and b.manifest.instance == instance and not is_safety(b)]


def collect(
    config: Config,
    views: Sequence[RepositoryView] | None = None,
    state: MetricsState | None = None,
    now: datetime | None = None,
) -> list[MetricFamily]:
    """Every metric, from the repositories (listed now unless ``views`` is given) and the state file."""
    state = state if state is not None else read_state(state_path(config))
    views = list(views) if views is not None else views_for(config, state.remembered(now))
    now = now or utcnow()
    report = evaluate(views, expected_groups(config), now, dict(config.max_backup_age))
    families = _families()
    for key in _tracked(report, state):
        _group_metrics(families, views, report, state, key)
    for view in views:
        families["backup_repository_up"].add(1.0 if view.readable else 0.0, repository=view.url,
                                             location=view.location)
    _restore_metrics(families, config, report)
    if config.archive:  # continuous archiving: its lag, windows and new bases (bdr.engines.redis.archive.metrics)
        families.update(_archive_families(config, now))
    for scenario, entry in sorted(state.drills.items()):
        try:
            drill = DrillMetrics.from_dict(entry)
        except (KeyError, ValueError, TypeError) as exc:
            logger.warning("ignoring unreadable drill state of %s: %s", scenario, exc)
            continue
        _drill_metrics(families, drill)
    return list(families.values())


def _archive_families(config: Config, now: datetime) -> dict[str, MetricFamily]:
    """The archive's families, described and sampled by :mod:`bdr.engines.redis.archive.metrics`."""
    from bdr.engines.redis.archive.metrics import FAMILIES, archive_samples

    families = {name: MetricFamily(name, family.help, MetricType.COUNTER if family.counter else MetricType.GAUGE)
                for name, family in FAMILIES.items()}
    for sample in archive_samples(config, now):
        families[sample.name].add(sample.value, **sample.labels)
    return families


def _restore_metrics(families: dict[str, MetricFamily], config: Config, report: StatusReport) -> None:
    """1 for every interrupted restore, 0 for the other expected groups (so the alert has a series)."""
    from bdr.safety.journal import Journal

    try:
        interrupted = {(e.source, e.instance) for e in Journal.at(config.repository_path()).interrupted()}
    except OSError as exc:
        logger.warning("cannot read the restore journal: %s", exc)
        interrupted = set()
    groups = {(s.source, s.instance) for s in report.sources if s.expected} | interrupted
    for source, instance in sorted(groups):
        families["backup_restore_interrupted"].add(1.0 if (source, instance) in interrupted else 0.0,
                                                   source=source, instance=instance)


def _tracked(report: StatusReport, state: MetricsState) -> list[tuple[str, str]]:
    """Expected groups, plus groups whose last backup failed (so BackupFailed can fire for them)."""
    keys = {(s.source, s.instance) for s in report.sources if s.expected}
    for key, failure in state.failures.items():
        source, instance = _split_key(key)
        success = max(_state_ts(state.runs.get(key)), _newest_ts(report, source, instance))
        if _state_ts(failure) > success:
            keys.add((source, instance))
    return sorted(keys)


def _newest_ts(report: StatusReport, source: str, instance: str) -> float:
    group = report.group(source, instance)
    return group.newest.backup.created.timestamp() if group and group.newest else 0.0


def _group_metrics(
    families: dict[str, MetricFamily],
    views: Sequence[RepositoryView],
    report: StatusReport,
    state: MetricsState,
    group: tuple[str, str],
) -> None:
    source, instance = group
    key = group_key(source, instance)
    labels = {"source": source, "instance": instance}
    status = report.group(source, instance)
    newest = status.newest.backup.manifest if status and status.newest else None
    run = state.runs.get(key)
    success, size, duration = 0.0, None, None
    if newest is not None:
        success = _ts(newest.finished_at)
        size = float(newest.stored_size)
        duration = max(0.0, _ts(newest.finished_at) - _ts(newest.started_at))
    if run and (_state_ts(run) > success or (newest is not None and run.get("id") == newest.id)):
        success = max(success, _state_ts(run))
        size = float(run.get("size", size or 0.0))
        duration = float(run.get("seconds", duration or 0.0))
    families["backup_last_success_timestamp"].add(success, **labels)
    if size is not None:
        families["backup_size_bytes"].add(size, **labels)
    if duration is not None:
        families["backup_duration_seconds"].add(duration, **labels)

    sets = _group_sets(views, source, instance)
    verify_ok = [_ts(b.verification.at) for b in sets if b.verification and b.verification.ok]
    verify_bad = [_ts(b.verification.at) for b in sets if b.verification and not b.verification.ok]
    recorded = state.verifications.get(key, {})
    families["backup_last_verify_timestamp"].add(max([0.0, *verify_ok, _state_ts(recorded, "ok_at")]), **labels)
    last_bad = max([0.0, *verify_bad, _state_ts(recorded, "failed_at")])
    if last_bad:
        families["backup_last_verify_failure_timestamp"].add(last_bad, **labels)
    failure = _state_ts(state.failures.get(key))
    if failure:
        families["backup_last_failure_timestamp"].add(failure, **labels)
    counts = status.sets_by_location if status else {}
    for location in sorted({v.location for v in views if v.readable} | set(counts)):
        families["backup_sets"].add(float(counts.get(location, 0)), location=location, **labels)
    if status is not None and status.expected:
        families["backup_321_ok"].add(1.0 if status.rule_321.ok else 0.0, **labels)


def _drill_metrics(families: dict[str, MetricFamily], drill: DrillMetrics) -> None:
    scenario = drill.scenario
    families["drill_last_run_timestamp"].add(drill.finished_at.timestamp(), scenario=scenario)
    families["drill_passed"].add(1.0 if drill.passed else 0.0, scenario=scenario)
    for o in drill.objectives:
        families["drill_target_seconds"].add(o.target_seconds, scenario=scenario, objective=str(o.objective),
                                             name=o.name)
        families["drill_target_met"].add(1.0 if o.met else 0.0, scenario=scenario, objective=str(o.objective),
                                         name=o.name)
        if o.achieved_seconds is None:
            continue
        if o.objective is Objective.RTO:
            families["drill_rto_seconds"].add(o.achieved_seconds, scenario=scenario, target=o.name)
        else:
            families["drill_rpo_seconds"].add(o.achieved_seconds, scenario=scenario, data_type=o.name)


class BackupCollector(Collector):
    """prometheus_client's view of bdr: every metric, recomputed from the repositories (the configured ones,
    ``destinations`` and the remembered ones) and the state file at each :meth:`collect`."""

    def __init__(self, config: Config, destinations: Sequence[str | Path] = (), now: datetime | None = None) -> None:
        self.config = config
        self.destinations = tuple(destinations)
        self.now = now

    def collect(self) -> Iterator[Metric]:
        state = read_state(state_path(self.config))
        views = views_for(self.config, [*self.destinations, *state.remembered(self.now)])
        yield from StaticCollector(collect(self.config, views, state, now=self.now)).collect()


def exposition(config: Config, destinations: Sequence[str | Path] = (), now: datetime | None = None) -> str:
    """The whole text a scrape or the textfile gets, recomputed now (the remembered repositories listed too)."""
    return generate_latest(registry_of(BackupCollector(config, destinations, now))).decode()


def write_exposition(path: Path, collector: Collector) -> None:
    """Write node_exporter's textfile with prometheus_client's ``write_to_textfile`` (a temporary file in the
    same directory, then a rename: a scrape never reads half a file), readable by node_exporter (0644)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), registry_of(collector))
        if stat.S_IMODE(path.stat().st_mode) != 0o644:  # a tight umask: node_exporter runs as another user
            os.chmod(path, 0o644)
    except PermissionError as exc:
        raise NotWritable(path=str(path), detail=exc.strerror or str(exc)) from exc
    except OSError as exc:
        raise StorageError(detail=f"cannot write {path}: {exc.strerror or exc}") from exc


def textfile_path(config: Config, textfile: str | Path | None = None) -> Path | None:
    if textfile:
        return Path(textfile)
    return config.resolve(config.metrics_textfile) if config.metrics_textfile else None


def write_textfile(config: Config, textfile: str | Path | None = None,
                   destinations: Sequence[str | Path] = ()) -> Path | None:
    """Recompute and (atomically) rewrite the textfile; None when no textfile is configured."""
    path = textfile_path(config, textfile)
    if path is None:
        return None
    write_exposition(path, BackupCollector(config, destinations))
    logger.debug("metrics written to %s", path)
    return path


# --- what backup, verify and drill call after each run -------------------------------------------------


def _after_run(config: Config, change: Any, rewrite: bool = True) -> None:
    """Apply ``change`` to the state (when metrics are on) and rewrite the textfile."""
    path = state_path(config)
    if path is None:
        logger.debug("metrics are off (no metrics_textfile or metrics_state in bdr.yaml)")
        return
    with updating_state(path) as state:
        change(state)
    if config.metrics_textfile and rewrite:
        write_textfile(config)


def refresh(config: Config) -> None:
    """Rewrite the textfile after a command that changed the repositories (``bdr prune``); never raises."""
    if not config.metrics_textfile:
        return
    try:
        write_textfile(config)
    except Exception:  # metrics must never fail the command that changed the data
        logger.exception("could not rewrite the metrics textfile")


def _configured(config: Config) -> set[str]:
    return {str(config.repository_path().resolve()), *([config.remote.url] if config.remote.url else [])}


def record_backup(config: Config, manifest: Manifest, duration: float, location: str,
                  repository: str | None = None, *, rewrite: bool = True) -> None:
    """A backup succeeded: remember its run (duration, size) and, for a repository bdr.yaml does not name
    (``--remote``, ``--destination``), the repository; rewrite the textfile."""
    if is_safety_manifest(manifest):
        return

    def change(state: MetricsState) -> None:
        state.runs[group_key(manifest.source, manifest.instance)] = {
            "id": manifest.id, "at": manifest.finished_at, "seconds": round(float(duration), 3),
            "size": manifest.stored_size, "location": location,
        }
        if repository and repository not in _configured(config):
            state.repositories[repository] = {"at": manifest.finished_at, "location": location}

    _after_run(config, change, rewrite)


def is_safety_manifest(manifest: Manifest) -> bool:
    return "safety" in manifest.tags


def record_failure(config: Config, source: str, instance: str, error: BaseException) -> None:
    """A backup failed: remember when and why (one line, the typed error's message), rewrite the textfile."""
    message = error.message if isinstance(error, BdrError) else f"{type(error).__name__}: {error}"
    message = " ".join(message.split())[:300]

    def change(state: MetricsState) -> None:
        state.failures[group_key(source, instance)] = {"at": to_iso(utcnow()), "error": message}

    _after_run(config, change)


def record_verify(config: Config, backup: BackupSet, ok: bool, at: datetime | None = None) -> None:
    """``bdr verify`` finished: remember its time as the last success or failure of the set's group."""
    moment = to_iso(at or utcnow())

    def change(state: MetricsState) -> None:
        entry = state.verifications.setdefault(group_key(backup.source, backup.manifest.instance), {})
        entry["ok_at" if ok else "failed_at"] = moment
        entry["id" if ok else "failed_id"] = backup.id

    _after_run(config, change)


def record_drill(config: Config, results: Iterable[DrillMetrics]) -> None:
    """Drills finished: their results replace those of the same scenarios; others are kept."""
    results = list(results)

    def change(state: MetricsState) -> None:
        for result in results:
            state.drills[result.scenario] = result.to_dict()

    _after_run(config, change)


def record_drill_report(config: Config, report: _RunReport) -> None:
    """The drill suite's hook: record every scenario of a run report."""
    record_drill(config, drill_metrics_from_report(report))
