"""Engines by source name (the catalogue :mod:`bdr.sources` names each source's engine module):
``redis``, ``qdrant``, ``config`` (files and secrets), ``prometheus`` (metrics), ``grafana`` (dashboards)."""

from __future__ import annotations

from bdr.engines.base import Engine
from bdr.errors import UsageError
from bdr.registry import Registry, UnknownEntry
from bdr.sources import all_sources

ENGINES: Registry[Engine] = Registry("source", {s.name: s.engine for s in all_sources()}, attribute="ENGINE")
"""Each source's engine, its module imported on first lookup."""


def engine_for(source: str) -> Engine:
    """The engine that backs up ``source`` (imported on first use)."""
    try:
        return ENGINES.get(source)
    except UnknownEntry as exc:
        raise UsageError(detail=str(exc)) from None


def known_sources() -> list[str]:
    return ENGINES.names()
