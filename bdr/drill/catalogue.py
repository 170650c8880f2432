"""The sandbox drill scenarios: one catalogue for ``bdr drill --list``, ``--scenario``, ``--changed-since`` and lint.

A scenario is one runbook exercise (``redis_restart``, ``complete_data_loss``): the
``drills/scenarios/test_*.py`` modules that play it, and the kinds of configuration file
whose change can break what it proves (a redis.conf decides what a restart keeps, a
crontab how old the newest backup can be). ``bdr.yaml`` holds the targets, so a change to
it affects every scenario. The order is the order the suite runs them in.

A module in ``drills/scenarios`` that this catalogue does not name would be left out of
``bdr drill`` and of ``--changed-since``: a unit test fails when one exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from bdr.errors import UsageError
from bdr.lint.files import ConfigKind

PACKAGE = "drills.scenarios"
DIRECTORY = PurePosixPath("drills/scenarios")
"""Where the scenario modules live, relative to the checkout (the ``drills`` package)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One drill scenario: its name, what it proves, its modules and what configuration it depends on."""

    name: str
    title: str
    modules: tuple[str, ...]
    """File names in :data:`DIRECTORY` (``test_redis_restart.py``)."""
    kinds: tuple[ConfigKind, ...] = ()
    """Kinds of configuration file (besides ``bdr.yaml``) whose change can affect it."""

    @property
    def module_names(self) -> tuple[str, ...]:
        """Importable names (``drills.scenarios.test_redis_restart``)."""
        return tuple(f"{PACKAGE}.{PurePosixPath(m).stem}" for m in self.modules)

    @property
    def paths(self) -> tuple[PurePosixPath, ...]:
        """The modules relative to the checkout (``drills/scenarios/test_redis_restart.py``)."""
        return tuple(DIRECTORY / m for m in self.modules)

    @property
    def affected_by(self) -> tuple[ConfigKind, ...]:
        return (*self.kinds, ConfigKind.POLICY)


WHY: Mapping[ConfigKind, str] = {
    ConfigKind.REDIS_CONF: "Redis persistence decides what a restart keeps, how a damaged AOF/RDB is repaired and how "
                           "a restore loads",
    ConfigKind.COMPOSE: "volumes and services decide what survives when the containers and volumes are lost",
    ConfigKind.POLICY: "targets, retention and schedules apply to every scenario",
    ConfigKind.CRONTAB: "the backup schedule decides how old the newest backup can be",
    ConfigKind.SYSTEMD_TIMER: "the backup timers decide how old the newest backup can be",
    ConfigKind.ENV: "secrets are restored with the configuration after a complete data loss",
}
"""Why a change to each kind of configuration file can break a scenario (the reason ``--changed-since`` prints)."""

_REDIS = (ConfigKind.REDIS_CONF,)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("redis_restart", "Redis restart after kill -9", ("test_redis_restart.py",), _REDIS),
    Scenario("redis_corruption", "Redis data corruption: repair, or restore", ("test_redis_corruption.py",), _REDIS),
    Scenario("redis_local_restore", "Redis restore from the latest local backup", ("test_redis_local_restore.py",),
             _REDIS),
    Scenario("complete_data_loss", "Complete data loss: Redis, Qdrant and config gone",
             ("test_complete_data_loss.py",), (ConfigKind.COMPOSE, ConfigKind.ENV)),
    Scenario("accidental_deletion", "Accidental deletion: selective restore", ("test_accidental_deletion.py",)),
    Scenario("monthly_restore_test", "Monthly restore test into the test environment",
             ("test_monthly_restore_test.py",)),
    Scenario("backup_freshness", "Backup freshness: schedule (or archive lag) against the RPO targets",
             ("test_backup_freshness.py", "test_pitr_freshness.py"),
             (ConfigKind.CRONTAB, ConfigKind.SYSTEMD_TIMER)),
    Scenario("offsite_restore", "Restore from off-site (S3) after losing the host", ("test_offsite_restore.py",)),
    Scenario("pitr_restore", "Point-in-time restore from the continuous archive", ("test_pitr_restore.py",)),
    Scenario("cluster_master_lost", "Redis Cluster: a master and its data lost", ("test_cluster_master_lost.py",)),
    Scenario("cluster_total_loss", "Redis Cluster: every node lost", ("test_cluster_total_loss.py",)),
    Scenario("cluster_accidental_deletion", "Redis Cluster: user:* deleted on every shard",
             ("test_cluster_accidental_deletion.py",)),
    Scenario("dashboards_loss", "Grafana dashboards lost, restored from the latest backup",
             ("test_dashboards_loss.py",)),
    Scenario("metrics_loss", "Prometheus metrics volume lost, restored from the latest backup",
             ("test_metrics_loss.py",)),
)


def names() -> tuple[str, ...]:
    """Every scenario's name, in suite order."""
    return tuple(s.name for s in SCENARIOS)


def scenario(name: str) -> Scenario:
    """The scenario ``name``; a :class:`~bdr.errors.UsageError` naming the known ones otherwise."""
    for found in SCENARIOS:
        if found.name == name:
            return found
    raise UsageError(detail=f"unknown scenario(s) {name}; known: {', '.join(names())}")


def of_module(path: PurePosixPath) -> Scenario | None:
    """The scenario a scenario module belongs to (``.../drills/scenarios/test_pitr_freshness.py``), if any."""
    if path.parent.parts[-2:] != DIRECTORY.parts:
        return None
    return next((s for s in SCENARIOS if path.name in s.modules), None)


def affected_by(kind: ConfigKind) -> tuple[Scenario, ...]:
    """The scenarios a change to a configuration file of ``kind`` can affect, in suite order."""
    return tuple(s for s in SCENARIOS if kind in s.affected_by)


def _unique() -> None:
    seen: set[str] = set()
    for item in (n for s in SCENARIOS for n in (s.name, *s.modules)):
        if item in seen:
            raise RuntimeError(f"drill catalogue names {item} twice")
        seen.add(item)


_unique()
