"""The repository: where backup sets live, and the only code that knows its layout.

Layout over any :class:`~bdr.storage.Storage` (a directory or an S3 prefix)::

    <source>/<set-id>/<objects...>      dump.rdb, appendonlydir/..., or data.tar.zst
    <source>/<set-id>/manifest.json     written last: a set without it is incomplete
    <source>/<set-id>/verify.json       the latest verification result (optional)
    locks/repository.lock               who is writing (pid, host, since, operation)
    locks/read-<set-id>-<pid>.json      a restore reading a set (prune keeps it)

Writing is all-or-nothing: objects are written first, the manifest last; a failure or an
interrupt deletes what was written; a set left by a process that was killed (no manifest)
is never listed as good and is swept by the next writer holding the lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import socket
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from bdr.archive import ArchiveMember, write_archive
from bdr.errors import (
    BackupNotFound,
    ChecksumMismatch,
    IncompleteBackup,
    RepositoryLocked,
    UsageError,
)
from bdr.host import pid_alive
from bdr.manifest import (
    CHUNK,
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    StoredObject,
    copy_hashed,
    from_iso,
    read_chunks,
    to_iso,
    utcnow,
)
from bdr.storage import Storage, open_storage
from bdr.storage.base import ObjectSink, WrittenObject, write_all

logger = logging.getLogger(__name__)

SOURCES = ("redis", "qdrant", "config", "all")
LOCK_KEY = "locks/repository.lock"
VERIFY_NAME = "verify.json"
ARCHIVE_NAME = "data.tar.zst"
TAR_NAME = "data.tar"
LOAD_WORKERS = 8


class ObjectCipher(Protocol):
    """Encrypts objects on their way into the repository and decrypts them on the way out."""

    key_id: str

    def encrypting(self, sink: ObjectSink) -> ObjectSink: ...

    def decrypting(self, stream: BinaryIO, name: str) -> BinaryIO: ...


def new_set_id(source: str, moment: datetime | None = None) -> str:
    """``redis-20250124T020000Z-1a2b3c``: source, UTC time, and a short random suffix."""
    moment = moment or utcnow()
    return f"{source}-{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


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
class LockInfo:
    pid: int
    host: str
    since: str
    operation: str

    def to_json(self) -> bytes:
        return json.dumps(
            {"pid": self.pid, "host": self.host, "since": self.since, "operation": self.operation}
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> LockInfo:
        data = json.loads(raw)
        return cls(int(data["pid"]), str(data["host"]), str(data["since"]), str(data.get("operation", "?")))


class SetWriter:
    """Writes one backup set: objects first, manifest last; aborting deletes everything written."""

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

    def __enter__(self) -> SetWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None or self.manifest is None:
            self.abort()

    def _sink(self, name: str, cipher: ObjectCipher | None = None) -> ObjectSink:
        sink = self.repo.storage.open_write(f"{self._prefix}/{name}")
        cipher = cipher or self.cipher
        return cipher.encrypting(sink) if cipher else sink

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
            return self.add_stream(name, read_chunks(handle), secret=secret,
                                   mode=os.fstat(handle.fileno()).st_mode & 0o7777)

    def add_archive(self, members: Sequence[ArchiveMember], compress: bool = True, name: str | None = None,
                    cipher: ObjectCipher | None = None) -> list[FileEntry]:
        """Store files as one tar object (zstd-compressed when ``compress``).

        ``cipher`` encrypts this object even when the set is not encrypted (secrets); the
        manifest then lists its members without a plain sha256.
        """
        name = name or (ARCHIVE_NAME if compress else TAR_NAME)
        own_cipher = cipher is not None and self.cipher is None
        sink = self._sink(name, cipher)
        try:
            entries = write_archive(members, sink, compress=compress)
            written = sink.commit()
        except BaseException:
            sink.abort()
            raise
        self.compressed = compress
        self._record(name, written, encrypted=own_cipher)
        if cipher is not None:
            self.key_id = cipher.key_id
            entries = [dataclasses.replace(e, sha256="") if e.secret else e for e in entries]
        self.files.extend(entries)
        return entries

    def add_bytes(self, name: str, data: bytes) -> None:
        """Store a small object (an engine's side file, e.g. collection configs)."""
        self._record(name, write_all(self._sink(name), data))

    def add_stream(self, name: str, chunks: Iterable[bytes], secret: bool = False,
                   mode: int | None = None) -> FileEntry:
        """Store the bytes ``chunks`` yields as one file of the set (an engine's streamed export)."""
        import hashlib

        sink = self._sink(name)
        digest = hashlib.sha256()
        size = 0
        try:
            for chunk in chunks:
                if chunk:
                    sink.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            written = sink.commit()
        except BaseException:
            sink.abort()
            raise
        self._record(name, written)
        if mode is None:
            mode = 0o600 if secret else 0o644
        entry = FileEntry(path=name, size=size, sha256=digest.hexdigest(), mode=mode, secret=secret)
        self.files.append(entry)
        return entry

    def commit(self) -> Manifest:
        """Write the manifest: from now on the set exists."""
        manifest = Manifest(
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
        )
        self.repo.storage.put_bytes(f"{self._prefix}/{MANIFEST_NAME}", manifest.to_json())
        self.manifest = manifest
        logger.info("backup set %s committed (%d objects)", self.id, len(self.objects))
        return manifest

    def abort(self) -> None:
        if self.manifest is not None:
            return
        level = logging.WARNING if self.objects else logging.DEBUG
        logger.log(level, "backup set %s aborted; removing its objects", self.id)
        with contextlib.suppress(Exception):
            self.repo.storage.delete_prefix(self._prefix)


@dataclass
class Repository:
    """Backup sets over a storage."""

    storage: Storage
    _cache: dict[str, BackupSet] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, location: str | Path, **options: Any) -> Repository:
        return cls(open_storage(location, **options))

    @property
    def url(self) -> str:
        return self.storage.url

    # --- locking -----------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, operation: str) -> Iterator[LockInfo]:
        """Exclusive lock for writers (backup, prune, delete); sweeps sets left incomplete by a crash."""
        info = LockInfo(os.getpid(), socket.gethostname(), to_iso(utcnow()), operation)
        if not self.storage.create_exclusive(LOCK_KEY, info.to_json()):
            holder = self._lock_holder()
            if holder and holder.host == socket.gethostname() and not pid_alive(holder.pid):
                logger.warning("removing stale lock of dead pid %d (%s)", holder.pid, holder.operation)
                self.storage.delete(LOCK_KEY)
                if self.storage.create_exclusive(LOCK_KEY, info.to_json()):
                    holder = None
            if holder is not None:
                raise RepositoryLocked(
                    repo=self.url,
                    pid=holder.pid,
                    host=holder.host,
                    since=holder.since,
                    operation=holder.operation,
                    path=f"{self.url}/{LOCK_KEY}",
                )
        try:
            self.sweep_incomplete()
            yield info
        finally:
            self.storage.delete(LOCK_KEY)

    def _lock_holder(self) -> LockInfo | None:
        try:
            return LockInfo.from_json(self.storage.read_bytes(LOCK_KEY))
        except (BackupNotFound, ValueError, KeyError):
            return None

    @contextlib.contextmanager
    def reading(self, set_id: str) -> Iterator[None]:
        """Mark a set as being read (by a restore) so prune leaves it alone."""
        key = f"locks/read-{set_id}-{os.getpid()}-{secrets.token_hex(2)}.json"
        info = LockInfo(os.getpid(), socket.gethostname(), to_iso(utcnow()), f"read {set_id}")
        self.storage.put_bytes(key, info.to_json())
        try:
            yield
        finally:
            self.storage.delete(key)

    def sets_being_read(self) -> set[str]:
        """Ids of sets a live process is reading (stale markers of dead local pids are ignored)."""
        busy: set[str] = set()
        for name in self.storage.children("locks"):
            if not name.startswith("read-"):
                continue
            try:
                info = LockInfo.from_json(self.storage.read_bytes(f"locks/{name}"))
            except (BackupNotFound, ValueError, KeyError):
                continue
            if info.host == socket.gethostname() and not pid_alive(info.pid):
                continue
            busy.add(info.operation.removeprefix("read "))
        return busy

    def sweep_incomplete(self) -> list[str]:
        """Delete sets with no manifest (left by a killed backup). Call only while holding the lock."""
        swept = []
        for source in self.storage.children(""):
            if source == "locks":
                continue
            for set_id, names in self._set_index(source).items():
                if MANIFEST_NAME not in names:
                    logger.warning("removing incomplete backup set %s", set_id)
                    self.storage.delete_prefix(f"{source}/{set_id}")
                    swept.append(set_id)
        return swept

    # --- reading -------------------------------------------------------------------------

    def incomplete(self) -> list[str]:
        """Ids of sets without a manifest."""
        out = []
        for source in self.storage.children(""):
            if source == "locks":
                continue
            out += [set_id for set_id, names in self._set_index(source).items() if MANIFEST_NAME not in names]
        return out

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

    def _load(self, source: str, set_id: str, verified: bool = True) -> BackupSet | None:
        """The set, or None without a manifest; ``verified=False``: it has no verify.json, don't look."""
        try:
            raw = self.storage.read_bytes(f"{source}/{set_id}/{MANIFEST_NAME}")
        except BackupNotFound:
            return None
        manifest = Manifest.from_json(raw, name=f"{set_id}/{MANIFEST_NAME}")
        verification = None
        if verified:
            with contextlib.suppress(BackupNotFound, ValueError, TypeError):
                data = json.loads(self.storage.read_bytes(f"{source}/{set_id}/{VERIFY_NAME}"))
                verification = Verification(**data)
        return BackupSet(manifest, self.url, self.storage.location, verification)

    def sets(self, source: str | None = None, include_safety: bool = True) -> list[BackupSet]:
        """Complete sets, newest first."""
        sources = [source] if source else [s for s in self.storage.children("") if s != "locks"]
        complete = [
            (src, set_id, VERIFY_NAME in names)
            for src in sources
            for set_id, names in self._set_index(src).items()
            if MANIFEST_NAME in names
        ]
        # manifests are fetched a few at a time: on S3 each read is a round trip
        with ThreadPoolExecutor(max_workers=LOAD_WORKERS) as pool:
            loaded = list(pool.map(lambda c: self._load(*c), complete))
        found = [b for b in loaded if b is not None and (include_safety or "safety" not in b.tags)]
        found.sort(key=lambda b: b.manifest.finished_at, reverse=True)
        return found

    def get(self, ref: str, source: str | None = None) -> BackupSet:
        """A set by id, unique id prefix, or ``latest`` (of ``source``)."""
        if ref == "latest":
            candidates = self.sets(source, include_safety=False)
            if not candidates:
                raise BackupNotFound(ref=f"latest {source or ''}".strip(), repo=self.url)
            return candidates[0]
        src = ref.split("-", 1)[0]
        if src in SOURCES and "/" not in ref:
            exact = self._load(src, ref)
            if exact is not None:
                return exact
            if self.storage.exists(f"{src}/{ref}") or ref in self.storage.children(src):
                raise IncompleteBackup(ref=ref)
        matches = [b for b in self.sets(source) if b.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UsageError(detail=f"backup id prefix {ref!r} is ambiguous: {', '.join(m.id for m in matches[:5])}")
        raise BackupNotFound(ref=ref, repo=self.url)

    def open_object(self, backup: BackupSet, name: str, cipher: ObjectCipher | None = None) -> BinaryIO:
        """A stream of one object's plaintext (decrypted when the set is encrypted)."""
        stream = self.storage.open_read(f"{backup.source}/{backup.id}/{name}")
        own = next((o.encrypted for o in backup.manifest.objects if o.name == name), False)
        if backup.manifest.encrypted or own:
            if cipher is None:
                from bdr.errors import MissingKey

                stream.close()
                raise MissingKey(
                    detail=f"backup {backup.id} is encrypted (key id {backup.manifest.key_id}); "
                    "give the key with --key-file or $BDR_KEY"
                )
            return cipher.decrypting(stream, name)
        return stream

    def object_keys(self, backup: BackupSet) -> list[str]:
        """Storage keys of a set's objects, manifest included (e.g. to thaw them from an archive tier)."""
        prefix = f"{backup.source}/{backup.id}"
        return [f"{prefix}/{obj.name}" for obj in backup.manifest.objects] + [f"{prefix}/{MANIFEST_NAME}"]

    def check_objects(self, backup: BackupSet) -> list[str]:
        """Re-hash every stored object against the manifest; returns the problems found."""
        import hashlib

        problems = []
        for obj in backup.manifest.objects:
            digest = hashlib.sha256()
            size = 0
            try:
                with self.storage.open_read(f"{backup.source}/{backup.id}/{obj.name}") as stream:
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

    def delete(self, backup: BackupSet) -> None:
        """Delete a set: manifest first, so a half-deleted set is never taken for a good one."""
        prefix = f"{backup.source}/{backup.id}"
        self.storage.delete(f"{prefix}/{MANIFEST_NAME}")
        self.storage.delete_prefix(prefix)
        logger.info("deleted backup set %s", backup.id)


def age_seconds(backup: BackupSet, now: datetime | None = None) -> float:
    return ((now or utcnow()) - backup.created).total_seconds()


def parse_time(text: str) -> datetime:
    return from_iso(text)



def extract_set(
    repo: Repository, backup: BackupSet, dest: Path, cipher: ObjectCipher | None = None
) -> list[FileEntry]:
    """Copy a set's files into ``dest`` (decrypting and unpacking), each checked against the manifest.

    Raises :class:`~bdr.errors.ChecksumMismatch` or :class:`~bdr.errors.CorruptArchive` on the
    first file that does not match; ``dest`` then holds a partial copy the caller discards.
    """

    from bdr.archive import extract_archive
    from bdr.errors import CorruptArchive

    dest.mkdir(parents=True, exist_ok=True)
    expected = {f.path: f for f in backup.manifest.files}
    found: list[FileEntry] = []
    for obj in backup.manifest.objects:
        stream = repo.open_object(backup, obj.name, cipher)
        with stream:
            if obj.name not in expected and obj.name.endswith((".tar.zst", ".tar")):
                found.extend(extract_archive(stream, dest, name=f"{backup.id}/{obj.name}"))
                continue
            if obj.name not in expected:
                continue  # an engine side object (read by the engine itself)
            target = dest / obj.name
            target.parent.mkdir(parents=True, exist_ok=True)
            sha256, size = copy_hashed(stream, target)
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
