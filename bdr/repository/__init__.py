"""The repository: where backup sets live, and the only code that knows its layout.

Layout over any :class:`~bdr.storage.Storage` (a directory or an S3 prefix)::

    <source>/<set-id>/<objects...>       dump.rdb, appendonlydir/..., or data.tar.zst
    <source>/<set-id>/.bdr-writing.json  written first, removed after the manifest: who writes the set
    <source>/<set-id>/manifest.json      written last: a set without it is incomplete
    <source>/<set-id>/verify.json        the latest verification result (optional)
    <source>/<set-id>/copy.json          how the set came here from another repository, and its check (``bdr copy``)
    locks/repository.lock                who is writing (pid, host, since, operation)
    locks/read-<set-id>-<pid>-<x>.json   a restore reading a set (prune keeps it)
    journal/                             the restore journal (not sets)
    archive/                             the continuous archive of Redis (not sets: bdr.engines.redis.archive.layout)

Only the ``SOURCES`` directories hold sets; other top-level names (``locks``, ``journal``,
``evidence``, ``archive``) are never scanned as sets.

**Writing** is all-or-nothing: the writing marker first (pid, host, boot id, the process's
start time, bdr version), then the objects, the manifest last, then the marker goes; a
failure or an interrupt deletes what was written.

**Good and damaged sets.** A set with a manifest that loads and whose digest (and MAC, when
the key is at hand) matches is *good*: :meth:`Repository.sets` lists it. Anything else in a
source directory is one of:

- *damaged* (:meth:`Repository.damaged`, a :class:`DamagedSet` with the reason): an
  unreadable or invalid manifest, a digest or MAC mismatch, a manifest naming another set,
  or a set directory with no manifest and no writing marker (nothing proves bdr left it).
  bdr never uses, sweeps or prunes a damaged set; ``latest`` skips it (and says so), an
  explicit id raises :class:`DamagedBackup`. The operator decides.
- *unfinished*: no manifest, and a writing marker. While its writer lives it is being
  written; once the marker proves the writer dead (a pid of this host that is gone or
  reused, another boot, or for another host a marker older than
  :data:`REMOTE_WRITER_TIMEOUT`), it is a crashed run's leftover and the next writer
  holding the lock sweeps it (:meth:`Repository.sweep_incomplete`), pending S3 multipart
  uploads included. A complete set with a marker left behind (a crash between the two
  writes) is complete: the sweep just removes the marker. An empty directory named like a
  set id (nothing was written into it) is swept too.

**Reading is checked before it is used**: :func:`extract_set` and
:meth:`Repository.open_object` check the manifest's digest (and MAC with the key), and hash
each stored object as it streams, failing with :class:`~bdr.errors.ChecksumMismatch` at its
end, before the caller does anything live with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from bdr import __version__
from bdr.errors import (
    BackupNotFound,
    BdrError,
    ChecksumMismatch,
    CorruptArchive,
    DamagedBackup,
    IncompleteBackup,
    LockWaitTimedOut,
    RepositoryLocked,
    UsageError,
)
from bdr.repository.archive import ArchiveMember, copy_to_file, write_archive
from bdr.repository.manifest import (
    CHUNK,
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    StoredObject,
    from_iso,
    load_manifest,
    manifest_problem,
    read_chunks,
    to_iso,
    utcnow,
)
from bdr.sources import source_names
from bdr.storage import Storage, open_storage
from bdr.storage.base import ObjectCipher as ObjectCipher  # the cipher a repository takes; it lives with the sinks
from bdr.storage.base import ObjectSink, WrittenObject, write_all
from bdr.util import progress
from bdr.util.host import pid_alive, process_start_time

logger = logging.getLogger(__name__)

SOURCES = source_names(with_all=True)
"""Every source (:mod:`bdr.sources`) and ``all``: the top-level directories of a repository."""
LOCK_KEY = "locks/repository.lock"
VERIFY_NAME = "verify.json"
COPY_NAME = "copy.json"
"""Beside the manifest of a set ``bdr copy`` wrote: where it came from, how, and the check of the copy."""
WRITING_MARKER = ".bdr-writing.json"
ARCHIVE_NAME = "data.tar.zst"
TAR_NAME = "data.tar"
LOAD_WORKERS = 8
LOCK_WAIT: ContextVar[float] = ContextVar("bdr_lock_wait", default=0.0)
"""How long :meth:`Repository.lock` waits for a lock another process holds (``--wait-lock``); 0: not at all."""
LOCK_POLL = 1.0
REMOTE_WRITER_TIMEOUT = 7 * 86400.0
"""How long the writing (or read) marker of a process on *another host* is taken for a live one.

