"""Progress of long steps (bytes or points done, rate, time left), for whoever wants to show it.

The layers that do the long work report here, never print: the repository as it reads and
writes objects (a download from S3, the fetch of a restore, the re-hashing of ``bdr verify``,
an upload), the Qdrant import as it reads a point file. The CLI installs a :class:`Progress`
for the duration of a command (:func:`showing`; a rich bar on a terminal, nothing with
``--json`` or ``-q``); without one, :func:`task` hands out a no-op and costs a function call.

A task is started with what is known of its size (``total`` None: only the bytes done and the
rate are shown) and finished exactly once; :class:`TrackedReader` does both for a stream
(advanced as it is read, finished when it is closed). The installed progress is
process-wide: tasks started from worker threads (``bdr backup all``) show too.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol, cast


class Task(Protocol):
    """One long step being tracked."""

    def advance(self, amount: int) -> None: ...

    def finish(self) -> None: ...


class Progress(Protocol):
    """Something that shows tasks (the CLI's bar)."""

    def start(self, label: str, total: int | None, unit: str) -> Task: ...


class _NoTask:
    def advance(self, amount: int) -> None:
        pass

    def finish(self) -> None:
        pass


NO_TASK: Task = _NoTask()
_lock = threading.Lock()
_current: Progress | None = None


def task(label: str, total: int | None = None, unit: str = "B") -> Task:
    """Start a task on the installed progress (a no-op without one)."""
    shown = _current
    if shown is None:
        return NO_TASK
    return shown.start(label, total if total is None or total >= 0 else None, unit)


@contextlib.contextmanager
def track(label: str, total: int | None = None, unit: str = "B") -> Iterator[Task]:
    """``with track("import docs", total) as t: ... t.advance(n)``: finished on leaving the block."""
    started = task(label, total, unit)
    try:
        yield started
    finally:
        started.finish()


@contextlib.contextmanager
def showing(progress: Progress | None) -> Iterator[None]:
    """Install ``progress`` for the block (None: leave whatever is installed, i.e. show nothing new)."""
    global _current
    if progress is None:
        yield
        return
    with _lock:
        previous, _current = _current, progress
    try:
        yield
    finally:
        with _lock:
            _current = previous


def active() -> bool:
    """Whether anything shows progress (callers skip computing a total nobody sees)."""
    return _current is not None


class TrackedReader(io.RawIOBase):
    """A binary stream that advances a task as it is read and finishes it when closed."""

    def __init__(self, raw: BinaryIO, tracked: Task) -> None:
        super().__init__()
        self._raw = raw
        self._task = tracked
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n:
            self._task.advance(n)
        return n

    def read(self, size: int | None = -1) -> bytes:
        data = self._raw.read(size if size is not None else -1)
        if data:
            self._task.advance(len(data))
        return data

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._task.finish()
        try:
            self._raw.close()
        finally:
            super().close()


def reading(stream: BinaryIO, label: str, total: int | None = None, unit: str = "B") -> BinaryIO:
    """``stream``, tracked as it is read (returned as is when nothing shows progress)."""
    if not active():
        return stream
    return cast(BinaryIO, TrackedReader(stream, task(label, total, unit)))
