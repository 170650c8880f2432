"""The restore journal: every step of a restore written down (and fsynced) before it runs.

A restore that is killed (``kill -9``, a reboot, an OOM kill) must never leave the
operator guessing. Before each step, the runbook records in the journal what it is about
to do and everything needed to finish or undo it without bdr.yaml: the set being
restored, the safety set, how the instance is started again (its :class:`~bdr.runtime.base.Launch`),
where its data directory is and where the new and the old files are kept. The journal
lives in the local repository (``<repository>/journal/``), one file per instance being
restored, written atomically (temporary name, fsync, rename, fsync of the directory).

A journal file whose writer is gone (its pid is dead on this host) is an **interrupted
restore**: every bdr command on that instance refuses to act and says how to go on
(``bdr restore <source> --resume`` to finish, ``--abort`` to roll back), ``bdr status``
fails and names it, and the metrics show it. A finished restore's record moves to
``journal/done/`` (the newest :data:`KEEP_DONE` are kept), the history ``bdr status``
and a drill report can cite.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bdr import __version__
from bdr.errors import BdrError, NotWritable, RestoreInProgress, RestoreInterrupted
from bdr.repository.manifest import to_iso, utcnow
from bdr.util.host import pid_alive, process_start_time

logger = logging.getLogger(__name__)

JOURNAL_DIR = "journal"
DONE_DIR = "done"
KEEP_DONE = 50


class Status:
    """Where a restore stands (a plain string in the file)."""

    RUNNING = "running"
    ROLLING_BACK = "rolling back"
    DONE = "done"
    ROLLED_BACK = "rolled back"
    ROLLBACK_FAILED = "rollback failed"
    ABORTED = "aborted"


@dataclass(slots=True)
class JournalEntry:
    """One restore of one instance, as the journal records it."""

    id: str
    source: str
    instance: str
    ref: str
    """The set (or legacy path) being restored."""
    repository: str
    """Where the set is (a local path or an s3:// url)."""
    safety_repository: str
    step: str = ""
    """The step about to run or running (``stop``, ``replace`` ...)."""
    status: str = Status.RUNNING
    safety_id: str | None = None
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    process_start: int | None = None
    started_at: str = field(default_factory=lambda: to_iso(utcnow()))
    updated_at: str = ""
    bdr_version: str = __version__
    steps: list[dict[str, Any]] = field(default_factory=list)
    """The steps done so far (name, status, times, detail)."""
    state: dict[str, Any] = field(default_factory=dict)
    """What the engine needs to finish or undo it (launch, data dir, work dir, layout ...)."""
    error: str = ""

    @property
    def key(self) -> str:
        return f"{self.source}-{self.instance}"

    def alive(self) -> bool:
        """Its writer still runs (same host, same pid, same process start time)."""
        if self.host != socket.gethostname():
            return True  # another host's restore: never assume it died
        if not pid_alive(self.pid):
            return False
        return self.process_start is None or process_start_time(self.pid) == self.process_start

    def interrupted_message(self) -> str:
        safety = f" (roll back to safety set {self.safety_id})" if self.safety_id else ""
        return (f"restore {self.id} of {self.source} {self.instance} was interrupted at step {self.step!r}"
                f"{' (' + self.status + ')' if self.status != Status.RUNNING else ''}; run `bdr restore "
                f"{self.source} --resume --target {self.instance}` (finish) or `bdr restore {self.source} --abort "
                f"--target {self.instance}`{safety}")

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True, default=str) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> JournalEntry:
        data = json.loads(raw)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def new_restore_id() -> str:
    return f"restore-{utcnow():%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary name, fsync, rename, fsync of the directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@dataclass(slots=True)
