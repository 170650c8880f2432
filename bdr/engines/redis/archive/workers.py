"""The archiver's helpers beside the receive loop: watching the master's offset, and delivering what is sealed.

The receive loop must never wait (a replica that stops reading makes its master buffer), so
everything slow runs in threads:

- :class:`MasterWatch` asks the master for its offset once a second (``INFO replication``
  on an ordinary connection). Each answer ``(offset, time)`` is a mark when it falls inside
  what the archiver holds (every byte up to it had run by then, however late it reached the
  archiver), ends a catch-up, and measures the lag in bytes;
- :class:`SegmentShipper` uploads each sealed segment to every destination (the repository,
  ``remote.url``), oldest first, retrying with a growing pause while a destination is down,
  and removes it from the spool once all have it;
- :class:`BaseShipper` stores each full sync's RDB as a base set in every destination (it takes
  the repository lock, which a long backup may hold for a while), and prunes the archive every
  hour (:mod:`.retention`).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from bdr.clients import redis_client
from bdr.config import Config, RedisInstance
from bdr.engines.redis.archive.bases import write_base
from bdr.engines.redis.archive.layout import abort_uploads, put_segment, segment_key
from bdr.engines.redis.archive.retention import prune_archive
from bdr.engines.redis.archive.spool import Spool
from bdr.errors import BdrError
from bdr.repository import ObjectCipher, Repository

logger = logging.getLogger(__name__)

WATCH_EVERY = 1.0
RETRY_MAX = 30.0
PRUNE_EVERY = 3600.0
BASE_LOCK_WAIT = 3600.0
METRICS_EVERY = 10.0
VIEWS_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the archive goes: a repository, and the key it is encrypted with there (None: plaintext)."""

    label: str
    repo: Repository
    cipher: ObjectCipher | None


@dataclass(frozen=True, slots=True)
class Observation:
    """The master's replication id and offset, read between ``asked_us`` and ``us``."""

    replid: str
    offset: int
    asked_us: int
    us: int


def _now_us() -> int:
    return time.time_ns() // 1000


class MasterWatch(threading.Thread):
    """Reads the master's offset every second (see the module docstring)."""

    def __init__(self, instance: RedisInstance, stop: threading.Event) -> None:
        super().__init__(name=f"bdr-archive-watch-{instance.name}", daemon=True)
        self.instance = instance
        self.stop_event = stop
        self._queue: collections.deque[Observation] = collections.deque(maxlen=600)
        self.error: str | None = None
        self.latest: Observation | None = None
        self._client: redis.Redis | None = None

    def observe(self) -> Observation | None:
        """One observation now (also used by the receive loop before it sends PSYNC)."""
        try:
            if self._client is None:
                self._client = redis_client(self.instance, timeout=5.0, retries=0)
            asked = _now_us()
            info = self._client.info("replication")
            seen = Observation(str(info.get("master_replid", "")), int(info.get("master_repl_offset", 0)), asked,
                               _now_us())
        except (redis.RedisError, BdrError, ValueError) as exc:
            self.error = str(exc)
            self._client = None
            return None
        self.error = None
        self.latest = seen
        return seen

    def run(self) -> None:
        while not self.stop_event.wait(WATCH_EVERY):
            seen = self.observe()
            if seen is not None:
                self._queue.append(seen)

    def drain(self) -> list[Observation]:
        out = []
        while self._queue:
            out.append(self._queue.popleft())
        return out