bdr cannot ask another host whether a pid lives, so it waits: 7 days is far longer than any
backup or restore runs (the largest take hours) and short enough that a crashed off-site
upload does not hold storage for long. Markers of this host are judged at once (pid, start
time, boot id)."""
SET_ID = re.compile(r"^(?P<source>[a-z]+)-(?P<time>\d{8}T\d{6}Z)-[0-9a-f]+$")

NO_MANIFEST = ("no manifest: not left by a crashed bdr run; bdr leaves it alone; delete {path} yourself if it is "
               "not needed")
BAD_MARKER = ("no manifest, and its writing marker is unreadable; bdr leaves it alone; delete {path} yourself if "
              "it is not needed")
MISPLACED = "manifest names set {id!r} of {source}: copied or moved by hand"


def new_set_id(source: str, moment: datetime | None = None) -> str:
    """``redis-20250124T020000Z-1a2b3c``: source, UTC time, and a short random suffix."""
    moment = moment or utcnow()
    return f"{source}-{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def set_id_time(set_id: str) -> datetime | None:
    """When a set was started, from its id (None when the name is not a set id)."""
    match = SET_ID.match(set_id)
    if match is None:
        return None
    return datetime.strptime(match["time"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


# --- who is at work: the processes behind markers and locks -------------------------------------------


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


# --- records ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    """The latest result of ``bdr verify`` for a set."""

    at: str
    ok: bool
    restore_test: bool = False
    detail: str = ""


@dataclass(frozen=True, slots=True)
class BackupSet:
    """A complete backup set as listed from a repository."""

    manifest: Manifest
    repository: str
    location: str
    verification: Verification | None = None

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def source(self) -> str:
        return self.manifest.source

    @property
    def created(self) -> datetime:
        return self.manifest.finished

    @property
    def verified(self) -> bool:
        return bool(self.verification and self.verification.ok)

    @property
    def tags(self) -> tuple[str, ...]:
        return self.manifest.tags


@dataclass(frozen=True, slots=True)
class DamagedSet:
    """A set bdr will not use, sweep or prune, and why (see the module docstring)."""

    id: str
    source: str
    repository: str
    location: str
    """``local`` or ``s3``, as :attr:`BackupSet.location`."""
    path: str
    """Where it is: a directory, or ``s3://bucket/prefix/<source>/<id>``."""
    reason: str
    manifest: Manifest | None = None
    """The manifest as it reads, when it does (a digest or MAC mismatch): not to be trusted."""

    @property
    def created(self) -> datetime | None:
        """When it finished by its manifest, else when it started by its id (None: neither is known)."""
        if self.manifest is not None:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                return self.manifest.finished
        return set_id_time(self.id)

    @property
    def instance(self) -> str | None:
        return self.manifest.instance if self.manifest is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "instance": self.instance, "location": self.location,
                "path": self.path, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class SkippedSet:
    """A set ``latest`` passed over: damaged, or its last ``bdr verify`` failed."""

    id: str
    reason: str
    damaged: bool = True

    def describe(self) -> str:
        return f"{self.id} (damaged: {self.reason})" if self.damaged else f"{self.id} ({self.reason})"


@dataclass(frozen=True, slots=True)
class Unfinished:
    """A set without a manifest whose writing marker names its writer: being written, or left by a crash."""

    id: str
    source: str
    writer: WriterMarker | None
    """None: an empty set directory (nothing was written into it yet)."""
    gone: bool
    """The writer is certainly dead: the set is a leftover the sweep removes."""


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything in a repository's source directories, from one scan."""

    sets: tuple[BackupSet, ...] = ()
    """Good sets, newest first."""
    damaged: tuple[DamagedSet, ...] = ()
    """Newest first (by what is known of their time)."""
    unfinished: tuple[Unfinished, ...] = ()


Entry = BackupSet | DamagedSet | Unfinished


# --- checked reading ---------------------------------------------------------------------------------------


class CheckedReader(io.RawIOBase):
    """A stored object's bytes, hashed as they are read, checked against the manifest at their end.

    At the end of the stream (or as soon as it runs longer than recorded) a size or sha256
    that differs from :class:`~bdr.repository.manifest.StoredObject` raises
    :class:`~bdr.errors.ChecksumMismatch`, and keeps raising on every later read.
    """

    def __init__(self, raw: BinaryIO, obj: StoredObject, ref: str) -> None:
        super().__init__()
        self._raw = raw
        self._obj = obj
        self._ref = ref
        self._digest = hashlib.sha256()
        self._size = 0
        self._failure: ChecksumMismatch | None = None
        self.checked = False

    def readable(self) -> bool:
        return True

    def _fail(self, actual: str) -> ChecksumMismatch:
        self._failure = ChecksumMismatch(name=self._obj.name, ref=self._ref, expected=self._obj.sha256[:16],
                                         actual=actual)
        return self._failure

    def read(self, size: int | None = -1) -> bytes:
        if self._failure is not None:
            raise self._failure
        whole = size is None or size < 0
        data = self._raw.read() if size is None or size < 0 else self._raw.read(size)
        if data:
            self._digest.update(data)
            self._size += len(data)
            if self._size > self._obj.size:
                raise self._fail(f"more than the {self._obj.size} bytes recorded")
        if whole or (not data and size != 0):
            self.finish()
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def finish(self) -> None:
        """Compare what was read with the manifest (once the whole object was read)."""
        if self._failure is not None:
            raise self._failure
        if self.checked:
            return
        actual = self._digest.hexdigest()
        if self._size != self._obj.size or actual != self._obj.sha256:
            detail = actual[:16] if self._size == self._obj.size else f"{actual[:16]} ({self._size} bytes of " \
                                                                        f"{self._obj.size}: truncated?)"
            raise self._fail(detail)
        self.checked = True

    def drain(self) -> None:
        """Read the rest of the object and check it."""
        while self.read(CHUNK):
            pass
        self.finish()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class VerifiedStream(io.RawIOBase):
    """The plaintext of a stored object; its stored bytes are checked when the plaintext ends.

    Used as a context manager, a clean exit reads what the caller left (a tar's padding, the
    end of a zstd frame) so the check always runs before the ``with`` block is left; an exit
    by an exception just closes.
    """

    def __init__(self, plain: BinaryIO, checked: CheckedReader) -> None:
        super().__init__()
        self._plain = plain
        self._checked = checked

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        whole = size is None or size < 0
        data = self._plain.read() if size is None or size < 0 else self._plain.read(size)
        if whole or (not data and size != 0):
            self.verify()
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def verify(self) -> None:
        """Read what is left and check the stored object (raises ChecksumMismatch)."""
        while self._plain.read(CHUNK):
            pass
        self._checked.drain()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and not self.closed:
                self.verify()
        finally:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self._plain.close()
            self._checked.close()
        super().close()


