"""Backups made by the old shell scripts: a downloaded collection snapshot (``*.snapshot``).

The runbook's ``backup-qdrant.sh`` saved ``qdrant_backup_<timestamp>.snapshot``: a snapshot of
the collection ``documents``, with no record of the Qdrant version it came from - so it
cannot be checked against the target's version as a snapshot upload must be. bdr converts
it instead: qdrant-edge loads each shard, every point is written into a logical point file
(with the collection config and payload indexes from the snapshot's ``config.json`` and
``payload_index.json``), and the result is restored as a one-collection logical backup -
into a server of any version or into the embedded engine, with the usual safety backup,
verification and rollback. The collection is named by ``--collection`` (default
``documents``, the collection the old script backed up).

The old volume tarball (``qdrant_volume_<date>.tar.gz``, a server's storage directory) is
not restorable by bdr: unpack it into the stopped server's storage directory by hand, or
start a Qdrant on it and take a bdr backup.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bdr.engines.qdrant import edge
from bdr.engines.qdrant.logical import METHOD, points_file
from bdr.engines.qdrant.pointfile import HASH_NAME, PointFileWriter
from bdr.engines.qdrant.schema import CollectionSchema
from bdr.errors import UsageError
from bdr.repository.manifest import Manifest, to_iso, utcnow

logger = logging.getLogger(__name__)

DEFAULT_COLLECTION = "documents"
_REST_CONFIG_KEYS = ("params", "hnsw_config", "optimizer_config", "wal_config", "quantization_config",
                     "strict_mode_config", "metadata")


def convert(path: Path, files: Path, collection: str | None, work: Path) -> Manifest:
    """Turn a legacy snapshot into a logical set's files (under ``files``) and its manifest."""
    if path.is_dir() or not path.is_file() or path.name.endswith((".tar.gz", ".tgz")):
        raise UsageError(detail=f"{path} is not a Qdrant snapshot file; bdr restores the old script's "
                         "qdrant_backup_*.snapshot files (a volume tarball must be unpacked into the stopped "
                         "server's storage directory by hand)")
    name = collection or DEFAULT_COLLECTION
    facts = edge.snapshot_config(path)
    facts["config"] = {k: v for k, v in facts["config"].items() if k in _REST_CONFIG_KEYS}
    layout = CollectionSchema.from_facts(facts).layout
    writer = PointFileWriter(name, layout)
    relative = points_file(name)
    dest = files / relative
    dest.parent.mkdir(parents=True, exist_ok=True)
    started = to_iso(utcnow())
    with dest.open("wb") as out:
        for chunk in writer.compressed(edge.points(path, layout, work)):
            out.write(chunk)
    logger.info("converted legacy snapshot %s: %d points of collection %s", path, writer.count, name)
    item: dict[str, Any] = {**facts, "points": writer.count, "content_hash": writer.content_hash, "file": relative,
                            "layout": layout.to_dict()}
    return Manifest(
        id=f"legacy {path.name}", source="qdrant", instance="legacy", method=METHOD, started_at=started,
        finished_at=to_iso(utcnow()), files=(), objects=(),
        facts={"method": METHOD, "mode": "legacy snapshot", "qdrant_version": None, "hash": HASH_NAME,
               "collections": {name: item}, "aliases": {}, "legacy_path": str(path)},
    )
