"""The Qdrant engine: collections and their points, backed up three ways, restored and proved.

- :mod:`.client`: connections to a server or the embedded engine (local mode), opened per
  operation, errors translated;
- :mod:`.method`: the ``logical``, ``snapshot`` and ``volume`` methods behind one interface;
- :mod:`.pointfile`: the compact streamed format of logical backups and its content hash;
- :mod:`.schema`: collection configs and payload indexes, captured and recreated;
- :mod:`.restore`: a full restore through the runbook (fetch, check, safety backup, replace, verify);
- :mod:`.selective`: one collection (optionally renamed) or the points matching a filter;
- :mod:`.edge`: offline reading of server snapshots with qdrant-edge (``bdr verify``).

The method comes from ``--method``, else ``qdrant.<instance>.method`` in bdr.yaml. A set
records the method it was made with, and restore and verify follow it.
"""

from __future__ import annotations

from pathlib import Path

from bdr.config import Config
from bdr.engines.base import BackupRequest, Check, RestoreRequest, RestoreResult
from bdr.engines.qdrant.client import target_of
from bdr.engines.qdrant.methods import known_methods, method_for, method_of
from bdr.engines.runbook import Restorer, run_restore
from bdr.engines.selection import QdrantSelection
from bdr.repository import SetWriter
from bdr.repository.manifest import Manifest
from bdr.safety.journal import JournalEntry

GENERIC_METHODS = ("default", "safety")
"""Method names the service layer passes that mean "the instance's configured method"."""


class QdrantEngine:
    """Backs up and restores one Qdrant instance named in bdr.yaml."""

    source = "qdrant"
    selection_type = QdrantSelection

    def backup(self, request: BackupRequest, writer: SetWriter) -> None:
        target = target_of(request.config, request.instance)
        name = request.method if request.method and request.method not in GENERIC_METHODS else None
        method = method_for(name or target.instance.method)
        method.backup(request, writer, target)

    def instance_name(self, config: Config, target: str | None) -> str:
        return config.qdrant_instance(target).name

    def restorer(self, request: RestoreRequest) -> Restorer:
        if not QdrantSelection.expect(request.selection, self.source).empty and request.backup is not None:
            from bdr.engines.qdrant.selective import QdrantSelectiveRestore

            return QdrantSelectiveRestore.new(self, request)
        from bdr.engines.qdrant.restore import QdrantRestore

        return QdrantRestore.new(self, request)

    def resumed(self, request: RestoreRequest, entry: JournalEntry, result: RestoreResult) -> Restorer:
        if entry.state.get("mode") == "selective":
            from bdr.engines.qdrant.selective import QdrantSelectiveRestore

            return QdrantSelectiveRestore.resumed(self, request, entry, result)
        from bdr.engines.qdrant.restore import QdrantRestore

        return QdrantRestore.resumed(self, request, entry, result)

    def restore(self, request: RestoreRequest) -> RestoreResult:
        return run_restore(self, request)

    def verify(self, manifest: Manifest, files: Path, restore_test: bool = False) -> list[Check]:
        return method_of(manifest).verify(manifest, files, restore_test)


ENGINE = QdrantEngine()

__all__ = ["ENGINE", "QdrantEngine", "known_methods"]