class _Shipper(threading.Thread):
    def __init__(self, name: str, spool: Spool, destinations: list[Destination], stop: threading.Event,
                 wake: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.spool = spool
        self.destinations = destinations
        self.stop_event = stop
        self.wake = wake
        self.error: str | None = None
        self._failures = 0
        self.idle = threading.Event()

    def _pause(self) -> float:
        return min(RETRY_MAX, 0.5 * 2 ** min(self._failures, 6)) if self._failures else 0.2

    def run(self) -> None:
        while True:
            stopping = self.stop_event.is_set()
            try:
                worked = self.step()
                self._failures = 0
                self.error = None
            except Exception as exc:  # a destination down: retried; the lag metric shows it meanwhile
                self._failures += 1
                message = exc.message if isinstance(exc, BdrError) else f"{type(exc).__name__}: {exc}"
                if self.error != message:
                    logger.warning("%s: %s (retrying)", self.name, message)
                self.error = message
                worked = False
            if not worked:
                self.idle.set()
                if stopping:
                    return
                self.wake.wait(self._pause())
                self.wake.clear()
            else:
                self.idle.clear()

    def step(self) -> bool:
        raise NotImplementedError


class SegmentShipper(_Shipper):
    """Uploads sealed segments to every destination, oldest first."""

    def __init__(self, spool: Spool, destinations: list[Destination], stop: threading.Event,
                 wake: threading.Event, on_delivered: Callable[[str, int, int], None]) -> None:
        super().__init__(f"bdr-archive-segments-{spool.instance}", spool, destinations, stop, wake)
        self.on_delivered = on_delivered
        for destination in destinations:
            try:
                abort_uploads(destination.repo, spool.instance)
            except BdrError as exc:
                logger.warning("could not remove the uploads a killed archiver left in %s: %s", destination.repo.url,
                               exc.message)

    def step(self) -> bool:
        pending = self.spool.sealed()
        if not pending:
            return False
        sealed = pending[0]
        done = sealed.delivered_to()
        for destination in self.destinations:
            if destination.label in done:
                continue
            key = segment_key(self.spool.instance, sealed.replid, sealed.name)
            put_segment(destination.repo, key, sealed.path, destination.cipher)
            sealed.record_delivery(destination.label)
        sealed.remove()
        self.on_delivered(sealed.replid, sealed.name.end, sealed.name.last_us)
        return True


class BaseShipper(_Shipper):
    """Stores staged full syncs as base sets; prunes the archive every hour."""

    def __init__(self, spool: Spool, destinations: list[Destination], stop: threading.Event,
                 wake: threading.Event, keep_seconds: float | None,
                 on_stored: Callable[[str], None]) -> None:
        super().__init__(f"bdr-archive-bases-{spool.instance}", spool, destinations, stop, wake)
        self.keep_seconds = keep_seconds
        self.on_stored = on_stored
        self._pruned_at = -PRUNE_EVERY

    def step(self) -> bool:
        staged = self.spool.staged_bases()
        if staged:
            base, done = staged[0]
            for destination in self.destinations:
                if destination.label in done:
                    continue
                manifest = write_base(destination.repo, self.spool.instance, base, destination.cipher,
                                      BASE_LOCK_WAIT)
                self.spool.record_base_delivery(base, destination.label)
                self.on_stored(manifest.id)
            self.spool.remove_base(base)
            return True
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY and not self.stop_event.is_set():
            self._pruned_at = time.monotonic()
            for destination in self.destinations:
                prune_archive(destination.repo, self.spool.instance, _now_us(), self.keep_seconds)
        return False


class MetricsWriter(threading.Thread):
    """Rewrites the metrics textfile every :data:`METRICS_EVERY` seconds while the archiver runs.

    The archive's series come from the archiver's status (fresh each second); the rest of the
    text (backup sets of every repository) is listed again only every :data:`VIEWS_EVERY`
    seconds, so an S3 repository is not listed every few seconds.
    """

    def __init__(self, config: Config, stop: threading.Event) -> None:
        super().__init__(name="bdr-archive-metrics", daemon=True)
        self.config = config
        self.stop_event = stop
        self._views: list[Any] | None = None
        self._views_at = 0.0

    def run(self) -> None:
        while not self.stop_event.wait(METRICS_EVERY):
            self.write()

    def write(self) -> None:
        from bdr.monitoring.metrics import (
            StaticCollector,
            collect,
            read_state,
            state_path,
            textfile_path,
            write_exposition,
        )
        from bdr.monitoring.status import views_for

        path = textfile_path(self.config)
        if path is None:
            return
        try:
            state = read_state(state_path(self.config))
            if self._views is None or time.monotonic() - self._views_at >= VIEWS_EVERY:
                self._views = views_for(self.config, state.remembered())
                self._views_at = time.monotonic()
            write_exposition(path, StaticCollector(collect(self.config, self._views, state)))
        except Exception as exc:  # metrics never stop the archiver
            logger.warning("could not rewrite the metrics textfile %s: %s", path, exc)
