"""The catalogue of sources: every kind of data bdr backs up, named once, with what the rest of
bdr needs to know about it.

The CLI choices, the repository's source directories, the lint and schedule checks, the
whole-system set's members, the drills' live and observed sources and the engine lookup all
derive their lists from :data:`SOURCES`. Adding a source (Postgres, say) is one engine package,
one :class:`Source` entry here and its section in bdr.yaml.

This module imports nothing heavy: reading bdr.yaml or building the CLI never imports an engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bdr.registry import Registry

ALL = "all"
"""The whole-system pseudo-source (``bdr backup all``): every member below, one set."""


@dataclass(frozen=True, slots=True)
class Source:
    """One kind of data bdr backs up."""

    name: str
    """``bdr backup <name>``, the repository directory, the manifest's ``source``."""
    title: str
    """For people: ``Redis``, ``configuration files``."""
    engine: str
    """The module whose ``ENGINE`` backs it up (imported on first use)."""
    section: str
    """The attribute of :class:`~bdr.config.Config` holding its settings (``files`` for ``config``)."""
    restore_rank: int
    """Order inside a whole-system restore (lowest first: configuration before the datastores)."""
    optional: bool = False
    """Part of ``all`` (and of drills) only when bdr.yaml has its section (monitoring)."""
    instanced: bool = True
    """It has named instances (``--instance``, ``<section>_default``); ``config`` has one fileset."""
    live: bool = True
    """A live drill restores it into a test target (the datastores) rather than scratch space (observed)."""
    data_types: tuple[str, ...] = ()
    """The data it holds, each a key of ``targets.rpo`` (``sessions``, ``rbac``): the runbook's RPO table."""
    rto_target: str = ""
    """The key of ``targets.rto`` its restore is measured against (``redis_local_restore``)."""

    def configured(self, config: Any) -> bool:
        """Whether ``config`` has this source: always for a required one, else when its section is not empty."""
        return not self.optional or bool(getattr(config, self.section, None))

    def instance(self, config: Any, name: str | None = None) -> Any:
        """The settings of instance ``name`` (default: the configured default); typed errors from Config."""
        if not self.instanced:
            return getattr(config, self.section)
        return config.instance(self.section, name)

    def instance_name(self, config: Any, name: str | None = None) -> str:
        """The name the instance ``name`` (default: the default one) is recorded under."""
        if not self.instanced:
            return name or str(getattr(config, self.section).name)
        return str(self.instance(config, name).name)

    def instances(self, config: Any) -> list[str]:
        """Every configured instance name (the fileset's name for ``config``)."""
        if not self.instanced:
            return [str(getattr(config, self.section).name)]
        return list(getattr(config, self.section))

    def backed_up(self, config: Any) -> list[str]:
        """The instances bdr backs up (``backup: false`` ones, restore targets, left out)."""
        if not self.instanced:
            return self.instances(config)
        return [name for name, inst in getattr(config, self.section).items() if inst.backup]

    def default_instance(self, config: Any) -> str:
        """The name of the default instance ("" when the section is empty)."""
        if not self.instanced:
            return str(getattr(config, self.section).name)
        return str(getattr(config, f"{self.name}_default"))


CATALOGUE: Registry[Source] = Registry("source")
"""Every source by name, in the order bdr lists them."""


def register_source(source: Source) -> Source:
    """Add ``source`` to the catalogue (refused twice)."""
    return CATALOGUE.register(source.name, source)


register_source(Source("redis", "Redis", "bdr.engines.redis", "redis", restore_rank=1,
                       data_types=("sessions", "rbac"), rto_target="redis_local_restore"))
register_source(Source("qdrant", "Qdrant", "bdr.engines.qdrant", "qdrant", restore_rank=2,
                       data_types=("vectors",), rto_target="qdrant_restore"))
register_source(Source("config", "configuration files", "bdr.engines.files", "files", restore_rank=0,
                       instanced=False, data_types=("config", "secrets"), rto_target="config_restore"))
register_source(Source("prometheus", "Prometheus", "bdr.engines.prometheus", "prometheus", restore_rank=3,
                       optional=True, live=False, data_types=("metrics",), rto_target="metrics_restore"))
register_source(Source("grafana", "Grafana", "bdr.engines.grafana", "grafana", restore_rank=4,
                       optional=True, live=False, data_types=("dashboards",), rto_target="dashboards_restore"))


def source(name: str) -> Source:
    """The source called ``name``; :class:`~bdr.registry.UnknownEntry` lists the known ones."""
    return CATALOGUE.get(name)


def all_sources() -> tuple[Source, ...]:
    return tuple(CATALOGUE.get(name) for name in CATALOGUE.names())


def source_names(*, with_all: bool = False) -> tuple[str, ...]:
    """Every source name, in catalogue order (and ``all`` last when asked)."""
    return (*CATALOGUE.names(), *((ALL,) if with_all else ()))


def instanced_names() -> tuple[str, ...]:
    """The sources with named instances (``--instance`` applies)."""
    return tuple(s.name for s in all_sources() if s.instanced)


def required_names() -> tuple[str, ...]:
    """Sources every whole-system set holds, in restore order."""
    return tuple(s.name for s in sorted(all_sources(), key=lambda s: s.restore_rank) if not s.optional)


def optional_names() -> tuple[str, ...]:
    """Sources a whole-system set holds only when configured, in restore order."""
    return tuple(s.name for s in sorted(all_sources(), key=lambda s: s.restore_rank) if s.optional)


def members_of(config: Any) -> tuple[str, ...]:
    """The sources of a whole-system backup of ``config``, in restore order."""
    return tuple(s.name for s in sorted(all_sources(), key=lambda s: s.restore_rank) if s.configured(config))


def instance_name(config: Any, name: str, instance: str | None) -> str:
    """The instance name source ``name`` records for ``--instance instance`` (the default when None)."""
    return source(name).instance_name(config, instance)


def default_instances(config: Any) -> dict[str, str]:
    """Each source's default instance name."""
    return {s.name: s.default_instance(config) for s in all_sources()}


__all__ = ["ALL", "CATALOGUE", "Source", "all_sources", "default_instances", "instance_name", "instanced_names",
           "members_of", "optional_names", "register_source", "required_names", "source", "source_names"]
