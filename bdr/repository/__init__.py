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

This module is :class:`Repository` and :func:`extract_set`; beside it: :mod:`.layout` (the
names and set ids), :mod:`.markers` (who is at work: writing markers, the lock), :mod:`.records`
(good, damaged and unfinished sets), :mod:`.streams` (checked reading), :mod:`.writer`
(:class:`SetWriter`), :mod:`.manifest`, :mod:`.archive`, :mod:`.retention`, :mod:`.evidence`.
Everything is imported from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

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
from bdr.repository.archive import copy_to_file
from bdr.repository.layout import (
    BAD_MARKER,
    COPY_NAME,
    LOAD_WORKERS,
    LOCK_KEY,
    LOCK_POLL,
    LOCK_WAIT,
    MISPLACED,
    NO_MANIFEST,
    REMOTE_WRITER_TIMEOUT,
    SET_ID,
    SOURCES,
    VERIFY_NAME,
    WRITING_MARKER,
)
from bdr.repository.manifest import (
    CHUNK,
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    from_iso,
    load_manifest,
    manifest_problem,
    to_iso,
    utcnow,
)
from bdr.repository.markers import LockInfo, WriterMarker
from bdr.repository.records import BackupSet, Catalog, DamagedSet, Entry, SkippedSet, Unfinished, Verification
from bdr.repository.streams import CheckedReader, VerifiedStream
from bdr.repository.writer import SetWriter
from bdr.storage import Storage, open_storage
from bdr.storage.base import ObjectCipher as ObjectCipher  # the cipher a repository takes; it lives with the sinks
from bdr.util import progress

logger = logging.getLogger(__name__)


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


__all__ = [
    "ARCHIVE_NAME",
    "BAD_MARKER",
    "COPY_NAME",
    "LOAD_WORKERS",
    "LOCK_KEY",
    "LOCK_POLL",
    "LOCK_WAIT",
    "MISPLACED",
    "NO_MANIFEST",
    "REMOTE_WRITER_TIMEOUT",
    "SET_ID",
    "SOURCES",
    "TAR_NAME",
    "VERIFY_NAME",
    "WRITING_MARKER",
    "BackupSet",
    "Catalog",
    "CheckedReader",
    "DamagedSet",
    "Entry",
    "LockInfo",
    "ObjectCipher",
    "Repository",
    "SetWriter",
    "SkippedSet",
    "Unfinished",
    "Verification",
    "VerifiedStream",
    "WriterMarker",
    "age_seconds",
    "boot_id",
    "extract_set",
    "new_set_id",
    "parse_time",
    "process_gone",
    "set_id_time",
]
