"""The Prometheus engine: the metrics of ``prometheus:`` in bdr.yaml, backed up through the TSDB snapshot API.

A backup asks the server for a TSDB snapshot (``POST /api/v1/admin/tsdb/snapshot?skip_head=false``:
hard links of its blocks plus the head persisted as one more block, consistent at one
instant), streams the snapshot's blocks into one archive of the set (compressed and
encrypted like every set), and removes the snapshot from the server's data directory,
also when the backup fails. The server needs ``--web.enable-admin-api``; without it the
backup stops with one line saying so. The manifest records the Prometheus version, each
block's id, time range and counts, the series and sample counts, the oldest and newest
sample, and (process runtime) how the server was launched, so that a restore after a
total loss can start it again exactly that way.

A restore runs through the runbook (:mod:`.restore`); ``bdr verify`` of a set checks each
block's ``meta.json``, every chunk's CRC32C and runs ``promtool tsdb analyze``
(:mod:`.tsdb`).

Modules: :mod:`.client` (the HTTP API), :mod:`.tsdb` (a TSDB directory read offline),
:mod:`.engine` (the ``Engine``), :mod:`.restore` (the ``Restorer``).
"""

from __future__ import annotations

from bdr.engines.prometheus.engine import PrometheusEngine

ENGINE = PrometheusEngine()

__all__ = ["ENGINE", "PrometheusEngine"]
