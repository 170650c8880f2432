"""Engines by source name: ``redis``, ``qdrant``, ``config`` (files and secrets), ``prometheus`` (metrics),
``grafana`` (dashboards)."""

from __future__ import annotations

import importlib

from bdr.engines.base import Engine
from bdr.errors import UsageError

_MODULES = {
    "redis": "bdr.engines.redis",
    "qdrant": "bdr.engines.qdrant",
    "config": "bdr.engines.files",
    "prometheus": "bdr.engines.prometheus",
    "grafana": "bdr.engines.grafana",
}


def engine_for(source: str) -> Engine:
    """The engine that backs up ``source`` (imported on first use)."""
    try:
        module = importlib.import_module(_MODULES[source])
    except KeyError:
        raise UsageError(detail=f"unknown source {source!r}; one of {', '.join(_MODULES)}") from None
    engine: Engine = module.ENGINE
    return engine


def known_sources() -> list[str]:
    return list(_MODULES)
