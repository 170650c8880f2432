"""Where a live restore test restores to: a test instance of bdr.yaml, or a temporary one; never production.

Each datastore's profile (:mod:`bdr.drill.profiles`) picks its target: ``drill.SOURCE.target``,
else the instance named ``test`` (the old runbook's ``--target test``), else a temporary one
(a ``redis-server`` on a free loopback port, an embedded Qdrant, a scratch directory for the
configuration) that is removed afterwards, whatever happens. A target is refused when it is
production (the same instance, url or directory as what the drill protects): a live test
must not write one byte into production.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdr.config import Config
from bdr.drill.settings import SourceDrill
from bdr.errors import ConfigError
from bdr.sources import source as source_entry

TEMPORARY = "drill-temporary"


@dataclass(frozen=True, slots=True)
class RestoreTarget:
    """One source's restore target for the test, and the configuration that names it."""

    source: str
    name: str
    """The instance name passed to ``bdr.api.restore(target=...)``; for config the root directory."""
    config: Config
    temporary: bool
    description: str
    root: Path | None = None
    """config only: the directory the files are restored into."""


def production_name(config: Config, source: str, drill: SourceDrill) -> str:
    """The instance the drill of ``source`` only reads: ``drill.SOURCE.production``, else the default one."""
    entry = source_entry(source)
    return (drill.production if entry.instanced else None) or entry.default_instance(config)


def named_target(config: Config, source: str, drill: SourceDrill, same_address: Callable[[Any, Any], bool],
                 address: Callable[[Any], str]) -> RestoreTarget | None:
    """``drill.SOURCE.target``, else ``test`` when bdr.yaml has it (None: neither, use a temporary one).

    Refused (:class:`ConfigError`) when it is production by name or by ``same_address``."""
    instances = getattr(config, source_entry(source).section)
    production = production_name(config, source, drill)
    name = drill.target if drill.target is not None else (
        "test" if "test" in instances and production != "test" else None)
    if name is None:
        return None
    if name == production or same_address(instances[name], instances[production]):
        raise ConfigError(path=config.source_label, detail=f"drill.{source}.target: {name!r} is production "
                          f"({production!r}, the same address), which a live drill only reads; name a test instance "
                          "or leave target out for a temporary one")
    return RestoreTarget(source, name, config, False, f"{source}.{name} of bdr.yaml ({address(instances[name])})")
