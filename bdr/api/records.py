"""What every service-layer run shares: a backup's outcome, the instance name a run records, the
metrics written after it, and the refusal to touch an instance whose restore was interrupted.

The bottom of :mod:`bdr.api`: :mod:`.backups`, :mod:`.restores`, :mod:`.copies` and
:mod:`.system` import it, it imports none of them (so ``backup all`` in :mod:`.system` and the
single-source runs it dispatches from share these without an import cycle).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bdr.config import Config
from bdr.engines.base import Step
from bdr.engines.runbook import journal_of
from bdr.repository.manifest import Manifest
from bdr.sources import instance_name as _catalogue_instance_name

if TYPE_CHECKING:
    from bdr.api.copies import CopyRun

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
    copies: list[CopyRun] = field(default_factory=list)
    """The same set copied to another repository (``--also-remote``, ``--also-local``)."""

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
            "copies": [c.to_dict() for c in self.copies],
        }


def instance_name(config: Config, source: str, instance: str | None) -> str:
    """The instance name a run of ``source`` records (the configured default when ``instance`` is None)."""
    return _catalogue_instance_name(config, source, instance)


def record_success(config: Config, manifest: Manifest, seconds: float, location: str, repository: str | None = None,
                   *, rewrite: bool = True) -> None:
    """Remember the run for the metrics; ``rewrite``: rewrite the textfile now (the last of several records)."""
    try:
        from bdr.monitoring.metrics import record_backup
    except ImportError:
        return
    try:
        record_backup(config, manifest, seconds, location, repository, rewrite=rewrite)
    except Exception:  # metrics must never fail a backup
        logger.exception("could not write backup metrics")


def record_failure(config: Config, source: str, instance: str, error: BaseException) -> None:
    try:
        from bdr.monitoring.metrics import record_failure as write_failure
    except ImportError:
        return
    try:
        write_failure(config, source, instance, error)
    except Exception:
        logger.exception("could not write failure metrics")


def refuse_if_interrupted(config: Config, source: str, instance: str) -> None:
    """Raise :class:`~bdr.errors.RestoreInterrupted` when a restore of this instance was interrupted."""
    journal_of(config).check_clear(source, instance)
