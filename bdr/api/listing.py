"""Listing backup sets."""

from __future__ import annotations

from pathlib import Path

from bdr.api.inputs import open_repository
from bdr.config import Config
from bdr.repository import BackupSet


def list_sets(
    config: Config,
    source: str | None = None,
    destination: str | Path | None = None,
    remote: str | None = None,
    include_safety: bool = True,
) -> list[BackupSet]:
    """Complete backup sets, newest first (incomplete ones are never listed)."""
    return open_repository(config, destination, remote).sets(source, include_safety=include_safety)
