"""Who is at work in a repository: the processes behind writing markers, the lock and read markers.

A marker names its process (pid, host, the process's start time, the boot id): one of this
host is judged at once, one of another host only by its age (:data:`~bdr.repository.layout.REMOTE_WRITER_TIMEOUT`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bdr import __version__
from bdr.repository.layout import REMOTE_WRITER_TIMEOUT
from bdr.repository.manifest import from_iso, to_iso, utcnow
from bdr.util.host import pid_alive, process_start_time


def boot_id() -> str | None:
    """This boot of this host (``/proc/sys/kernel/random/boot_id``): a pid of another boot is dead."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def process_gone(pid: int, host: str, since: str, start: int | None, boot: str | None,
                 now: datetime | None = None) -> bool:
    """Whether the process a marker names is certainly not running any more.

    On this host: another boot, a dead pid, or a pid now held by a process that started at
    another time (reused). On another host: a marker older than :data:`REMOTE_WRITER_TIMEOUT`.
    """
    if host != socket.gethostname():
        try:
            age = ((now or utcnow()) - from_iso(since)).total_seconds()
        except ValueError:
            return False
        return age > REMOTE_WRITER_TIMEOUT
    current_boot = boot_id()
    if boot and current_boot and boot != current_boot:
        return True
    if not pid_alive(pid):
        return True
    if start is not None:
        now_start = process_start_time(pid)
        if now_start is not None and now_start != start:
            return True
    return False


@dataclass(frozen=True, slots=True)
class LockInfo:
    """Who holds the lock or reads a set: pid, host, since, what, and what tells a reused pid apart."""

    pid: int
    host: str
    since: str
    operation: str
    process_start: int | None = None
    boot_id: str | None = None

    @classmethod
    def here(cls, operation: str) -> LockInfo:
        pid = os.getpid()
        return cls(pid, socket.gethostname(), to_iso(utcnow()), operation, process_start_time(pid), boot_id())

    def gone(self, now: datetime | None = None) -> bool:
        return process_gone(self.pid, self.host, self.since, self.process_start, self.boot_id, now)

    def to_json(self) -> bytes:
        return json.dumps({"pid": self.pid, "host": self.host, "since": self.since, "operation": self.operation,
                           "process_start": self.process_start, "boot_id": self.boot_id}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> LockInfo:
        data = json.loads(raw)
        start = data.get("process_start")
        return cls(int(data["pid"]), str(data["host"]), str(data["since"]), str(data.get("operation", "?")),
                   int(start) if start is not None else None, data.get("boot_id"))


@dataclass(frozen=True, slots=True)
class WriterMarker:
    """``<source>/<set>/.bdr-writing.json``: the bdr process writing a set, written before any object."""

    set_id: str
    pid: int
    host: str
    started: str
    bdr_version: str
    process_start: int | None = None
    """``/proc/PID/stat`` field 22 (clock ticks since boot): a reused pid has another."""
    boot_id: str | None = None

    @classmethod
    def here(cls, set_id: str) -> WriterMarker:
        pid = os.getpid()
        return cls(set_id, pid, socket.gethostname(), to_iso(utcnow()), __version__, process_start_time(pid),
                   boot_id())

    def gone(self, now: datetime | None = None) -> bool:
        return process_gone(self.pid, self.host, self.started, self.process_start, self.boot_id, now)

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> WriterMarker:
        data = json.loads(raw)
        start = data.get("process_start")
        return cls(str(data["set_id"]), int(data["pid"]), str(data["host"]), str(data["started"]),
                   str(data.get("bdr_version", "?")), int(start) if start is not None else None,
                   data.get("boot_id"))


