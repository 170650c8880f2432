"""The archive's series in bdr's metrics (``bdr metrics``, the textfile, ``bdr exporter``).

Labelled ``source="redis"`` and ``instance``, one sample per instance of ``archive.redis``:

=====================================  ================================================================
backup_archive_up                      1 while the archiver runs and is connected to the instance
backup_archive_covered_timestamp       the newest moment a point-in-time restore reaches (0: none yet)
backup_archive_lag_seconds             now minus that, when the metrics were written
backup_archive_lag_bytes               the master's offset minus what the archive has delivered
backup_archive_window_start_timestamp  the earliest moment a restore reaches
backup_archive_windows                 recoverable windows (more than one: the archive has gaps)
backup_archive_new_bases_total         bases taken since the archiver started because the stream could
                                       not be continued (its backlog no longer held the offset)
=====================================  ================================================================

The alert ``ArchiveLagging`` is ``time() - backup_archive_covered_timestamp > max_lag``: it fires
too when the archiver died (the timestamp stops moving), whoever rewrites the textfile.

This module describes the series and gathers the samples; :mod:`bdr.monitoring.metrics` makes them families
and writes them (it imports this module, never the other way round).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from bdr.config import Config
from bdr.engines.redis.archive.report import archive_statuses


@dataclass(frozen=True, slots=True)
class ArchiveFamily:
    """How one archive series is described (its HELP text, and whether it is a counter rather than a gauge)."""

    help: str
    counter: bool = False


@dataclass(frozen=True, slots=True)
class ArchiveSample:
    """One sample of an archive series, labelled ``source="redis"`` and ``instance``."""

    name: str
    value: float
    instance: str

    @property
    def labels(self) -> dict[str, str]:
        return {"source": "redis", "instance": self.instance}


FAMILIES: dict[str, ArchiveFamily] = {
    "backup_archive_up": ArchiveFamily("1 while the archiver of the instance runs and is connected to it."),
    "backup_archive_covered_timestamp": ArchiveFamily("Unix time of the newest moment a point-in-time restore "
                                                      "reaches (0: none yet)."),
    "backup_archive_lag_seconds": ArchiveFamily("Seconds between when the metrics were written and the newest moment "
                                                "a point-in-time restore reaches."),
    "backup_archive_lag_bytes": ArchiveFamily("Bytes of the replication stream the master has that the archive has "
                                              "not delivered yet."),
    "backup_archive_window_start_timestamp": ArchiveFamily("Unix time of the earliest moment a point-in-time restore "
                                                           "reaches."),
    "backup_archive_windows": ArchiveFamily("Recoverable windows of the archive (more than one: it has gaps)."),
    "backup_archive_new_bases_total": ArchiveFamily("Bases the archiver took since it started because the stream "
                                                    "could not be continued.", counter=True),
}


def archive_samples(config: Config, now: datetime | None = None) -> Iterator[ArchiveSample]:
    """The samples of every archived instance (none when nothing is archived: the families in
    :data:`FAMILIES` still get their HELP and TYPE)."""
    for status in archive_statuses(config, now):
        name = status.instance
        archiver = status.archiver or {}
        yield ArchiveSample("backup_archive_up", 1.0 if status.running and archiver.get("connected") else 0.0, name)
        yield ArchiveSample("backup_archive_covered_timestamp", (status.covered_us or 0) / 1e6, name)
        if status.lag_seconds is not None:
            yield ArchiveSample("backup_archive_lag_seconds", round(status.lag_seconds, 3), name)
        if status.lag_bytes is not None:
            yield ArchiveSample("backup_archive_lag_bytes", float(status.lag_bytes), name)
        if status.windows:
            yield ArchiveSample("backup_archive_window_start_timestamp", status.windows[0].from_us / 1e6, name)
        yield ArchiveSample("backup_archive_windows", float(len(status.windows)), name)
        yield ArchiveSample("backup_archive_new_bases_total", float(status.new_bases), name)
