"""The Redis engine: consistent snapshots, five-step restores, selective restore and checks.

- :mod:`.backup`: BGSAVE + copy (RDB and the Redis 7 multi-part AOF), or replication;
- :mod:`.restore`: safety backup, stop, replace, start, verify, rollback;
- :mod:`.selective`: copy matching keys from a backup into a live instance;
- :mod:`.repair`: redis-check-aof/-rdb on a copy of damaged files;
- :mod:`.verify`: redis-check-rdb/-aof on a set and a restore test;
- :mod:`.legacy`: backups of the old shell scripts.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import redis

from bdr.clients import redis_client
from bdr.engines.base import BackupRequest, Check, RestoreRequest, RestoreResult
from bdr.engines.redis import backup as _backup
from bdr.engines.redis import restore as _restore
from bdr.engines.redis import verify as _verify
from bdr.manifest import Manifest
from bdr.repository import SetWriter

METHODS = ("rdb", "replication")


class RedisEngine:
    """Backs up and restores one Redis instance named in bdr.yaml."""

    source = "redis"

    def backup(self, request: BackupRequest, writer: SetWriter) -> None:
        instance = request.config.redis_instance(request.instance)
        method = request.method or instance.method
        if method not in METHODS:
            from bdr.errors import UsageError

            raise UsageError(detail=f"unknown Redis backup method {method!r}; one of {', '.join(METHODS)}")
        if "safety" in request.tags and not self._answers(request):
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

    def restore(self, request: RestoreRequest) -> RestoreResult:
        if request.selection.get("keys"):
            from bdr.engines.redis.selective import selective_restore

            instance = request.config.redis_instance(request.target)
            scratch = Path(tempfile.mkdtemp(prefix="bdr-selective-"))
            try:
                with request.log.step("fetch"):
                    files, _manifest = _restore.fetch(request, scratch / "incoming")
                result: RestoreResult = selective_restore(request, files, instance)
                return result
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        return _restore.restore_full(self, request)

    def verify(self, manifest: Manifest, files: Path, restore_test: bool = False) -> list[Check]:
        checks = _verify.check_files(manifest, files)
        if restore_test and all(c.ok for c in checks):
            checks += _verify.restore_test(manifest, files)
        return checks


ENGINE = RedisEngine()