# --- writing -------------------------------------------------------------------------------------------------


class SetWriter:
    """Writes one backup set: marker, objects, manifest, then the marker goes; aborting deletes everything."""

    def __init__(
        self,
        repo: Repository,
        source: str,
        instance: str,
        method: str,
        tags: Sequence[str] = (),
        cipher: ObjectCipher | None = None,
        set_id: str | None = None,
    ) -> None:
        self.repo = repo
        self.id = set_id or new_set_id(source)
        self.source = source
        self.instance = instance
        self.method = method
        self.tags = tuple(tags)
        self.cipher = cipher
        self.started_at = to_iso(utcnow())
        self.files: list[FileEntry] = []
        self.objects: list[StoredObject] = []
        self.facts: dict[str, Any] = {}
        self.children: list[str] = []
        self.compressed = False
        self.key_id: str | None = None
        self.manifest: Manifest | None = None
        self._prefix = f"{source}/{self.id}"
        self._marked = False
        self._object_cipher: ObjectCipher | None = None
        """The cipher of objects encrypted on their own (secrets): it seals the manifest of a plain set."""

    def __enter__(self) -> SetWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None or self.manifest is None:
            self.abort()

    def _mark(self) -> None:
        """Write the writing marker before the first object: the proof a crashed bdr left this set."""
        if not self._marked:
            self.repo.storage.put_bytes(f"{self._prefix}/{WRITING_MARKER}", WriterMarker.here(self.id).to_json())
            self._marked = True

    def _sink(self, name: str, cipher: ObjectCipher | None = None) -> ObjectSink:
        self._mark()
        sink = self.repo.storage.open_write(f"{self._prefix}/{name}")
        cipher = cipher or self.cipher
        return cipher.encrypting(sink) if cipher else sink

    def _task(self, name: str, total: int | None) -> progress.Task:
        verb = "upload" if self.repo.storage.location == "s3" else "write"
        return progress.task(f"{verb} {name}", total)

    def _record(self, name: str, written: WrittenObject, encrypted: bool = False) -> None:
        self.objects.append(
            StoredObject(
                name=name,
                size=written.size,
                sha256=written.sha256,
                parts=written.parts,
                part_size=written.part_size,
                encrypted=encrypted,
            )
        )

    def add_file(self, source: Path, name: str, secret: bool = False) -> FileEntry:
        """Store one file as its own object (an uncompressed set)."""
        with source.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            return self.add_stream(name, read_chunks(handle), secret=secret, mode=stat.st_mode & 0o7777,
                                   total=stat.st_size)

    def add_archive(self, members: Sequence[ArchiveMember], compress: bool = True, name: str | None = None,
                    cipher: ObjectCipher | None = None) -> list[FileEntry]:
        """Store files as one tar object (zstd-compressed when ``compress``).

        ``cipher`` encrypts this object even when the set is not encrypted (secrets); the
        manifest then lists its members without a plain sha256, and is sealed with a MAC
        under that key.
        """
        name = name or (ARCHIVE_NAME if compress else TAR_NAME)
        own_cipher = cipher is not None and self.cipher is None
        sink = self._sink(name, cipher)
        tracked = self._task(name, None)
        try:
            entries = write_archive(members, _TrackedSink(sink, tracked), compress=compress)
            written = sink.commit()
        except BaseException:
            sink.abort()
            raise
        finally:
            tracked.finish()
        self.compressed = compress
        self._record(name, written, encrypted=own_cipher)
        if cipher is not None:
            self.key_id = cipher.key_id
            self._object_cipher = cipher
            entries = [dataclasses.replace(e, sha256="") if e.secret else e for e in entries]
        self.files.extend(entries)
        return entries

    def add_bytes(self, name: str, data: bytes) -> None:
        """Store a small object (an engine's side file, e.g. collection configs)."""
        self._record(name, write_all(self._sink(name), data))

    def add_stream(self, name: str, chunks: Iterable[bytes], secret: bool = False,
                   mode: int | None = None, total: int | None = None) -> FileEntry:
        """Store the bytes ``chunks`` yields as one file of the set (an engine's streamed export).

        ``total``: how many bytes to expect, when known (for the progress bar only).
        """
        sink = self._sink(name)
        # a plain sink hashes what it stores, and that is the file itself: one sha256 pass, not two
        digest = hashlib.sha256() if self.cipher is not None else None
        size = 0
        tracked = self._task(name, total)
        try:
            for chunk in chunks:
                if chunk:
                    sink.write(chunk)
                    if digest is not None:
                        digest.update(chunk)
                    size += len(chunk)
                    tracked.advance(len(chunk))
            written = sink.commit()
        except BaseException:
            sink.abort()
            raise
        finally:
            tracked.finish()
        self._record(name, written)
        if mode is None:
            mode = 0o600 if secret else 0o644
        sha256 = digest.hexdigest() if digest is not None else written.sha256
        entry = FileEntry(path=name, size=size, sha256=sha256, mode=mode, secret=secret)
        self.files.append(entry)
        return entry

    def add_object(self, name: str, chunks: Iterable[bytes], *, cipher: ObjectCipher | None = None,
                   encrypted: bool = False, total: int | None = None) -> StoredObject:
        """Store the bytes ``chunks`` yields as the object ``name``, with no file entry (a copy of a stored object).

        ``cipher`` encrypts them on the way (a plain set re-encrypted); ``encrypted`` is what the
        manifest will say of the object (:attr:`StoredObject.encrypted`). The caller gives the
        manifest to :meth:`commit`.
        """
        sink = self._sink(name, cipher)
        tracked = self._task(name, total)
        try:
            for chunk in chunks:
                if chunk:
                    sink.write(chunk)
                    tracked.advance(len(chunk))
            written = sink.commit()
        except BaseException:
            sink.abort()
            raise
        finally:
            tracked.finish()
        self._record(name, written, encrypted=encrypted)
        return self.objects[-1]

    def commit(self, manifest: Manifest | None = None) -> Manifest:
        """Write the manifest (sealed with its digest, and a MAC when written with a key): the set exists.

        ``manifest``: write that one, as it is, instead of one made of what was added (a set
        copied from another repository keeps its id and its seal, or was sealed again by the copy).
        """
        if manifest is not None:
            if (manifest.id, manifest.source) != (self.id, self.source):
                raise ValueError(f"the manifest of {manifest.id} given to the writer of {self.id}")
            return self._write_manifest(manifest)
        return self._write_manifest(Manifest(
            id=self.id,
            source=self.source,
            instance=self.instance,
            method=self.method,
            started_at=self.started_at,
            finished_at=to_iso(utcnow()),
            files=tuple(self.files),
            objects=tuple(self.objects),
            compressed=self.compressed,
            encrypted=self.cipher is not None,
            key_id=self.cipher.key_id if self.cipher else self.key_id,
            tags=self.tags,
            facts=dict(self.facts),
            children=tuple(self.children),
        ).seal(self.cipher or self._object_cipher))

    def _write_manifest(self, manifest: Manifest) -> Manifest:
        self.repo.storage.put_bytes(f"{self._prefix}/{MANIFEST_NAME}", manifest.to_json())
        self.manifest = manifest
        if self._marked:
            try:
                self.repo.storage.delete(f"{self._prefix}/{WRITING_MARKER}")
            except Exception as exc:  # the set is complete; the next sweep removes the marker
                logger.warning("backup set %s: could not remove its writing marker: %s", self.id, exc)
        logger.info("backup set %s committed (%d objects)", self.id, len(self.objects))
        return manifest

    def abort(self) -> None:
        if self.manifest is not None:
            return
        level = logging.WARNING if self.objects else logging.DEBUG
        logger.log(level, "backup set %s aborted; removing its objects", self.id)
        with contextlib.suppress(Exception):
            self.repo.storage.delete_prefix(self._prefix)


