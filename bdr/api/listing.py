"""Listing backup sets: the good ones, and the damaged ones bdr will not use (with the reason)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bdr.api.inputs import open_repository
from bdr.config import Config
from bdr.repository import BackupSet, DamagedSet


@dataclass(frozen=True, slots=True)
class Listing:
    """What ``bdr list`` shows: good sets and damaged ones, each newest first."""

    repository: str
    sets: tuple[BackupSet, ...]
    damaged: tuple[DamagedSet, ...]


def list_sets(
    config: Config,
    source: str | None = None,
    destination: str | Path | None = None,
    remote: str | None = None,
    include_safety: bool = True,
) -> list[BackupSet]:
    """Good backup sets, newest first (incomplete and damaged ones are never listed here)."""
    return list(list_repository(config, source, destination, remote, include_safety).sets)


def list_repository(
    config: Config,
    source: str | None = None,
    destination: str | Path | None = None,
    remote: str | None = None,
    include_safety: bool = True,
) -> Listing:
    """Good and damaged sets (of ``source``) from one scan of the repository.

    The shard sets of a Redis cluster set are not listed on their own: the cluster set is
    their one row (its facts hold the shards; ``bdr show`` names them).
    """
    repo = open_repository(config, destination, remote)
    catalog = repo.catalog(source)
    shards = {child for b in catalog.sets if b.source != "all" for child in b.manifest.children}
    sets = tuple(b for b in catalog.sets if (include_safety or "safety" not in b.tags) and b.id not in shards)
    return Listing(repo.url, sets, catalog.damaged)
