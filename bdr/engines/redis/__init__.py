"""The Redis engine: honest snapshots, journaled restores through the runbook, selective restore, checks.

- :mod:`.backup`: BGSAVE + copy (RDB and the Redis 7 multi-part AOF), or replication;
  a backup is good only if the snapshot bdr asked for succeeded;
- :mod:`.content`: the content digest of a snapshot, read from the RDB itself;
- :mod:`.restore`: a full restore (the runbook's steps; :mod:`.prepare` makes the files the
  instance loads, :mod:`.swap` swaps them in atomically);
- :mod:`.selective`: copy matching keys from a backup into a live instance;
- :mod:`.repair`: redis-check-aof/-rdb on a copy of damaged files;
- :mod:`.verify`: redis-check-rdb/-aof on a set and a restore test;
- :mod:`.temporary`: a private redis-server loaded from a set's files;
- :mod:`.target`: an instance's runtime and where its files are; :mod:`.live_settings`:
  settings changed on a live server for a moment, always put back;
- :mod:`.legacy`: backups of the old shell scripts;
- :mod:`.cluster`: Redis Cluster (a server that reports ``cluster_enabled:1``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import redis

from bdr.clients import redis_client
from bdr.config import Config
from bdr.engines.base import BackupRequest, Check, RestoreRequest, RestoreResult
from bdr.engines.redis import backup as _backup
from bdr.engines.redis import cluster
from bdr.engines.redis import verify as _verify
from bdr.engines.runbook import Restorer, run_restore
from bdr.engines.selection import RedisSelection
from bdr.errors import UsageError
from bdr.repository import SetWriter
from bdr.repository.manifest import Manifest
from bdr.safety.journal import JournalEntry

METHODS = ("rdb", "replication")


class RedisEngine:
    """Backs up and restores one Redis instance named in bdr.yaml."""

    source = "redis"
    selection_type = RedisSelection

    def backup(self, request: BackupRequest, writer: SetWriter) -> None:
        instance = request.config.redis_instance(request.instance)
        method = request.method or instance.method
        if method not in METHODS:
            raise UsageError(detail=f"unknown Redis backup method {method!r}; one of {', '.join(METHODS)}")
        if cluster.backs_up(request, instance):
            cluster.back_up(request, writer, instance, method)
        elif "safety" in request.tags and not self._answers(request):
            _backup.backup_offline(request, writer, instance)
        elif method == "replication":
            staging = Path(tempfile.mkdtemp(prefix="bdr-repl-"))
            try:
                _backup.backup_replication(request, writer, instance, staging)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        else:
            _backup.backup_rdb(request, writer, instance)

    @staticmethod
    def _answers(request: BackupRequest) -> bool:
        try:
            return bool(redis_client(request.config.redis_instance(request.instance), timeout=5.0, retries=0).ping())
        except redis.RedisError:
            return False

    # --- restore: through the runbook ------------------------------------------------------------

    def instance_name(self, config: Config, target: str | None) -> str:
        return config.redis_instance(target).name

    def restorer(self, request: RestoreRequest) -> Restorer:
        selection = RedisSelection.expect(request.selection, self.source)
        if cluster.restores(request):
            return cluster.restorer(self, request)
        if selection.keys:
            from bdr.engines.redis.selective import SelectiveRestore

            return SelectiveRestore.new(self, request)
        if selection.node:
            raise UsageError(detail=f"--node {selection.node} brings a lost node of a Redis cluster back: redis "
                             f"{self.instance_name(request.config, request.target)} is not a cluster")
        from bdr.engines.redis.restore import FullRestore

        return FullRestore.new(self, request)

    def resumed(self, request: RestoreRequest, entry: JournalEntry, result: RestoreResult) -> Restorer:
        if entry.state.get("mode") in cluster.MODES:
            return cluster.resumed(self, request, entry, result)
        if entry.state.get("mode") == "selective":
            from bdr.engines.redis.selective import SelectiveRestore

            return SelectiveRestore.resumed(self, request, entry, result)
        from bdr.engines.redis.restore import FullRestore

        return FullRestore.resumed(self, request, entry, result)

    def restore(self, request: RestoreRequest) -> RestoreResult:
        return run_restore(self, request)

    def verify(self, manifest: Manifest, files: Path, restore_test: bool = False) -> list[Check]:
        checks = _verify.check_files(manifest, files)
        if restore_test and all(c.ok for c in checks):
            checks += _verify.restore_test(manifest, files)
        if manifest.facts.get("cluster_shard"):
            checks += cluster.verify_member(manifest, files, restore_test)
        return checks

    def verify_parent(self, manifest: Manifest, members: list[Manifest]) -> list[Check]:
        """A cluster set's own checks, its members verified (``bdr verify`` of a parent set)."""
        return cluster.verify_parent(manifest, members)


ENGINE = RedisEngine()
