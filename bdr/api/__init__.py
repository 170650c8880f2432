"""The service layer: what ``bdr`` commands and the drill suite both call.

Each function takes the parsed :class:`~bdr.config.Config` and plain arguments, does one
operator-level job (back up a source, restore a set, verify a set, list sets) and returns
a typed result; it prints nothing. Errors are :mod:`bdr.errors` exceptions.
"""

from __future__ import annotations

from bdr.api.backups import BackupOutcome, backup
from bdr.api.inputs import ResolvedInput, open_repository, resolve_input
from bdr.api.listing import list_sets
from bdr.api.repairs import repair
from bdr.api.restores import interrupted_restores, restore, resume, selection_for
from bdr.api.services import (
    DIGEST_UNAVAILABLE,
    RedisFingerprint,
    archive_status,
    archiver_state,
    grafana_dashboard_uids,
    qdrant_client,
    qdrant_embedded_path,
    qdrant_embedded_version,
    redis_fingerprint,
)
from bdr.api.verification import VerifyReport, verify
from bdr.engines.redis.repair import Verdict as RepairVerdict
from bdr.monitoring.status import status
from bdr.repository.retention import prune

__all__ = [
    "DIGEST_UNAVAILABLE",
    "BackupOutcome",
    "RedisFingerprint",
    "RepairVerdict",
    "ResolvedInput",
    "VerifyReport",
    "archive_status",
    "archiver_state",
    "backup",
    "grafana_dashboard_uids",
    "interrupted_restores",
    "list_sets",
    "open_repository",
    "prune",
    "qdrant_client",
    "qdrant_embedded_path",
    "qdrant_embedded_version",
    "redis_fingerprint",
    "repair",
    "resolve_input",
    "restore",
    "resume",
    "selection_for",
    "status",
    "verify",
]