class Journal:
    """The journal directory of one local repository."""

    root: Path

    @classmethod
    def at(cls, repository: Path) -> Journal:
        return cls(Path(repository) / JOURNAL_DIR)

    def _path(self, source: str, instance: str) -> Path:
        return self.root / f"{source}-{instance}.json"

    def _ensure(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NotWritable(path=str(self.root), detail=f"cannot create the restore journal: {exc.strerror}; a "
                              "restore records every step there before it runs") from exc

    def begin(self, entry: JournalEntry) -> JournalEntry:
        """Record a new restore; refuses when one of the same instance is running or interrupted."""
        self._ensure()
        entry.process_start = process_start_time(entry.pid)
        self.check_clear(entry.source, entry.instance)
        path = self._path(entry.source, entry.instance)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            self.check_clear(entry.source, entry.instance)  # raced with another restore
            raise
        except OSError as exc:
            raise NotWritable(path=str(path), detail=f"cannot write the restore journal: {exc.strerror}") from exc
        os.close(fd)
        self.save(entry)
        return entry

    def save(self, entry: JournalEntry) -> None:
        """Write the entry durably (called before every step)."""
        entry.updated_at = to_iso(utcnow())
        try:
            write_durably(self._path(entry.source, entry.instance), entry.to_json())
        except OSError as exc:
            raise NotWritable(path=str(self.root), detail=f"cannot write the restore journal: {exc.strerror}; "
                              "nothing more is done until it can be written") from exc

    def adopt(self, entry: JournalEntry) -> JournalEntry:
        """Take over an interrupted entry (``--resume``/``--abort``): it is ours from now on."""
        entry.pid = os.getpid()
        entry.host = socket.gethostname()
        entry.process_start = process_start_time(entry.pid)
        self.save(entry)
        return entry

    def close(self, entry: JournalEntry, status: str) -> None:
        """The restore ended (done, rolled back, aborted): move its record to the history."""
        entry.status = status
        done = self.root / DONE_DIR
        with contextlib.suppress(OSError):
            done.mkdir(parents=True, exist_ok=True)
            write_durably(done / f"{entry.id}.json", entry.to_json())
            self._trim(done)
        try:
            self._path(entry.source, entry.instance).unlink(missing_ok=True)
            _fsync_dir(self.root)
        except OSError as exc:
            logger.warning("cannot remove the journal of restore %s: %s", entry.id, exc)

    @staticmethod
    def _trim(done: Path) -> None:
        records = sorted(done.glob("restore-*.json"))
        for old in records[:-KEEP_DONE]:
            old.unlink(missing_ok=True)

    def entries(self) -> list[JournalEntry]:
        """Every restore recorded as not finished (running or interrupted)."""
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob("*.json")):
            try:
                found.append(JournalEntry.from_json(path.read_bytes()))
            except (OSError, ValueError, TypeError) as exc:
                logger.warning("unreadable restore journal %s: %s", path, exc)
        return found

    def find(self, source: str, instance: str) -> JournalEntry | None:
        path = self._path(source, instance)
        try:
            return JournalEntry.from_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise BdrError(detail=f"the restore journal {path} is unreadable ({exc}); look at it, and remove it "
                           "once the instance is known to be in order") from exc

    def interrupted(self) -> list[JournalEntry]:
        return [e for e in self.entries() if not e.alive()]

    def check_clear(self, source: str, instance: str) -> None:
        """Raise when a restore of this instance is running or was interrupted."""
        entry = self.find(source, instance)
        if entry is None:
            return
        if entry.alive():
            raise RestoreInProgress(id=entry.id, source=source, instance=instance, pid=entry.pid, host=entry.host,
                                    step=entry.step)
        raise RestoreInterrupted(entry.interrupted_message())

    def history(self) -> list[JournalEntry]:
        done = self.root / DONE_DIR
        if not done.is_dir():
            return []
        out = []
        for path in sorted(done.glob("restore-*.json"), reverse=True):
            with contextlib.suppress(OSError, ValueError, TypeError):
                out.append(JournalEntry.from_json(path.read_bytes()))
        return out


def entries_of(repository: Path) -> Iterator[JournalEntry]:
    yield from Journal.at(repository).entries()
