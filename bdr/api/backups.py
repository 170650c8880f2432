"""``bdr backup``: one source into a repository, then optional pruning and metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdr.api.inputs import open_repository
from bdr.api.keys import cipher_for_backup
from bdr.api.restores import refuse_if_interrupted
from bdr.config import Config
from bdr.engines import engine_for
from bdr.engines.base import BackupRequest, Step, StepLog, write_backup
from bdr.manifest import Manifest

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class BackupOutcome:
    """A finished backup: its manifest, where it went, how long it took, what was pruned."""

    manifest: Manifest
    repository: str
    location: str
    seconds: float
    steps: list[Step] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "id": m.id,
            "source": m.source,
            "instance": m.instance,
            "method": m.method,
            "repository": self.repository,
            "location": self.location,
            "started_at": m.started_at,
            "finished_at": m.finished_at,
            "seconds": round(self.seconds, 4),
            "data_bytes": m.data_size,
            "stored_bytes": m.stored_size,
            "compressed": m.compressed,
            "encrypted": m.encrypted,
            "files": len(m.files),
            "facts": dict(m.facts),
            "pruned": self.pruned,
            "steps": [s.to_dict() for s in self.steps],
        }


def backup(
    config: Config,
    source: str,
    *,
    instance: str | None = None,
    destination: str | Path | None = None,
    remote: str | None = None,
    compress: bool = False,
    keep: int | None = None,
    method: str | None = None,
    encrypt: bool = False,
    key_file: str | None = None,
    allow_plaintext: bool = False,
    tags: tuple[str, ...] = (),
    options: Mapping[str, Any] | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> BackupOutcome:
    """Back up ``source`` (redis, qdrant, config, all); prune to ``keep`` newest sets when given."""
    if source == "all":
        from bdr.api.system import backup_all

        return backup_all(config, destination=destination, remote=remote, compress=compress, keep=keep,
                          encrypt=encrypt, key_file=key_file, allow_plaintext=allow_plaintext, on_step=on_step)
    engine = engine_for(source)
    repo = open_repository(config, destination, remote)
    cipher = cipher_for_backup(config, encrypt, remote, key_file, allow_plaintext)
    log = StepLog(on_step=on_step)
    request = BackupRequest(config=config, repository=repo, instance=instance, method=method, compress=compress,
                            cipher=cipher, tags=tags, options=dict(options or {}), log=log)
    instance_name = _instance_name(config, source, instance)
    refuse_if_interrupted(config, source, instance_name)
    begun = time.perf_counter()
    try:
        with log.step(f"backup {source}") as step:
            manifest = write_backup(engine, request, instance_name, method or "default")
            step.detail = manifest.id
    except Exception as exc:
        _record_failure(config, source, instance_name, exc)
        raise
    seconds = time.perf_counter() - begun
    outcome = BackupOutcome(manifest, repo.url, repo.storage.location, seconds, log.steps)
    if keep is not None:
        from bdr.retention import keep_last

        with log.step("prune") as step:
            outcome.pruned = [d for d in keep_last(repo, source, instance_name, keep)]
            step.detail = f"{len(outcome.pruned)} older set(s) deleted"
    _record_success(config, manifest, seconds, repo.storage.location, repo.url)
    return outcome


def _instance_name(config: Config, source: str, instance: str | None) -> str:
    if source == "redis":
        return config.redis_instance(instance).name
    if source == "qdrant":
        return config.qdrant_instance(instance).name
    return instance or config.files.name


def _record_success(config: Config, manifest: Manifest, seconds: float, location: str, repository: str | None = None,
                    *, rewrite: bool = True) -> None:
    """Remember the run for the metrics; ``rewrite``: rewrite the textfile now (the last of several records)."""
    try:
        from bdr.metrics import record_backup
    except ImportError:
        return
    try:
        record_backup(config, manifest, seconds, location, repository, rewrite=rewrite)
    except Exception:  # metrics must never fail a backup
        logger.exception("could not write backup metrics")


def _record_failure(config: Config, source: str, instance: str, error: BaseException) -> None:
    try:
        from bdr.metrics import record_failure
    except ImportError:
        return
    try:
        record_failure(config, source, instance, error)
    except Exception:
        logger.exception("could not write failure metrics")
