"""``bdr archive redis``: the long-running archiver, a replica that writes what it receives to the repository.

One archiver per instance (the spool's lock). It runs until told to stop (SIGTERM, Ctrl-C):

1. **Recover** the spool (:meth:`~.spool.Spool.recover`): what a killed archiver had received
   is sealed; the stream resumes at the last clean boundary it holds.
2. **Connect** as a replica (:mod:`.protocol`) and ``PSYNC`` from that offset. ``+CONTINUE``: the
   master's backlog still holds it and the stream goes on, without a gap. ``+FULLRESYNC``
   (the first run, a backlog that moved past the offset, a master that restarted or changed
   its replication id): the RDB that follows is a **new base**, staged and stored as a set
   (tag ``archive-base``); the archiver logs why (``took a new base of redis production: ...``)
   and counts it (``new_bases`` in its status, ``backup_archive_new_bases`` in the metrics).
3. **Receive**: every chunk is appended to the open segment and scanned (:mod:`.scanner`); a
   mark ``(clean offset, receive time)`` is added at most once a millisecond, and the master's
   own offset, read once a second (:class:`~.workers.MasterWatch`), adds marks too. Every second
   the spool is fsynced and the master gets ``REPLCONF ACK`` of what is durable.
4. **Seal** every ``segment_seconds`` or ``segment_bytes`` (and at a catch-up's end, and when
   the loop stalled for :data:`STALL_SECONDS`: what arrives after a stall was buffered); the
   shippers deliver sealed segments and staged bases (:mod:`.workers`).
5. **Reconnect** after a dropped link, with a growing pause (0.5 s to 30 s): the open segment
   is sealed at its last clean boundary first. A refusal that will not go away by itself (a
   wrong password, an ACL without ``psync``) ends the archiver with its error.

Its status (``<spool>/status.json``, each second): connected or not, offsets received,
durable, sealed and delivered, the master's offset, the **lag** (in bytes: the master's
offset minus the delivered one; in seconds: now minus the newest moment a restore from
the repository reaches, ``covered_until``: the last mark of the newest delivered segment; an
idle instance still gets a segment of marks every ``segment_seconds``, so the lag stays under
that plus an upload), new bases and their reasons, the last error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from bdr.clients import redis_client
from bdr.config import Config
from bdr.engines.redis.archive.bases import JoinPoint
from bdr.engines.redis.archive.protocol import LinkLost, ReplicationLink, Sync
from bdr.engines.redis.archive.scanner import CommandScanner
from bdr.engines.redis.archive.segment import Kind, Mark
from bdr.engines.redis.archive.spool import Spool
from bdr.engines.redis.archive.window import iso_us
from bdr.engines.redis.archive.workers import (
    BaseShipper,
    Destination,
    MasterWatch,
    MetricsWriter,
    Observation,
    SegmentShipper,
)
from bdr.engines.redis.info import rdb_aux
from bdr.errors import BdrError, ReplicationRefused, ServiceError, StreamDesync
from bdr.repository.manifest import to_iso, utcnow
from bdr.safety.journal import Journal
from bdr.util.host import process_start_time

logger = logging.getLogger(__name__)

STALL_SECONDS = 5.0
"""A receive loop that did not run for this long marks what arrives next as catch-up."""
RECV_WAIT = 0.05
MARK_EVERY_US = 1000
CATCH_UP_LOOK = 0.1
"""While catching up, the master's offset is read this often (else once a second)."""
ACKS_AT_START = (0.05, 0.15, 0.3, 0.5)
"""Seconds between the first ACKs of a connection (then one a second)."""
FATAL_REFUSALS = ("NOAUTH", "WRONGPASS", "NOPERM", "ERR unknown command")
STOP_WAIT = 30.0


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True)
class Progress:
    """What the status file says (see the module docstring)."""

    replid: str | None = None
    received: int = 0
    durable: int = 0
    sealed: int = 0
    delivered: int = 0
    delivered_replid: str | None = None
    delivered_us: int = 0
    covered_us: int = 0
    master: Observation | None = None
    connected: bool = False
    catching_up: bool = False
    segments_sealed: int = 0
    segments_delivered: int = 0
    bases_taken: int = 0
    bases_stored: list[str] = field(default_factory=list)
    new_bases: int = 0
    last_new_base: dict[str, str] | None = None
    last_error: str | None = None
    reconnects: int = 0