class _TrackedSink:
    """An object sink that advances a progress task by the bytes written through it."""

    def __init__(self, sink: ObjectSink, tracked: progress.Task) -> None:
        self._sink = sink
        self._task = tracked

    def write(self, data: bytes) -> int:
        written = self._sink.write(data)
        self._task.advance(len(data))
        return written

    def commit(self) -> WrittenObject:
        return self._sink.commit()

    def abort(self) -> None:
        self._sink.abort()


# --- the repository -----------------------------------------------------------------------------------------


@dataclass
class Repository:
    """Backup sets over a storage."""

    storage: Storage
    cipher: ObjectCipher | None = None
    """The key at hand: when set, manifests' MACs are checked as sets are loaded."""
    skipped: list[SkippedSet] = field(default_factory=list)
    """The sets the last ``get("latest")`` passed over, damaged or failed by their verify (for the CLI to show)."""

    @classmethod
    def open(cls, location: str | Path, cipher: ObjectCipher | None = None, **options: Any) -> Repository:
        return cls(open_storage(location, **options), cipher)

    @property
    def url(self) -> str:
        return self.storage.url

    def _path(self, source: str, set_id: str) -> str:
        return f"{self.url.rstrip('/')}/{source}/{set_id}"

    def _sources(self, source: str | None = None) -> list[str]:
        """The source directories to scan: only ``SOURCES`` (``locks``, ``journal`` are not sets)."""
        if source is not None:
            return [source] if source in SOURCES else []
        present = set(self.storage.children(""))
        return [s for s in SOURCES if s in present]

    # --- locking -----------------------------------------------------------------------

    def _take_lock(self, info: LockInfo) -> LockInfo | None:
        """Try once: None when the lock is ours now, else who holds it."""
        if self.storage.create_exclusive(LOCK_KEY, info.to_json()):
            return None
        holder = self._lock_holder()
        if holder and holder.host == socket.gethostname() and holder.gone():
            logger.warning("removing stale lock of dead pid %d (%s)", holder.pid, holder.operation)
            self.storage.delete(LOCK_KEY)
            if self.storage.create_exclusive(LOCK_KEY, info.to_json()):
                return None
        if holder is None:  # released between the two requests: try again
            return None if self.storage.create_exclusive(LOCK_KEY, info.to_json()) else self._lock_holder() or info
        return holder

    def _acquire(self, info: LockInfo, wait: float) -> None:
        """Take the lock, waiting up to ``wait`` seconds while another process holds it."""
        begun = time.monotonic()
        announced = False
        while (holder := self._take_lock(info)) is not None:
            waited = time.monotonic() - begun
            fields = {"repo": self.url, "pid": holder.pid, "host": holder.host, "since": holder.since,
                      "operation": holder.operation, "path": f"{self.url}/{LOCK_KEY}"}
            if waited >= wait:
                if wait > 0:
                    from bdr.util.durations import format_duration

                    raise LockWaitTimedOut(waited=format_duration(wait), **fields)
                raise RepositoryLocked(**fields)
            if not announced:
                logger.warning("repository %s is locked by pid %d on %s (%s); waiting for it (up to %.0f s)",
                               self.url, holder.pid, holder.host, holder.operation, wait)
                announced = True
            time.sleep(min(LOCK_POLL, max(0.05, wait - waited)))

    @contextlib.contextmanager
    def lock(self, operation: str, wait: float | None = None) -> Iterator[LockInfo]:
        """Exclusive lock for writers (backup, prune, delete); sweeps what crashed bdr runs left.

        ``wait``: seconds to wait while another process holds it (default :data:`LOCK_WAIT`,
        ``--wait-lock``), then :class:`~bdr.errors.RepositoryLocked` (exit 5).
        """
        info = LockInfo.here(operation)
        self._acquire(info, LOCK_WAIT.get() if wait is None else wait)
        try:
            self.sweep_incomplete()
            yield info
        except BaseException:
            try:
                self.storage.delete(LOCK_KEY)
            except BdrError as exc:  # never hide why the work failed; the next run removes a dead pid's lock
                logger.warning("could not release the lock %s/%s: %s", self.url, LOCK_KEY, exc.message)
            raise
        else:
            self.storage.delete(LOCK_KEY)

    def _lock_holder(self) -> LockInfo | None:
        try:
            return LockInfo.from_json(self.storage.read_bytes(LOCK_KEY))
        except (BackupNotFound, ValueError, KeyError, TypeError):
            return None

    @contextlib.contextmanager
    def reading(self, set_id: str) -> Iterator[None]:
        """Mark a set as being read (by a restore) so prune leaves it alone."""
        key = f"locks/read-{set_id}-{os.getpid()}-{secrets.token_hex(2)}.json"
        self.storage.put_bytes(key, LockInfo.here(f"read {set_id}").to_json())
        try:
            yield
        finally:
            self.storage.delete(key)

    def _read_markers(self) -> Iterator[tuple[str, LockInfo]]:
        for name in self.storage.children("locks"):
            if not name.startswith("read-"):
                continue
            try:
                yield f"locks/{name}", LockInfo.from_json(self.storage.read_bytes(f"locks/{name}"))
            except (BackupNotFound, ValueError, KeyError, TypeError):
                continue

    def sets_being_read(self) -> set[str]:
        """Ids of sets a live process is reading (markers of dead processes are ignored)."""
        now = utcnow()
        return {info.operation.removeprefix("read ") for _key, info in self._read_markers() if not info.gone(now)}

    def sweep_incomplete(self) -> list[str]:
        """Delete what crashed bdr runs left, and nothing else. Call only while holding the lock.

        Removes sets without a manifest whose writing marker proves the writer dead (and
        aborts their pending multipart uploads), the stale markers of complete sets, empty
        set directories, and read markers of dead restores. A set without manifest and
        without marker is damaged and left alone. Returns the ids of the sets removed.
        """
        now = utcnow()
        swept: list[str] = []
        for source in self._sources():
            for set_id, names in self._set_index(source).items():
                prefix = f"{source}/{set_id}"
                if MANIFEST_NAME in names:
                    if WRITING_MARKER in names:  # the writer died between the manifest and removing the marker
                        logger.info("backup set %s is complete; removing its stale writing marker", set_id)
                        self.storage.delete(f"{prefix}/{WRITING_MARKER}")
                    continue
                entry = self._unfinished(source, set_id, names, now)
                if isinstance(entry, DamagedSet):
                    logger.info("leaving backup set %s alone: %s", set_id, entry.reason)
                    continue
                if not entry.gone:
                    continue
                if entry.writer is not None:
                    logger.warning("removing backup set %s left by a crashed bdr run (pid %d on %s, started %s)",
                                   set_id, entry.writer.pid, entry.writer.host, entry.writer.started)
                aborted = self.storage.abort_uploads(prefix)
                if aborted:
                    logger.info("aborted %d pending upload(s) of backup set %s", aborted, set_id)
                self.storage.delete_prefix(prefix)
                swept.append(set_id)
        for key, info in self._read_markers():
            if info.gone(now):
                logger.info("removing the read marker of a dead restore (pid %d on %s, %s)", info.pid, info.host,
                            info.operation)
                self.storage.delete(key)
        return swept

    # --- reading -------------------------------------------------------------------------

    def incomplete(self) -> list[str]:
        """Ids of sets without a manifest (being written, left by a crash, or damaged that way)."""
        out = []
        for source in self._sources():
            out += [set_id for set_id, names in self._set_index(source).items() if MANIFEST_NAME not in names]
        return sorted(out)

    def _set_index(self, source: str) -> dict[str, set[str]]:
        """The sets under ``source`` and the names of their objects, from two listings.

        Two listings for all the sets instead of a request per set: what keeps ``bdr list``
        and taking the lock fast on S3, where every request is a round trip.
        """
        index: dict[str, set[str]] = {set_id: set() for set_id in self.storage.children(source)}
        for key in self.storage.list(source):
            parts = key.split("/", 2)
            if len(parts) == 3:
                index.setdefault(parts[1], set()).add(parts[2])
        return index

    def _damaged(self, source: str, set_id: str, reason: str, manifest: Manifest | None = None) -> DamagedSet:
        return DamagedSet(set_id, source, self.url, self.storage.location, self._path(source, set_id), reason,
                          manifest)

    def _unfinished(self, source: str, set_id: str, names: set[str], now: datetime | None = None,
                    ) -> Unfinished | DamagedSet:
        """A set without a manifest: what its writing marker says (damaged without one)."""
        path = self._path(source, set_id)
        match = SET_ID.match(set_id)
        if not names and match is not None and match["source"] == source:
            return Unfinished(set_id, source, None, gone=True)  # an empty set directory: nothing to lose
        if WRITING_MARKER not in names:
            return self._damaged(source, set_id, NO_MANIFEST.format(path=path))
        try:
            marker = WriterMarker.from_json(self.storage.read_bytes(f"{source}/{set_id}/{WRITING_MARKER}"))
        except BackupNotFound:  # removed since the listing: its writer just committed or aborted
            return Unfinished(set_id, source, None, gone=False)
        except (ValueError, KeyError, TypeError):
            return self._damaged(source, set_id, BAD_MARKER.format(path=path))
        return Unfinished(set_id, source, marker, marker.gone(now))

    def _entry(self, source: str, set_id: str, names: set[str] | None) -> Entry | None:
        """What is at ``<source>/<set_id>`` (``names``: its objects, None when not listed yet); None: nothing."""
        try:
            raw = self.storage.read_bytes(f"{source}/{set_id}/{MANIFEST_NAME}")
        except BackupNotFound:
            if names is None:
                names = {key.split("/", 2)[2] for key in self.storage.list(f"{source}/{set_id}")
                         if key.count("/") >= 2}
                if not names and set_id not in self.storage.children(source):
                    return None
            return self._unfinished(source, set_id, names)
        loaded = load_manifest(raw)
        manifest = loaded.manifest
        if manifest is None or loaded.problem:
            return self._damaged(source, set_id, loaded.problem or "unreadable manifest", manifest)
        if manifest.id != set_id or manifest.source != source:
            return self._damaged(source, set_id, MISPLACED.format(id=manifest.id, source=manifest.source), manifest)
        problem = manifest_problem(manifest, self.cipher)
        if problem:
            return self._damaged(source, set_id, problem, manifest)
        verification = None
        if names is None or VERIFY_NAME in names:
            with contextlib.suppress(BackupNotFound, ValueError, TypeError):
                data = json.loads(self.storage.read_bytes(f"{source}/{set_id}/{VERIFY_NAME}"))
                verification = Verification(**data)
        return BackupSet(manifest, self.url, self.storage.location, verification)

    def catalog(self, source: str | None = None) -> Catalog:
        """Good, damaged and unfinished sets (of ``source``), from one scan; never raises for one bad set."""
        listed = [(src, set_id, names) for src in self._sources(source)
                  for set_id, names in self._set_index(src).items()]
        # manifests are fetched a few at a time: on S3 each read is a round trip
        with ThreadPoolExecutor(max_workers=LOAD_WORKERS) as pool:
            entries = list(pool.map(lambda item: self._entry(*item), listed))
        good = sorted((e for e in entries if isinstance(e, BackupSet)), key=lambda b: b.manifest.finished_at,
                      reverse=True)
        damaged = sorted((e for e in entries if isinstance(e, DamagedSet)), key=_damaged_order, reverse=True)
        unfinished = tuple(e for e in entries if isinstance(e, Unfinished))
        for entry in damaged:
            logger.debug("damaged backup set %s: %s", entry.id, entry.reason)
        return Catalog(tuple(good), tuple(damaged), unfinished)

    def sets(self, source: str | None = None, include_safety: bool = True) -> list[BackupSet]:
        """Good sets, newest first (damaged and unfinished ones are never listed here)."""
        return [b for b in self.catalog(source).sets if include_safety or "safety" not in b.tags]

    def damaged(self, source: str | None = None) -> list[DamagedSet]:
        """Damaged sets, newest first: what bdr will not use, sweep or prune, with the reason."""
        return list(self.catalog(source).damaged)

    def latest(self, source: str | None = None, instance: str | None = None) -> BackupSet:
        """The newest good set of ``source`` (and ``instance``): not a safety backup, not damaged, and not failed by
        its last ``bdr verify``. What it passed over is logged and kept in :attr:`skipped`."""
        catalog = self.catalog(source)

        def mine(found_instance: str | None, tags: Sequence[str]) -> bool:
            return "safety" not in tags and (instance is None or found_instance == instance)

        ours = [b for b in catalog.sets if mine(b.manifest.instance, b.tags)]
        good = [b for b in ours if b.verification is None or b.verification.ok]
        chosen = good[0] if good else None
        cutoff = chosen.manifest.started.replace(microsecond=0) if chosen else None
        failed = [SkippedSet(b.id, f"its last verify failed at {b.verification.at}"
                             + (f": {b.verification.detail}" if b.verification.detail else ""), damaged=False)
                  for b in ours if b.verification is not None and not b.verification.ok
                  and (cutoff is None or b.created >= cutoff)]
        damaged = [SkippedSet(d.id, d.reason) for d in catalog.damaged
                   if mine(d.instance if d.manifest is not None else instance,
                           d.manifest.tags if d.manifest is not None else ())
                   and (cutoff is None or d.created is None or d.created >= cutoff)]
        self.skipped = [*failed, *damaged]
        for skipped in self.skipped:
            logger.warning("latest skipped %s", skipped.describe())
        if chosen is None:
            what = " ".join(part for part in (source, instance) if part)
            raise BackupNotFound(ref=f"latest {what}".strip(), repo=self.url)
        return chosen

    def find(self, ref: str, source: str | None = None, instance: str | None = None) -> BackupSet | DamagedSet:
        """A set by id, unique id prefix, or ``latest`` (of ``source``, ``instance``: see :meth:`latest`); a damaged
        one named by id is returned, not raised."""
        if ref == "latest":
            return self.latest(source, instance)
        src = ref.split("-", 1)[0]
        if src in SOURCES and "/" not in ref:
            exact = self._entry(src, ref, None)
            if isinstance(exact, BackupSet | DamagedSet):
                return exact
            if isinstance(exact, Unfinished):
                raise IncompleteBackup(ref=ref)
        catalog = self.catalog(source)
        matches: list[BackupSet | DamagedSet] = [b for b in catalog.sets if b.id.startswith(ref)]
        matches += [d for d in catalog.damaged if d.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UsageError(detail=f"backup id prefix {ref!r} is ambiguous: {', '.join(m.id for m in matches[:5])}")
        raise BackupNotFound(ref=ref, repo=self.url)

    def get(self, ref: str, source: str | None = None) -> BackupSet:
        """A good set by id, unique id prefix, or ``latest``; :class:`DamagedBackup` for a damaged one."""
        found = self.find(ref, source)
        if isinstance(found, DamagedSet):
            raise DamagedBackup(ref=found.id, reason=found.reason)
        return found

    def check_manifest(self, backup: BackupSet, cipher: ObjectCipher | None = None) -> None:
        """Raise :class:`DamagedBackup` unless the manifest's digest (and MAC, with a key) matches."""
        problem = manifest_problem(backup.manifest, cipher or self.cipher)
        if problem:
            raise DamagedBackup(ref=backup.id, reason=problem)

    def open_object(self, backup: BackupSet, name: str, cipher: ObjectCipher | None = None, *,
                    check_manifest: bool = True) -> BinaryIO:
        """A stream of one object's plaintext (decrypted when encrypted), checked as it is read.

        The stored bytes are hashed on their way through: at the end of the object (or on a
        clean exit of a ``with`` block) a size or sha256 other than the manifest's raises
        :class:`~bdr.errors.ChecksumMismatch`. The manifest's digest (and MAC with ``cipher``)
        is checked first unless ``check_manifest`` is false (the caller did).
        """
        if check_manifest:
            self.check_manifest(backup, cipher)
        try:
            obj = backup.manifest.object(name)
        except KeyError:
            raise CorruptArchive(name=f"{backup.id}/{name}", detail="not an object of this set's manifest") from None
        if (backup.manifest.encrypted or obj.encrypted) and cipher is None:
            from bdr.errors import MissingKey

            raise MissingKey(
                detail=f"backup {backup.id} is encrypted (key id {backup.manifest.key_id}); "
                "give the key with --key-file or $BDR_KEY"
            )
        raw = progress.reading(self.storage.open_read(f"{backup.source}/{backup.id}/{name}"),
                               f"{self._verb('read')} {name}", obj.size)
        checked = CheckedReader(raw, obj, backup.id)
        plain: BinaryIO = cast(BinaryIO, checked)
        if backup.manifest.encrypted or obj.encrypted:
            assert cipher is not None
            plain = cipher.decrypting(plain, name)
        return cast(BinaryIO, VerifiedStream(plain, checked))

    def open_stored(self, backup: BackupSet, name: str) -> CheckedReader:
        """A stream of one object's stored bytes as they are (never decrypted), checked as it is read.

        What ``bdr copy`` sends elsewhere: at the end of the object a size or sha256 other than
        the manifest's raises :class:`~bdr.errors.ChecksumMismatch`, so a tampered object is
        never written as a good one. The caller checked the manifest (it has the set from a
        listing, which checks its digest, and its MAC with the key at hand).
        """
        try:
            obj = backup.manifest.object(name)
        except KeyError:
            raise CorruptArchive(name=f"{backup.id}/{name}", detail="not an object of this set's manifest") from None
        raw = progress.reading(self.storage.open_read(f"{backup.source}/{backup.id}/{name}"),
                               f"{self._verb('read')} {name}", obj.size)
        return CheckedReader(raw, obj, backup.id)

    def _verb(self, local: str) -> str:
        """How a progress line names reading from here: ``download`` from S3, else ``local``."""
        return "download" if self.storage.location == "s3" else local

    def object_keys(self, backup: BackupSet) -> list[str]:
        """Storage keys of a set's objects, manifest included (e.g. to thaw them from an archive tier)."""
        prefix = f"{backup.source}/{backup.id}"
        return [f"{prefix}/{obj.name}" for obj in backup.manifest.objects] + [f"{prefix}/{MANIFEST_NAME}"]

    def check_objects(self, backup: BackupSet) -> list[str]:
        """Re-hash every stored object against the manifest; returns the problems found."""
        problems = []
        for obj in backup.manifest.objects:
            digest = hashlib.sha256()
            size = 0
            try:
                with progress.reading(self.storage.open_read(f"{backup.source}/{backup.id}/{obj.name}"),
                                      f"{self._verb('check')} {obj.name}", obj.size) as stream:
                    while chunk := stream.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
            except BackupNotFound:
                problems.append(f"{obj.name}: missing")
                continue
            if size != obj.size:
                problems.append(f"{obj.name}: size {size} != {obj.size} (truncated?)")
            elif digest.hexdigest() != obj.sha256:
                problems.append(
                    str(ChecksumMismatch(name=obj.name, ref=backup.id, expected=obj.sha256[:16],
                                         actual=digest.hexdigest()[:16]))
                )
        return problems

    # --- writing -------------------------------------------------------------------------

    def new_set(
        self,
        source: str,
        instance: str,
        method: str,
        tags: Sequence[str] = (),
        cipher: ObjectCipher | None = None,
    ) -> SetWriter:
        if source not in SOURCES:
            raise UsageError(detail=f"unknown source {source!r}; one of {', '.join(SOURCES)}")
        return SetWriter(self, source, instance, method, tags, cipher)

    def record_verification(self, backup: BackupSet, result: Verification) -> None:
        data = {"at": result.at, "ok": result.ok, "restore_test": result.restore_test, "detail": result.detail}
        self.storage.put_bytes(f"{backup.source}/{backup.id}/{VERIFY_NAME}", json.dumps(data).encode())

    def record_copy(self, backup: BackupSet, record: dict[str, Any]) -> None:
        """Write the copy note (:data:`COPY_NAME`) of a set ``bdr copy`` wrote or found here."""
        self.storage.put_bytes(f"{backup.source}/{backup.id}/{COPY_NAME}", json.dumps(record, sort_keys=True).encode())

    def copy_record(self, backup: BackupSet) -> dict[str, Any] | None:
        """The copy note of a set (None: there is none, or it is unreadable)."""
        try:
            data = json.loads(self.storage.read_bytes(f"{backup.source}/{backup.id}/{COPY_NAME}"))
        except (BackupNotFound, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def delete(self, backup: BackupSet) -> None:
        """Delete a set: manifest first, so a half-deleted set is never taken for a good one."""
        prefix = f"{backup.source}/{backup.id}"
        self.storage.delete(f"{prefix}/{MANIFEST_NAME}")
        self.storage.delete_prefix(prefix)
        logger.info("deleted backup set %s", backup.id)


def _damaged_order(damaged: DamagedSet) -> tuple[str, str]:
    created = damaged.created
    return (to_iso(created) if created is not None else "", damaged.id)


def age_seconds(backup: BackupSet, now: datetime | None = None) -> float:
    return ((now or utcnow()) - backup.created).total_seconds()


def parse_time(text: str) -> datetime:
    return from_iso(text)


def extract_set(
    repo: Repository, backup: BackupSet, dest: Path, cipher: ObjectCipher | None = None, *,
    check_manifest: bool = True,
) -> list[FileEntry]:
    """Copy a set's files into ``dest`` (decrypting and unpacking), all of it checked against the manifest.

    First the manifest's digest (and MAC, with ``cipher``: :class:`DamagedBackup`), then every
    stored object's size and sha256 as it streams (side objects too), then every file's.
    Raises :class:`~bdr.errors.ChecksumMismatch` or :class:`~bdr.errors.CorruptArchive` on the
    first that does not match; ``dest`` then holds a partial copy the caller discards.
    ``check_manifest=False``: the caller reports the manifest's state itself (``bdr verify``).
    """
    from bdr.repository.archive import extract_archive

    if check_manifest:
        repo.check_manifest(backup, cipher)
    dest.mkdir(parents=True, exist_ok=True)
    expected = {f.path: f for f in backup.manifest.files}
    found: list[FileEntry] = []
    for obj in backup.manifest.objects:
        with repo.open_object(backup, obj.name, cipher, check_manifest=False) as stream:
            if obj.name not in expected and obj.name.endswith((".tar.zst", ".tar")):
                found.extend(extract_archive(stream, dest, name=f"{backup.id}/{obj.name}"))
                continue
            if obj.name not in expected:
                continue  # an engine side object (read by the engine itself): checked on leaving the block
            target = dest / obj.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if backup.manifest.encrypted or obj.encrypted:
                sha256, size = copy_to_file(stream, target)
            else:  # the stored bytes are the file: the stream checks their size and sha256 at its end
                size = copy_to_file(stream, target, hashed=False)[1]
                sha256 = obj.sha256
            entry = expected[obj.name]
            if entry.mode is not None:
                os.chmod(target, entry.mode & 0o7777)
            found.append(FileEntry(obj.name, size, sha256, entry.mode, entry.secret))
    seen = {f.path: f for f in found}
    for path, entry in expected.items():
        got = seen.get(path)
        if got is None:
            raise CorruptArchive(name=f"{backup.id}", detail=f"file {path!r} listed in the manifest is missing")
        if got.size != entry.size or (entry.sha256 and got.sha256 != entry.sha256):
            raise ChecksumMismatch(name=path, ref=backup.id, expected=entry.sha256[:16], actual=got.sha256[:16])
    return found
