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
from bdr.api.restores import interrupted_restores, restore, resume
from bdr.api.verification import VerifyReport, verify
from bdr.retention import prune
from bdr.status import status

__all__ = [
    "BackupOutcome",
    "ResolvedInput",
    "VerifyReport",
    "backup",
    "interrupted_restores",
    "list_sets",
    "open_repository",
    "prune",
    "repair",
    "resolve_input",
    "restore",
    "resume",
    "status",
    "verify",
]