class Archiver:
    """The archiver of one Redis instance (see the module docstring)."""

    def __init__(self, config: Config, name: str, destinations: list[Destination],
                 stop: threading.Event | None = None) -> None:
        self.config = config
        self.settings = config.archive_settings(name)
        self.instance = config.redis_instance(name)
        self.name = self.instance.name
        self.spool = Spool(config.archive_spool(self.name), self.name)
        self.destinations = destinations
        self.stop = stop or threading.Event()
        self.progress = Progress()
        self._lock = threading.Lock()
        self._wake_segments = threading.Event()
        self._wake_bases = threading.Event()
        self.watch = MasterWatch(self.instance, self.stop)
        self.segments: SegmentShipper | None = None
        self.bases: BaseShipper | None = None
        self.metrics: MetricsWriter | None = None
        self._scanner: CommandScanner | None = None
        self._last_mark = Mark(-1, 0)
        self._deferred: tuple[int, int] | None = None
        """A chunk's mark held back (at most one mark a millisecond), with the time the chunk came."""
        self._force_full: str | None = None
        self._started = to_iso(utcnow())
        self._status_at = 0.0

    # --- the whole run -------------------------------------------------------------------------

    def run(self) -> Progress:
        """Archive until :attr:`stop` is set; raises for a refusal that retrying cannot fix."""
        self.spool.lock()
        try:
            recovered = self.spool.recover(time.monotonic())
            if recovered is not None:
                self.progress.replid = recovered.replid
                self.progress.received = self.progress.durable = self.progress.sealed = recovered.start
                waiting = self.spool.sealed()
                self.progress.delivered_replid = waiting[0].replid if waiting else recovered.replid
                self.progress.delivered = waiting[0].name.start if waiting else recovered.start
            self.segments = SegmentShipper(self.spool, self.destinations, self.stop, self._wake_segments,
                                           self._delivered)
            self.bases = BaseShipper(self.spool, self.destinations, self.stop, self._wake_bases,
                                     self.settings.keep, self._base_stored)
            self.metrics = MetricsWriter(self.config, self.stop)
            for thread in (self.watch, self.segments, self.bases, self.metrics):
                thread.start()
            attempt = 0
            while not self.stop.is_set():
                try:
                    self._session()
                    attempt = 0
                except (LinkLost, StreamDesync, ServiceError, OSError) as exc:
                    if isinstance(exc, ReplicationRefused) and any(word in exc.message for word in FATAL_REFUSALS):
                        raise
                    if isinstance(exc, StreamDesync):
                        self._force_full = exc.message
                    message = exc.message if isinstance(exc, BdrError) else str(exc)
                    self._link_lost(message)
                    attempt += 1
                    if attempt <= 1 or attempt % 10 == 0:
                        logger.warning("archive of redis %s: %s; reconnecting", self.name, message)
                self._write_status(force=True)
                if not self.stop.is_set():
                    self.stop.wait(min(30.0, 0.5 * 2 ** max(0, attempt - 1)) if attempt else 0.0)
        finally:
            self._shutdown()
        return self.progress

    def _shutdown(self) -> None:
        self.stop.set()
        with contextlib.suppress(Exception):
            self._seal_open(None, final=True)
        self._wake_segments.set()
        self._wake_bases.set()
        deadline = time.monotonic() + STOP_WAIT
        for thread in (self.segments, self.bases):
            if thread is not None and thread.is_alive():
                thread.join(max(0.1, deadline - time.monotonic()))
        self.progress.connected = False
        with contextlib.suppress(Exception):
            self._write_status(force=True, state="stopped")
        if self.metrics is not None:
            self.metrics.write()
        self.spool.unlock()

    # --- one connection ------------------------------------------------------------------------

    def _server_facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        try:
            client = redis_client(self.instance, timeout=10.0, retries=0)
            info = client.info("server")
            facts.update(redis_version=info.get("redis_version"), redis_mode=info.get("redis_mode"),
                         run_id=info.get("run_id"), os=info.get("os"))
            for setting in ("dbfilename", "appenddirname"):
                with contextlib.suppress(redis.RedisError):
                    facts[setting] = client.config_get(setting).get(setting)
        except (redis.RedisError, BdrError) as exc:
            logger.debug("archive of redis %s: server facts not read: %s", self.name, exc)
        return facts

    @contextlib.contextmanager
    def _quick_full_sync(self) -> Any:
        """``repl-diskless-sync-delay 0`` while the full sync starts (recorded and put back, as backups do)."""
        from bdr.engines.redis.live_settings import changed_settings, put_back_leftovers

        root = Journal.at(self.config.repository_path()).root
        try:
            client = redis_client(self.instance, timeout=10.0, retries=0)
            put_back_leftovers(self.instance, root)
            manager: Any = changed_settings(client, self.instance, {"repl-diskless-sync-delay": "0"}, root)
            manager.__enter__()
        except (redis.RedisError, BdrError, OSError) as exc:  # an ACL without CONFIG: the sync waits the delay
            logger.debug("archive of redis %s: repl-diskless-sync-delay not changed: %s", self.name, exc)
            manager = None
        try:
            yield
        finally:
            if manager is not None:
                manager.__exit__(None, None, None)

    def _session(self) -> None:
        link = ReplicationLink(self.instance, timeout=60.0)
        link.open()
        try:
            link.handshake()
            facts = self._server_facts()
            held = self.spool.state()
            before = self.watch.observe()
            full = held is None or self._force_full is not None
            asked_us = _now_us()
            with self._quick_full_sync():  # a continued stream too: the master may answer FULLRESYNC
                sync = link.psync(None, None) if full else link.psync(held.replid, held.start)  # type: ignore[union-attr]
                if sync.full:
                    reason = self._force_full or (
                        None if held is None else
                        f"the master could not continue the stream after offset {held.start} of {held.replid[:12]}… "
                        "(its backlog no longer holds it, or it restarted): the writes between are not archived")
                    join = self._receive_base(link, sync, facts, reason)
            self._force_full = None
            self.progress.connected = True
            self.progress.last_error = None
            if sync.full:
                self._begin(sync.replid, sync.offset, Kind.CATCH_UP, catching=True)
                self._mark(join.offset, join.at_us)
            else:
                assert held is not None
                if sync.replid != held.replid:
                    self._force_full = (f"the master changed its replication id to {sync.replid[:12]}… (a failover or "
                                        "a restart): a new base starts a new stream")
                    raise LinkLost(self._force_full)
                catching = before is None or before.replid != held.replid or before.offset > held.start
                self._begin(held.replid, held.start, Kind.CATCH_UP if catching else Kind.EXACT, catching)
                if not catching and before is not None:
                    self._mark(held.start, before.us)
                logger.info("archive of redis %s: stream %s continued after offset %d%s", self.name,
                            held.replid[:12], held.start, " (catching up)" if catching else "")
            self._stream(link, asked_us)
        finally:
            link.close()

    def _receive_base(self, link: ReplicationLink, sync: Sync, facts: dict[str, Any],
                      reason: str | None) -> JoinPoint:
        at_us = _now_us()
        partial = self.spool.partial_base()
        with partial.open("wb") as out:
            size = link.read_rdb(out)
            out.flush()
            os.fsync(out.fileno())
        aux = rdb_aux(partial)
        stream_db = int(aux.get("repl-stream-db") or 0) if str(aux.get("repl-stream-db", "0")).isdigit() else 0
        join = JoinPoint(sync.replid, sync.offset, stream_db, at_us)
        self.spool.stage_base(partial, join, facts)
        self._wake_bases.set()
        self.progress.bases_taken += 1
        if reason is not None:
            self.progress.new_bases += 1
            self.progress.last_new_base = {"at": to_iso(utcnow()), "reason": reason}
            logger.warning("archive of redis %s: took a new base (%d bytes at offset %d of %s): %s", self.name, size,
                           sync.offset, sync.replid[:12], reason)
        else:
            logger.info("archive of redis %s: first base, %d bytes at offset %d of %s", self.name, size, sync.offset,
                        sync.replid[:12])
        return join

    # --- the open segment ----------------------------------------------------------------------

    def _begin(self, replid: str, offset: int, kind: Kind, catching: bool) -> None:
        self.spool.begin(replid, offset, kind, time.monotonic())
        self._scanner = CommandScanner(offset, self.name)
        self._last_mark = Mark(-1, 0)
        self._deferred = None
        self.progress.replid = replid
        self.progress.received = self.progress.durable = self.progress.sealed = offset
        self.progress.catching_up = catching

    def _mark(self, offset: int, us: int) -> None:
        opened = self.spool.open
        assert opened is not None
        opened.mark(Mark(offset, us))
        self._last_mark = Mark(offset, us)
        self._deferred = None

    def _seal_open(self, next_kind: Kind | None, final: bool = False) -> None:
        """Seal the open segment at the last clean boundary (``final``: the link is gone, so also mark that
        nothing more had come by now: the moments up to the drop stay reachable)."""
        opened = self.spool.open
        if opened is None or self._scanner is None:
            return
        if self._deferred is not None:
            self._mark(*self._deferred)
        clean = self._scanner.clean
        if final and clean >= opened.state.start:
            self._mark(clean, _now_us())
        sealed = self.spool.seal(clean, _now_us(), self._scanner.clean_commands, next_kind, time.monotonic())
        if sealed is not None:
            self.progress.segments_sealed += 1
            self.progress.sealed = sealed.name.end
            self._wake_segments.set()

    def _link_lost(self, message: str) -> None:
        self.progress.connected = False
        self.progress.last_error = message
        self.progress.reconnects += 1
        with contextlib.suppress(Exception):
            self._seal_open(None, final=True)
        opened = self.spool.open
        if opened is not None and self._scanner is not None and opened.size:  # a partial command: fetched again
            self.spool.begin(opened.state.replid, self._scanner.clean, opened.state.kind, time.monotonic())
        self._scanner = None

    # --- receiving -------------------------------------------------------------------------------

    def _stream(self, link: ReplicationLink, asked_us: int) -> None:
        scanner = self._scanner
        assert scanner is not None
        settings = self.settings
        pending: list[Observation] = []
        last_tick = time.monotonic()
        last_look = 0.0
        self._deferred = None
        acks = iter(ACKS_AT_START)
        next_ack = last_tick + next(acks)
        link.ack(scanner.clean)
        while not self.stop.is_set():
            tick = time.monotonic()
            opened = self.spool.open
            assert opened is not None
            if tick - last_tick > STALL_SECONDS and not self.progress.catching_up:
                logger.warning("archive of redis %s: the receive loop stalled %.1fs; what arrives next is marked "
                               "catch-up", self.name, tick - last_tick)
                self._seal_open(Kind.CATCH_UP)
                self.progress.catching_up = True
                asked_us = _now_us()
                opened = self.spool.open
                assert opened is not None
            last_tick = tick
            data = link.recv(RECV_WAIT if self._deferred is None else MARK_EVERY_US / 1e6)
            if self._deferred is not None and (not data or _now_us() - self._last_mark.us >= MARK_EVERY_US):
                self._mark(*self._deferred)  # the newest bytes get their mark, at the time they came
            if data:
                us = _now_us()
                opened.append(data)
                scan = scanner.feed(data)
                self.progress.received = scan.clean
                if scan.clean > self._last_mark.offset:
                    if us - self._last_mark.us >= MARK_EVERY_US:
                        self._mark(scan.clean, us)
                    else:  # at most one mark a millisecond: this one waits for the next chunk or a quiet moment
                        self._deferred = (scan.clean, us)
                if scan.getack:
                    opened.flush()
                    self.progress.durable = scanner.clean
                    link.ack(scanner.clean)
            for seen in self.watch.drain():
                if seen.replid == opened.state.replid:
                    pending.append(seen)
                    self.progress.master = seen
            if self.progress.catching_up and tick - last_look >= CATCH_UP_LOOK:  # end a catch-up soon
                last_look = tick
                looked = self.watch.observe()
                if looked is not None and looked.replid == opened.state.replid:
                    pending.append(looked)
                    self.progress.master = looked
            if pending:
                pending = self._observations(pending, asked_us)
            if tick >= next_ack:  # the master starts the stream on the first ACK after a full sync, and drops a
                opened = self.spool.open  # replica silent for repl-timeout
                assert opened is not None
                opened.flush()
                self.progress.durable = scanner.clean
                link.ack(scanner.clean)
                next_ack = tick + next(acks, 1.0)
                self._write_status()
            opened = self.spool.open
            assert opened is not None
            clean_size = scanner.clean - opened.state.start
            age = tick - opened.opened_at
            if clean_size >= settings.segment_bytes or (age >= settings.segment_seconds and
                                                        (clean_size > 0 or opened.marks)):
                self._seal_open(None)

    def _observations(self, pending: list[Observation], asked_us: int) -> list[Observation]:
        scanner = self._scanner
        opened = self.spool.open
        assert scanner is not None and opened is not None
        waiting = []
        for seen in sorted(pending, key=lambda o: o.offset):
            if seen.offset > scanner.clean:
                waiting.append(seen)
                continue
            if seen.offset >= opened.state.start and (seen.offset, seen.us) != (self._last_mark.offset,
                                                                                 self._last_mark.us):
                self._mark(seen.offset, seen.us)
            if self.progress.catching_up and seen.asked_us >= asked_us:
                self.progress.catching_up = False
                logger.info("archive of redis %s: caught up at offset %d", self.name, scanner.clean)
                self._seal_open(Kind.EXACT)
                opened = self.spool.open
                assert opened is not None
        return waiting

    # --- what the shippers report ------------------------------------------------------------------

    def _delivered(self, replid: str, end: int, last_us: int) -> None:
        with self._lock:
            self.progress.segments_delivered += 1
            self.progress.delivered = end
            self.progress.delivered_replid = replid
            self.progress.delivered_us = max(self.progress.delivered_us, last_us)

    def _base_stored(self, set_id: str) -> None:
        with self._lock:
            self.progress.bases_stored.append(set_id)
            del self.progress.bases_stored[:-10]

    # --- status --------------------------------------------------------------------------------------

    def covered_until_us(self) -> int:
        """The newest moment a restore from the repository reaches (see :mod:`.window`): the last mark of the
        newest delivered segment, once the base of its stream is stored (0: nothing yet)."""
        progress = self.progress
        with self._lock:
            replid, delivered_us = progress.delivered_replid, progress.delivered_us
        if not any(staged.join.replid == replid for staged, _done in self.spool.staged_bases()):
            progress.covered_us = max(progress.covered_us, delivered_us)
        return progress.covered_us

    def status(self, state: str | None = None) -> dict[str, Any]:
        now_us = _now_us()
        progress = self.progress
        covered = self.covered_until_us()
        master = progress.master
        lag_bytes = max(0, master.offset - progress.delivered) if master is not None and \
            master.replid == progress.delivered_replid else None
        shippers = [t for t in (self.segments, self.bases) if t is not None]
        return {
            "instance": self.name, "state": state or ("streaming" if progress.connected else "connecting"),
            "pid": os.getpid(), "process_start": process_start_time(os.getpid()), "host": socket.gethostname(),
            "started_at": self._started, "updated_at": iso_us(now_us), "updated_us": now_us,
            "connected": progress.connected, "catching_up": progress.catching_up,
            "stream": progress.replid, "received_offset": progress.received, "durable_offset": progress.durable,
            "sealed_offset": progress.sealed, "delivered_offset": progress.delivered,
            "master_offset": master.offset if master else None, "master_at": iso_us(master.us) if master else None,
            "covered_until": iso_us(covered) if covered else None, "covered_until_us": covered or None,
            "lag_seconds": round((now_us - covered) / 1e6, 3) if covered else None, "lag_bytes": lag_bytes,
            "receive_lag_bytes": max(0, master.offset - progress.received) if master else None,
            "segments_sealed": progress.segments_sealed, "segments_delivered": progress.segments_delivered,
            "segments_pending": len(self.spool.sealed()), "bases_taken": progress.bases_taken,
            "bases_stored": list(progress.bases_stored), "new_bases": progress.new_bases,
            "last_new_base": progress.last_new_base, "reconnects": progress.reconnects,
            "last_error": progress.last_error or next((t.error for t in shippers if t.error), None)
            or self.watch.error,
            "destinations": [d.repo.url for d in self.destinations],
        }

    def _write_status(self, force: bool = False, state: str | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._status_at < 1.0:
            return
        self._status_at = now
        try:
            self.spool.write_status(self.status(state))
        except OSError as exc:
            logger.warning("archive of redis %s: could not write its status: %s", self.name, exc)

