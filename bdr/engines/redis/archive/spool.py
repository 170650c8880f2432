"""The archiver's local spool: the open segment, sealed segments and bases waiting for upload, its status.

The spool is a directory on the archiver's host (``archive.redis.NAME.spool_dir``, default
``<repository>/journal/archive/redis-NAME``)::

    lock                        held (flock) by the running archiver; names its pid
    stream.json                 the open segment: stream (replid), start offset, kind
    open-<start>.bin            the stream bytes received after <start> (may end inside a command)
    open-<start>.marks          its time index so far, 16 bytes per mark
    sealed/<replid>/<name>.seg  sealed segments, until every destination has them
    sealed/<replid>/<name>.json which destinations have it already
    bases/<replid>-<offset>.rdb a full sync's RDB (and .json: its join point and server facts), until stored
    status.json                 what the archiver is doing, for bdr status and the metrics (rewritten each second)

Every received chunk is appended to the open file at once (a killed archiver loses nothing
the kernel has), its data and marks fsynced every second before the master is told the new
offset. **Sealing** cuts the open file at a clean command boundary: the segment object is
written beside its final name, the rest of the open file becomes the next open file,
``stream.json`` moves on, and only then is the segment renamed into ``sealed/``, so after a
crash at any point :meth:`Spool.recover` finds exactly one consistent state: the bytes of the
open file are scanned, sealed up to their last clean boundary, and the stream resumes there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdr import __version__
from bdr.engines.redis.archive.bases import JoinPoint, StagedBase
from bdr.engines.redis.archive.scanner import CommandScanner
from bdr.engines.redis.archive.segment import MARK, Header, Kind, Mark, SegmentName, encode, name_of, unpack_marks
from bdr.errors import ArchiverRunning, BdrError
from bdr.repository.manifest import to_iso, utcnow
from bdr.util.host import pid_alive, process_start_time

logger = logging.getLogger(__name__)

STATE = "stream.json"
STATUS = "status.json"
LOCK = "lock"
SEALED = "sealed"
BASES = "bases"
PARTIAL = ".partial"


def _write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class StreamState:
    """The open segment: which stream, from which offset, of which kind."""

    replid: str
    start: int
    kind: Kind

    def to_json(self) -> bytes:
        return json.dumps({"replid": self.replid, "start": self.start, "kind": str(self.kind)}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> StreamState:
        data = json.loads(raw)
        return cls(str(data["replid"]), int(data["start"]), Kind(data["kind"]))


@dataclass(frozen=True, slots=True)
class Sealed:
    """A sealed segment file waiting in the spool."""

    path: Path
    replid: str
    name: SegmentName

    @property
    def ledger(self) -> Path:
        return self.path.with_suffix(".json")

    def delivered_to(self) -> set[str]:
        try:
            return set(json.loads(self.ledger.read_bytes()).get("delivered", []))
        except (OSError, ValueError):
            return set()

    def record_delivery(self, destination: str) -> None:
        done = sorted(self.delivered_to() | {destination})
        _write_atomic(self.ledger, json.dumps({"delivered": done}).encode())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.ledger.unlink(missing_ok=True)


@dataclass(slots=True)
class OpenSegment:
    """The segment being written: its files and what is known of it in memory."""

    state: StreamState
    data_path: Path
    marks_path: Path
    size: int = 0
    marks: list[Mark] = field(default_factory=list)
    opened_at: float = 0.0
    commands_at_start: int = 0
    _data_fd: int = -1
    _marks_fd: int = -1

    def open_files(self) -> None:
        self._data_fd = os.open(self.data_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._marks_fd = os.open(self.marks_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def close_files(self) -> None:
        for fd in (self._data_fd, self._marks_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._data_fd = self._marks_fd = -1

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._data_fd, view):]
        self.size += len(data)

    def mark(self, mark: Mark) -> None:
        self.marks.append(mark)
        os.write(self._marks_fd, MARK.pack(mark.offset, mark.us))

    def flush(self) -> None:
        os.fsync(self._data_fd)
        os.fsync(self._marks_fd)

    @property
    def end(self) -> int:
        """Offset after the last byte held (maybe inside a command)."""
        return self.state.start + self.size


class Spool:
    """The archiver's directory (see the module docstring)."""

    def __init__(self, root: Path, instance: str) -> None:
        self.root = Path(root)
        self.instance = instance
        self.open: OpenSegment | None = None
        self._lock_fd: int | None = None

    # --- one archiver per instance --------------------------------------------------------------

    def lock(self) -> None:
        """Take the spool (:class:`ArchiverRunning` when another archiver of the instance holds it)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.root / SEALED).mkdir(exist_ok=True)
        (self.root / BASES).mkdir(exist_ok=True)
        fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                holder = {}
            os.close(fd)
            raise ArchiverRunning(instance=self.instance, pid=holder.get("pid", "?"), host=holder.get("host", "?"),
                                  since=holder.get("since", "?")) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": to_iso(utcnow()),
                                  "process_start": process_start_time(os.getpid())}).encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self.open is not None:
            self.open.close_files()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- the open segment ------------------------------------------------------------------------

    def state(self) -> StreamState | None:
        try:
            return StreamState.from_json((self.root / STATE).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("ignoring the unreadable stream state of the archive spool %s: %s", self.root, exc)
            return None

    def _files(self, start: int) -> tuple[Path, Path]:
        return self.root / f"open-{start}.bin", self.root / f"open-{start}.marks"

    def begin(self, replid: str, start: int, kind: Kind, now: float, commands: int = 0,
              carry: bytes = b"") -> OpenSegment:
        """A new open segment of stream ``replid`` after offset ``start`` (``carry``: bytes after it already held)."""
        if self.open is not None:
            self.open.close_files()
        state = StreamState(replid, start, kind)
        data, marks = self._files(start)
        _write_atomic(data, carry)
        _write_atomic(marks, b"")
        _write_atomic(self.root / STATE, state.to_json())
        self.open = OpenSegment(state, data, marks, len(carry), [], now, commands)
        self.open.open_files()
        self._drop_stale_open(start)
        return self.open

    def _drop_stale_open(self, keep: int) -> None:
        for path in self.root.glob("open-*"):
            if path.name not in (f"open-{keep}.bin", f"open-{keep}.marks"):
                path.unlink(missing_ok=True)

    def seal(self, at: int, now_us: int, commands: int, next_kind: Kind | None = None, now: float = 0.0) \
            -> Sealed | None:
        """Seal the open segment at the clean boundary ``at``; a new one starts there (``next_kind``, default the
        same kind). None when the open segment holds nothing to seal."""
        current = self.open
        assert current is not None
        state = current.state
        kind = next_kind or state.kind
        if at == state.start and not current.marks:
            if kind is not state.kind:
                self.begin(state.replid, at, kind, now, commands, self._tail(current, at))
            return None
        current.flush()
        with current.data_path.open("rb") as handle:
            payload = handle.read(at - state.start)
            rest = handle.read()
        marks = [m for m in current.marks if m.offset <= at]
        if not marks or marks[-1] != Mark(at, now_us):
            marks.append(Mark(at, max(now_us, max((m.us for m in marks), default=now_us))))
        sealed = self._write_sealed(state, payload, marks, commands - current.commands_at_start)
        carried = [m for m in current.marks if m.offset > at]
        opened = self.begin(state.replid, at, kind, now, commands, rest)
        for mark in carried:
            opened.mark(mark)
        final = sealed.path.with_name(sealed.path.name.removesuffix(PARTIAL))
        os.replace(sealed.path, final)
        _fsync_dir(final.parent)
        return Sealed(final, state.replid, sealed.name)

    @staticmethod
    def _tail(current: OpenSegment, at: int) -> bytes:
        with current.data_path.open("rb") as handle:
            handle.seek(at - current.state.start)
            return handle.read()

    def _write_sealed(self, state: StreamState, payload: bytes, marks: list[Mark], commands: int) -> Sealed:
        header = Header(self.instance, state.replid, state.start, state.start + len(payload), state.kind, len(marks),
                        commands, hashlib.sha256(payload).hexdigest(),
                        hashlib.sha256(b"".join(MARK.pack(m.offset, m.us) for m in marks)).hexdigest(),
                        to_iso(utcnow()), socket.gethostname(), os.getpid())
        name = name_of(header, marks)
        folder = self.root / SEALED / state.replid
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name.name}{PARTIAL}"
        _write_atomic(path, encode(header, marks, payload))
        return Sealed(path, state.replid, name)

    # --- after a crash ---------------------------------------------------------------------------

    def recover(self, now: float) -> StreamState | None:
        """Make the spool consistent after a kill; the stream to resume (its start is the offset held), or None.

        A sealed segment left beside its final name is finished when ``stream.json`` had moved past it,
        else dropped (its bytes are still in the open file); the open file is sealed up to its last
        clean boundary (its last mark: the file's modification time); what follows that boundary is
        dropped and fetched again from the master.
        """
        state = self.state()
        for partial in (self.root / SEALED).rglob(f"*{PARTIAL}"):
            name = SegmentName.parse(partial.name.removesuffix(PARTIAL))
            if state is not None and name is not None and name.end == state.start:
                os.replace(partial, partial.with_name(partial.name.removesuffix(PARTIAL)))
            else:
                partial.unlink(missing_ok=True)
        if state is None:
            for path in self.root.glob("open-*"):
                path.unlink(missing_ok=True)
            return None
        self._drop_stale_open(state.start)
        data_path, marks_path = self._files(state.start)
        try:
            data = data_path.read_bytes()
            modified = data_path.stat().st_mtime_ns // 1000
        except FileNotFoundError:
            data, modified = b"", int(now * 1_000_000)
        try:
            marks = unpack_marks(marks_path.read_bytes()[:(marks_path.stat().st_size // MARK.size) * MARK.size])
        except FileNotFoundError:
            marks = []
        scanner = CommandScanner(state.start, self.instance)
        with contextlib.suppress(ValueError, BdrError):  # garbage after the last command: dropped below
            scanner.feed(data)
        clean = scanner.clean
        self.open = OpenSegment(state, data_path, marks_path, len(data), [m for m in marks if m.offset <= clean], now)
        self.open.open_files()
        if clean > state.start or self.open.marks:
            last_us = max([modified, *(m.us for m in self.open.marks)])
            sealed = self.seal(clean, last_us, scanner.clean_commands, now=now)
            if sealed is not None:
                logger.warning("archive of redis %s: sealed %d bytes the killed archiver had received (segment %s)",
                               self.instance, sealed.name.size, sealed.name.name)
        assert self.open is not None
        if self.open.size:  # bytes after the last clean boundary: fetched again from the master
            self.begin(state.replid, clean, self.open.state.kind, now)
        return self.open.state

    # --- waiting for upload ------------------------------------------------------------------------

    def sealed(self) -> list[Sealed]:
        """Sealed segments not yet delivered everywhere, oldest first."""
        found = []
        for path in (self.root / SEALED).glob("*/*.seg"):
            name = SegmentName.parse(path.name)
            if name is not None:
                found.append(Sealed(path, path.parent.name, name))
        return sorted(found, key=lambda s: (s.name.first_us, s.name.start))

    def base_paths(self, join: JoinPoint) -> tuple[Path, Path]:
        stem = self.root / BASES / f"{join.replid}-{join.offset}"
        return stem.with_suffix(".rdb"), stem.with_suffix(".json")

    def stage_base(self, rdb_partial: Path, join: JoinPoint, facts: dict[str, Any]) -> StagedBase:
        rdb, meta = self.base_paths(join)
        os.replace(rdb_partial, rdb)
        _write_atomic(meta, json.dumps({"join": join.to_state(), "facts": facts, "delivered": []}).encode())
        return StagedBase(rdb, join, facts)

    def staged_bases(self) -> list[tuple[StagedBase, set[str]]]:
        out = []
        for meta in sorted((self.root / BASES).glob("*.json")):
            rdb = meta.with_suffix(".rdb")
            try:
                data = json.loads(meta.read_bytes())
                staged = StagedBase(rdb, JoinPoint.from_state(data["join"]), dict(data.get("facts") or {}))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("ignoring staged base %s: %s", meta, exc)
                continue
            if rdb.is_file():
                out.append((staged, set(data.get("delivered") or [])))
        return out

    def record_base_delivery(self, staged: StagedBase, destination: str) -> None:
        _rdb, meta = self.base_paths(staged.join)
        data = json.loads(meta.read_bytes())
        data["delivered"] = sorted(set(data.get("delivered") or []) | {destination})
        _write_atomic(meta, json.dumps(data).encode())

    def remove_base(self, staged: StagedBase) -> None:
        rdb, meta = self.base_paths(staged.join)
        rdb.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)

    def partial_base(self) -> Path:
        path = self.root / BASES / f"incoming{PARTIAL}"
        path.unlink(missing_ok=True)
        return path

    # --- status ------------------------------------------------------------------------------------

    def write_status(self, status: dict[str, Any]) -> None:
        _write_atomic(self.root / STATUS, json.dumps({**status, "bdr_version": __version__}, indent=1).encode(),
                      durable=False)


def read_status(root: Path) -> dict[str, Any] | None:
    """The archiver's status file, with ``running`` set from its lock holder; None when it never ran."""
    try:
        status: dict[str, Any] = json.loads((root / STATUS).read_bytes())
    except (OSError, ValueError):
        return None
    pid = status.get("pid")
    status["running"] = bool(pid_alive(pid) and process_start_time(pid) == status.get("process_start")
                             and status.get("state") != "stopped")
    return status


def iter_marks(raw: bytes) -> Iterator[Mark]:
    yield from unpack_marks(raw)
