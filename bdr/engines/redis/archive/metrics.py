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
"""

from __future__ import annotations

from datetime import datetime

from bdr.config import Config
from bdr.engines.redis.archive.report import archive_statuses
from bdr.metrics import MetricFamily, MetricType

FAMILIES: dict[str, tuple[str, MetricType]] = {
    "backup_archive_up": ("1 while the archiver of the instance runs and is connected to it.", MetricType.GAUGE),
    "backup_archive_covered_timestamp": ("Unix time of the newest moment a point-in-time restore reaches "
                                         "(0: none yet).", MetricType.GAUGE),
    "backup_archive_lag_seconds": ("Seconds between when the metrics were written and the newest moment a "
                                   "point-in-time restore reaches.", MetricType.GAUGE),
    "backup_archive_lag_bytes": ("Bytes of the replication stream the master has that the archive has not "
                                 "delivered yet.", MetricType.GAUGE),
    "backup_archive_window_start_timestamp": ("Unix time of the earliest moment a point-in-time restore reaches.",
                                              MetricType.GAUGE),
    "backup_archive_windows": ("Recoverable windows of the archive (more than one: it has gaps).", MetricType.GAUGE),
    "backup_archive_new_bases_total": ("Bases the archiver took since it started because the stream could not be "
                                       "continued.", MetricType.COUNTER),
}


def archive_families(config: Config, now: datetime | None = None) -> list[MetricFamily]:
    """The archive's families (empty ones when nothing is archived: the names still have HELP and TYPE)."""
    families = {name: MetricFamily(name, text, kind) for name, (text, kind) in FAMILIES.items()}
    for status in archive_statuses(config, now):
        labels = {"source": "redis", "instance": status.instance}
        archiver = status.archiver or {}
        families["backup_archive_up"].add(1.0 if status.running and archiver.get("connected") else 0.0, **labels)
        covered = status.covered_us
        families["backup_archive_covered_timestamp"].add((covered or 0) / 1e6, **labels)
        if status.lag_seconds is not None:
            families["backup_archive_lag_seconds"].add(round(status.lag_seconds, 3), **labels)
        if status.lag_bytes is not None:
            families["backup_archive_lag_bytes"].add(float(status.lag_bytes), **labels)
        if status.windows:
            families["backup_archive_window_start_timestamp"].add(status.windows[0].from_us / 1e6, **labels)
        families["backup_archive_windows"].add(float(len(status.windows)), **labels)
        families["backup_archive_new_bases_total"].add(float(status.new_bases), **labels)
    return list(families.values())
