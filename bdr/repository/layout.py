"""The names of a repository's layout and the ids of its sets (see :mod:`bdr.repository`)."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from datetime import UTC, datetime

from bdr.repository.manifest import utcnow
from bdr.sources import source_names

SOURCES = source_names(with_all=True)
"""Every source (:mod:`bdr.sources`) and ``all``: the top-level directories of a repository."""
LOCK_KEY = "locks/repository.lock"
VERIFY_NAME = "verify.json"
COPY_NAME = "copy.json"
"""Beside the manifest of a set ``bdr copy`` wrote: where it came from, how, and the check of the copy."""
WRITING_MARKER = ".bdr-writing.json"
ARCHIVE_NAME = "data.tar.zst"
TAR_NAME = "data.tar"
LOAD_WORKERS = 8
LOCK_WAIT: ContextVar[float] = ContextVar("bdr_lock_wait", default=0.0)
"""How long :meth:`Repository.lock` waits for a lock another process holds (``--wait-lock``); 0: not at all."""
LOCK_POLL = 1.0
REMOTE_WRITER_TIMEOUT = 7 * 86400.0
"""How long the writing (or read) marker of a process on *another host* is taken for a live one.

bdr cannot ask another host whether a pid lives, so it waits: 7 days is far longer than any
backup or restore runs (the largest take hours) and short enough that a crashed off-site
upload does not hold storage for long. Markers of this host are judged at once (pid, start
time, boot id)."""
SET_ID = re.compile(r"^(?P<source>[a-z]+)-(?P<time>\d{8}T\d{6}Z)-[0-9a-f]+$")

NO_MANIFEST = ("no manifest: not left by a crashed bdr run; bdr leaves it alone; delete {path} yourself if it is "
               "not needed")
BAD_MARKER = ("no manifest, and its writing marker is unreadable; bdr leaves it alone; delete {path} yourself if "
              "it is not needed")
MISPLACED = "manifest names set {id!r} of {source}: copied or moved by hand"


def new_set_id(source: str, moment: datetime | None = None) -> str:
    """``redis-20250124T020000Z-1a2b3c``: source, UTC time, and a short random suffix."""
    moment = moment or utcnow()
    return f"{source}-{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def set_id_time(set_id: str) -> datetime | None:
    """When a set was started, from its id (None when the name is not a set id)."""
    match = SET_ID.match(set_id)
    if match is None:
        return None
    return datetime.strptime(match["time"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


