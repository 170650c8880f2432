"""The application, simulated: acknowledged, timestamped writes of each data type.

While a drill runs, :class:`AckWriter` keeps writing one record per data type per tick
(sessions and RBAC grants into Redis, embeddings into Qdrant) and remembers when each
write was *acknowledged* by the service. After the recovery, :meth:`newest_surviving`
finds the newest acknowledged write that is still there: the achieved RPO is the fault
time minus its acknowledgement time. Data that was lost is measured, not assumed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Channel:
    """One data type: how to write record ``seq``, and how to ask which records exist."""

    data_type: str
    write: Callable[[int, float], None]
    exists: Callable[[Sequence[int]], list[bool]]
    every: int = 1
    """Write on every n-th tick."""
    suspend: Callable[[], None] | None = None
    """Called when the writer pauses: let go of the service (the embedded Qdrant's directory lock)."""
    resume: Callable[[], None] | None = None
    acks: list[tuple[int, float]] = field(default_factory=list)
    failures: int = 0


class AckWriter:
    """A background thread writing to every channel until stopped."""

    def __init__(self, channels: Sequence[Channel], interval: float = 0.05) -> None:
        self.channels = {c.data_type: c for c in channels}
        self.interval = interval
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._tick = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="bdr-drill-writer", daemon=True)
        self._seq = 0

    def start(self) -> AckWriter:
        self._thread.start()
        return self

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            with self._tick:
                if not self._paused.is_set():
                    self._seq += 1
                    for channel in self.channels.values():
                        if tick % channel.every:
                            continue
                        try:
                            channel.write(self._seq, time.time())
                        except Exception as exc:  # the service may be down: that is the point of a drill
                            channel.failures += 1
                            logger.debug("write %s #%d failed: %s", channel.data_type, self._seq, exc)
                            continue
                        channel.acks.append((self._seq, time.time()))
                    tick += 1
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._suspend_channels()

    def pause(self) -> None:
        """Stop writing (after the write in flight) and let go of the services."""
        self._paused.set()
        with self._tick:
            self._suspend_channels()

    def resume(self) -> None:
        for channel in self.channels.values():
            if channel.resume is not None:
                channel.resume()
        self._paused.clear()

    def _suspend_channels(self) -> None:
        for channel in self.channels.values():
            if channel.suspend is not None:
                channel.suspend()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """``with writer.paused(): api.backup(...)``: bdr needs the embedded Qdrant to itself."""
        self.pause()
        try:
            yield
        finally:
            if not self._stop.is_set():
                self.resume()

    def wait_for_acks(self, count: int = 3, timeout: float = 10.0) -> None:
        """Block until every channel has at least ``count`` acknowledged writes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(len(c.acks) >= count for c in self.channels.values()):
                return
            time.sleep(self.interval)
        raise TimeoutError(f"the drill writer got no acknowledgements within {timeout}s")

    def acknowledged(self, data_type: str, before: float) -> list[tuple[int, float]]:
        return [(seq, at) for seq, at in self.channels[data_type].acks if at <= before]

    def newest_surviving(self, data_type: str, before: float, batch: int = 500) -> float | None:
        """Acknowledgement time of the newest write made before ``before`` that still exists."""
        channel = self.channels[data_type]
        acks = self.acknowledged(data_type, before)
        for end in range(len(acks), 0, -batch):
            chunk = acks[max(0, end - batch):end]
            present = channel.exists([seq for seq, _ in chunk])
            for (_seq, at), alive in zip(reversed(chunk), reversed(present), strict=True):
                if alive:
                    return at
        return None
