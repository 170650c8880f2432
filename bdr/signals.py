"""Signals during work that must not stop half-way: a restore, the removal of a temporary server.

:func:`signals_as_interrupts` turns SIGTERM (``systemctl stop``, ``kill``, a container stop) and
SIGINT into :class:`Interrupted` inside a block, so the code in it can roll back before the
process ends, as it does for Ctrl-C. :func:`signals_held` holds both back for a block that must
run to its end (a rollback, a cleanup); they arrive after it.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived during a restore: roll back, then stop."""


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGTERM (and SIGINT) raise :class:`Interrupted` inside the block, so a rollback runs."""
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread (a member of `bdr restore all`): leave signals alone
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGTERM/SIGINT back during a rollback: it must not be interrupted half-way."""
    blocked = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
