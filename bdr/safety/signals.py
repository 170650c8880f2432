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
    """Hold SIGTERM/SIGINT back during a rollback: it must not be interrupted half-way.

    A signal that arrives is recorded and raised again when the block ends. The signals are
    deferred by a handler, not blocked by the signal mask: a child inherits the mask, and a
    ``redis-server`` (or any service) started during a rollback would then ignore the SIGTERM
    that stops it later, long after bdr exited. Handlers, unlike the mask, are reset by exec.
    """
    pending: list[int] = []

    def defer(signum: int, _frame: FrameType | None) -> None:
        pending.append(signum)

    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, defer)
    except ValueError:  # not the main thread: Python runs handlers in the main thread, which decides
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)
