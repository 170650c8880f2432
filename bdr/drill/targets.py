"""Where a live restore test restores to: a test instance of bdr.yaml, or a temporary one; never production.

- Redis: ``drill.redis.target``, else the instance named ``test`` (the old runbook's
  ``--target test``), else a temporary ``redis-server`` bdr starts on a free loopback port
  with its data in a scratch directory (:func:`bdr.runtime.process.spawn_redis`), and stops
  and removes afterwards;
- Qdrant: ``drill.qdrant.target``, else ``test``, else a temporary embedded Qdrant (a
  scratch directory), removed afterwards;
- configuration: ``drill.config.target`` (a directory), else a scratch directory, removed
  afterwards.

A target is refused when it is production (the same instance, url or directory as what the
drill protects): a live test must not write one byte into production.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bdr.config import Config, QdrantInstance
from bdr.drill.settings import SourceDrill
from bdr.errors import ConfigError

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
    if source == "redis":
        return drill.production or config.redis_default
    if source == "qdrant":
        return drill.production or config.qdrant_default
    if source == "prometheus":
        return drill.production or config.prometheus_default
    if source == "grafana":
        return drill.production or config.grafana_default
    return config.files.name


def _configured(config: Config, source: str, drill: SourceDrill, production: str) -> str | None:
    known = config.redis if source == "redis" else config.qdrant
    if drill.target is not None:
        return drill.target
    return "test" if "test" in known and production != "test" else None


def _refuse_production(config: Config, source: str, name: str, production: str) -> None:
    if source == "redis":
        same = config.redis[name].url == config.redis[production].url
    else:
        target, prod = config.qdrant[name], config.qdrant[production]
        same = (target.url or None) == (prod.url or None) if target.url or prod.url else \
            config.resolve(str(target.path)).resolve() == config.resolve(str(prod.path)).resolve()
    if name == production or same:
        raise ConfigError(path=config.source_label, detail=f"drill.{source}.target: {name!r} is production "
                          f"({production!r}, the same address), which a live drill only reads; name a test instance "
                          "or leave target out for a temporary one")


@contextlib.contextmanager
def restore_target(config: Config, source: str, drill: SourceDrill, scratch: Path) -> Iterator[RestoreTarget]:
    """The target for ``source`` (a temporary one is started here and removed on leaving, whatever happens)."""
    if source == "config":
        yield from _config_target(config, drill, scratch)
        return
    production = production_name(config, source, drill)
    name = _configured(config, source, drill, production)
    if name is not None:
        _refuse_production(config, source, name, production)
        if source == "redis":
            where = config.redis[name].url
        else:
            where = config.qdrant[name].url or f"embedded at {config.qdrant[name].path}"
        yield RestoreTarget(source, name, config, False, f"{source}.{name} of bdr.yaml ({where})")
        return
    if source == "redis":
        yield from _temporary_redis(config, scratch)
    else:
        yield from _temporary_qdrant(config, scratch)


def _config_target(config: Config, drill: SourceDrill, scratch: Path) -> Iterator[RestoreTarget]:
    production_root = config.resolve(config.files.root).resolve()
    if drill.target is not None:
        root = config.resolve(drill.target).resolve()
        if root == production_root or production_root in root.parents or root in production_root.parents:
            raise ConfigError(path=config.source_label, detail=f"drill.config.target {root} overlaps files.root "
                              f"{production_root} (the production configuration); name a scratch directory")
        root.mkdir(parents=True, exist_ok=True)
        yield RestoreTarget("config", str(root), config, False, f"directory {root} (drill.config.target)", root)
        return
    root = scratch / "config-root"
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield RestoreTarget("config", str(root), config, True, f"scratch directory {root}, removed afterwards", root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _temporary_redis(config: Config, scratch: Path) -> Iterator[RestoreTarget]:
    from bdr.runtime.process import spawn_redis

    data = scratch / "redis" / "data"
    process = spawn_redis(data, name=TEMPORARY)
    changed = dataclasses.replace(config, redis={**config.redis, TEMPORARY: process.instance})
    try:
        yield RestoreTarget("redis", TEMPORARY, changed, True,
                            f"temporary redis-server at {process.instance.url} (data in {data}), stopped and removed "
                            "afterwards")
    finally:
        try:
            process.stop()
        finally:
            shutil.rmtree(scratch / "redis", ignore_errors=True)


def _temporary_qdrant(config: Config, scratch: Path) -> Iterator[RestoreTarget]:
    path = scratch / "qdrant"
    instance = QdrantInstance(name=TEMPORARY, path=str(path))
    changed = dataclasses.replace(config, qdrant={**config.qdrant, TEMPORARY: instance})
    try:
        yield RestoreTarget("qdrant", TEMPORARY, changed, True,
                            f"temporary embedded Qdrant at {path}, removed afterwards")
    finally:
        shutil.rmtree(path, ignore_errors=True)
