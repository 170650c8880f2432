"""Failpoints: named places where a test makes bdr crash or fail on purpose, deterministically.

A crash test must not be a race against a timer ("kill it after 0.3 s and hope it was in
the copy"). bdr names the places that matter (every step of a restore, the copy and the
commit of a backup, the swap of data files ...) and calls :func:`failpoint` there. The
call is inert unless the environment variable ``BDR_FAILPOINTS`` names that point::

    BDR_FAILPOINTS="restore.replace:kill"              SIGKILL this process at that point
    BDR_FAILPOINTS="backup.copy:enospc"                raise ENOSPC there (a full disk)
    BDR_FAILPOINTS="restore.verify:error"              raise an I/O error there
    BDR_FAILPOINTS="restore.start.after:sleep=2"       pause there (for a test that acts meanwhile)
    BDR_FAILPOINTS="restore.swap:kill@2"               only on the 2nd time the point is reached

Several points are separated by commas. The names in use are listed by
:data:`KNOWN` (tests check that every name they inject exists, so a renamed point cannot
make a test pass vacuously). Nothing here runs unless the variable is set; production runs
never set it.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)

ENV = "BDR_FAILPOINTS"

RESTORE_STEPS = ("fetch", "check", "safety backup", "stop", "replace", "start", "verify", "rollback", "finish")
"""The runbook's steps; each has a failpoint ``restore.<step>`` (before it runs) and ``restore.<step>.after``."""


def _restore_points() -> tuple[str, ...]:
    names: list[str] = []
    for step in RESTORE_STEPS:
        base = "restore." + step.replace(" ", "-")
        names += [base, f"{base}.after"]
    return tuple(names)


KNOWN: frozenset[str] = frozenset({
    *_restore_points(),
    "restore.swap",            # between two entries of the data-file swap
    "restore.unswap",          # between two entries of putting the old files back
    "backup.snapshot.after",   # BGSAVE done, nothing copied yet
    "backup.settings.changed",  # a live setting changed (auto-aof-rewrite-percentage 0 ...), not yet put back
    "backup.copy",             # in the middle of copying the data files into the set
    "backup.commit",           # every object written, the manifest not yet
    "copy.object",             # bdr copy: after each 1 MiB chunk of an object written into the destination
})


@dataclass(frozen=True, slots=True)
class Action:
    kind: str
    """``kill``, ``enospc``, ``error`` or ``sleep``."""
    seconds: float = 0.0
    nth: int = 1


_hits: dict[str, int] = {}


def _parse(spec: str) -> dict[str, Action]:
    actions: dict[str, Action] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, what = item.partition(":")
        what, _, nth = what.partition("@")
        kind, _, arg = what.partition("=")
        actions[name.strip()] = Action(kind.strip() or "kill", float(arg or 0), int(nth or 1))
    return actions


def failpoint(name: str) -> None:
    """Crash, fail or pause here if ``BDR_FAILPOINTS`` says so; nothing otherwise."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    action = _parse(spec).get(name)
    if action is None:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] != action.nth:
        return
    logger.warning("failpoint %s: %s", name, action.kind)
    if action.kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # never reached: SIGKILL cannot be caught
    elif action.kind == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"failpoint {name}")
    elif action.kind == "error":
        raise OSError(errno.EIO, os.strerror(errno.EIO), f"failpoint {name}")
    elif action.kind == "sleep":
        time.sleep(action.seconds)
    else:
        raise ValueError(f"{ENV}: unknown failpoint action {action.kind!r} for {name}")
