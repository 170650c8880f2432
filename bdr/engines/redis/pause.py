"""Holding writes back on a live Redis while a restore needs it, and never longer.

``CLIENT PAUSE <ms> WRITE`` blocks (it does not refuse) the writes of every client; reads
go on. A restore holds writes from its safety snapshot to the stop, so no write is
acknowledged that the safety set lacks (the blocked ones fail when the server stops), and
from the moment the restored server accepts a connection until it is verified, so a rollback
drops no acknowledged write. The pause is taken in steps of :data:`PAUSE_SECONDS`, renewed by
a thread while bdr works: a killed bdr never holds writes back for longer than one step.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import redis

from bdr.clients import redis_client
from bdr.config import RedisInstance

logger = logging.getLogger(__name__)

PAUSE_SECONDS = 30
"""Writes are paused in steps of this long, renewed while bdr works."""


class WritePause:
    """``CLIENT PAUSE <ms> WRITE`` on a live server, renewed until :meth:`end` (or the server stops).

    :meth:`begin` pauses at once (the safety snapshot: no write may land after it unseen);
    :meth:`begin_when_up` is called *before* a start and pauses as soon as the new server
    accepts a connection, while it is still loading (Redis allows CLIENT PAUSE then), so no
    client can write to the restored data before it is verified.
    """

    def __init__(self, instance: RedisInstance) -> None:
        self.instance = instance
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self.note = ""

    def _pause(self) -> None:
        redis_client(self.instance, timeout=5.0, retries=0).execute_command(
            "CLIENT", "PAUSE", PAUSE_SECONDS * 1000, "WRITE")
        self._paused.set()

    def begin(self) -> None:
        try:
            self._pause()
        except redis.RedisError as exc:
            self.note = f"writes not paused ({exc}): writes after the safety snapshot are not in it"
            logger.warning("Redis %s: %s", self.instance.name, self.note)
            return
        self._thread = threading.Thread(target=self._renew, name="bdr-write-pause", daemon=True)
        self._thread.start()

    def begin_when_up(self) -> None:
        self._thread = threading.Thread(target=self._first_then_renew, name="bdr-write-pause", daemon=True)
        self._thread.start()

    def _first_then_renew(self) -> None:
        while not self._stop.is_set():
            try:
                self._pause()
                break
            except redis.ResponseError as exc:
                self.note = f"writes not held back ({exc})"
                return
            except redis.RedisError:
                self._stop.wait(0.002)  # not listening yet
        self._renew()

    def confirm(self, timeout: float = 5.0) -> None:
        """After the start: the pause must be in place (else say so)."""
        if not self._paused.wait(timeout) and not self.note:
            self.note = "writes not held back: the pause did not take"

    def _renew(self) -> None:
        while not self._stop.wait(PAUSE_SECONDS / 3):
            with contextlib.suppress(redis.RedisError):
                self._pause()

    def end(self, unpause: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if unpause and self._paused.is_set():
            with contextlib.suppress(redis.RedisError):
                redis_client(self.instance, timeout=5.0, retries=0).execute_command("CLIENT", "UNPAUSE")
