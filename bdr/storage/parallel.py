"""Moving the parts of one object over several connections at once, in bounded memory and in order.

An upload goes through a :class:`PartPipeline`: the producer (a sink's ``write``, fed by the
tar, zstd and encryption streams above it) cuts the object into parts numbered in order and
hands each to :meth:`PartPipeline.submit`; ``concurrency`` threads send them. The pipeline
holds at most ``concurrency`` parts, the one the producer is filling included (it takes its
room with :meth:`PartPipeline.reserve` before the part's first byte): a full pipeline blocks
the producer until a part is sent, so an upload holds at most ``concurrency`` parts in
memory, whatever the object's size (and one at a time, as a plain serial upload, with a
concurrency of 1). The buffer of a part that was sent is handed back by the next
``reserve`` to be filled again, so a long upload does not allocate (and fault in) fresh
memory for every part. Parts finish in any order;
:meth:`PartPipeline.results` gives their results by part number. The first failure stops it:
parts not yet started are dropped, and every later ``submit`` or ``results`` raises that
failure again. :meth:`PartPipeline.stop` waits for the sends in progress, so that nothing
lands after the caller aborted the upload.

A download goes through a :class:`RangeWindow`: the object is read as consecutive ranges,
up to ``concurrency`` of them fetched ahead of the reader, each into a buffer of its own,
and handed out strictly in order. The reader holds one, the others are on their way: at
most ``concurrency`` buffers at a time.

Neither knows S3: the caller passes the function that sends one part or fetches one range,
retries and error translation included (:mod:`bdr.storage.s3`).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Stopped(Exception):
    """Raised inside a part's or a range's transfer once its pipeline was stopped (not an error of its own)."""


class PartPipeline(Generic[T]):
    """Parts of one upload sent by a pool of threads, at most ``concurrency`` held at once.

    ``send(number, data)`` sends one part and returns what the caller needs to finish the
    upload (its ETag, its checksum); it runs on a pool thread and should check
    :attr:`stopped` between its tries (a stopped pipeline wants it to give up).
    """

    def __init__(self, send: Callable[[int, bytearray], T], concurrency: int, part_size: int,
                 name: str = "bdr-upload") -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self._send = send
        self.concurrency = concurrency
        self._lock = threading.Condition()
        self._part_size = part_size
        self._held = 0
        self._reserved = False
        self._spare: list[bytearray] = []
        self._results: dict[int, T] = {}
        self._failure: BaseException | None = None
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name)
        self.stopped = threading.Event()
        """Set by the first failure and by :meth:`stop`: sends in progress give up at their next try."""
        self.peak = 0
        """The most parts held at once (being filled, waiting or being sent): never more than ``concurrency``."""
        self.finished: list[int] = []
        """Part numbers in the order their sends finished (not necessarily the order of the parts)."""

    @property
    def failure(self) -> BaseException | None:
        """The first failure of a part, once one failed."""
        return self._failure

    def check(self) -> None:
        """Raise the first failure of a part, if one failed."""
        failure = self._failure
        if failure is not None:
            raise failure

    def reserve(self) -> bytearray | None:
        """Wait for room for the part the producer is about to fill (once per part): the buffer of a part
        already sent, to fill again, or None (a new one is needed). Raises the first failure."""
        with self._lock:
            if self._reserved:
                return None
            while self._held >= self.concurrency and self._failure is None and not self.stopped.is_set():
                self._lock.wait()
            self.check()
            if self.stopped.is_set():
                raise Stopped("a part for an upload that was stopped")
            self._held += 1
            self._reserved = True
            self.peak = max(self.peak, self._held)
            return self._spare.pop() if self._spare else None

    def submit(self, number: int, data: bytearray) -> None:
        """Send part ``number`` in the room :meth:`reserve` gave it (waiting for room now if it was not
        reserved). Raises the first failure of any part."""
        self.reserve()
        with self._lock:
            self._reserved = False
            try:
                self.check()
            except BaseException:
                self._held -= 1
                raise
        self._pool.submit(self._run, number, data)

    def _unreserve(self) -> None:
        with self._lock:
            if self._reserved:
                self._reserved = False
                self._held -= 1

    def _run(self, number: int, data: bytearray) -> None:
        try:
            if self.stopped.is_set():
                return
            result = self._send(number, data)
        except BaseException as exc:
            with self._lock:
                if self._failure is None and not self.stopped.is_set():
                    self._failure = exc
                self.stopped.set()
        else:
            with self._lock:
                self._results[number] = result
                self.finished.append(number)
                if len(data) == self._part_size and not self.stopped.is_set():
                    self._spare.append(data)  # sent: its memory can hold a later part
        finally:
            with self._lock:
                self._held -= 1
                self._lock.notify_all()

    def results(self) -> list[T]:
        """Wait for every part submitted; their results by part number. Raises the first failure."""
        self._unreserve()  # the object ended on a part's boundary: the room taken for one more is not needed
        with self._lock:
            while self._held and self._failure is None:
                self._lock.wait()
            self.check()
            ordered = [self._results[number] for number in sorted(self._results)]
            self._spare.clear()
        self._pool.shutdown(wait=True)
        return ordered

    def stop(self) -> None:
        """Drop the parts not started and wait for those being sent to end (never raises; idempotent)."""
        self.stopped.set()
        with self._lock:
            self._spare.clear()
            self._lock.notify_all()
        self._pool.shutdown(wait=True, cancel_futures=True)


class RangeWindow(Generic[T]):
    """The ranges ``0 .. count - 1`` of one object, fetched up to ``concurrency`` ahead and handed out in order.

    ``fetch(index)`` returns the bytes of range ``index`` (it resumes and retries itself). With
    one range, or a concurrency of 1, ranges are fetched by the reader's own thread, one at a time.
    """

    def __init__(self, count: int, fetch: Callable[[int], T], concurrency: int, name: str = "bdr-download") -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.count = count
        self.concurrency = concurrency
        self._fetch = fetch
        self._next = 0
        self._submitted = 0
        self._pending: collections.deque[Future[T]] = collections.deque()
        self._pool: ThreadPoolExecutor | None = None
        if count > 1 and concurrency > 1:
            self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name)
        self._failure: BaseException | None = None
        self.stopped = threading.Event()
        """Set by :meth:`close`: fetches in progress give up at their next chunk or pause."""
        self.peak = 0
        """The most ranges on their way at once (the one the reader waits for included)."""

    def next(self) -> T | None:
        """The next range in order (None after the last); raises the failure of a range, then again on every call."""
        if self._failure is not None:
            raise self._failure
        if self._next >= self.count:
            return None
        index = self._next
        self._next += 1
        try:
            if self._pool is None:
                self.peak = 1
                return self._fetch(index)
            while self._submitted < min(self.count, index + self.concurrency):
                self._pending.append(self._pool.submit(self._fetch, self._submitted))
                self._submitted += 1
            self.peak = max(self.peak, len(self._pending))
            return self._pending.popleft().result()
        except BaseException as exc:
            self._failure = exc
            self.close()
            raise

    def close(self) -> None:
        """Drop the ranges not started; those in progress stop at their next chunk (never raises; idempotent)."""
        self.stopped.set()
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["PartPipeline", "RangeWindow", "Stopped"]
