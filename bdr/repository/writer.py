"""Writing one backup set, all or nothing: the writing marker first, then the objects, the manifest last."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bdr.repository.archive import ArchiveMember, write_archive
from bdr.repository.layout import ARCHIVE_NAME, TAR_NAME, WRITING_MARKER, new_set_id
from bdr.repository.manifest import (
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    StoredObject,
    read_chunks,
    to_iso,
    utcnow,
)
from bdr.repository.markers import WriterMarker
from bdr.storage.base import ObjectCipher, ObjectSink, WrittenObject, write_all
from bdr.util import progress

if TYPE_CHECKING:
    from bdr.repository import Repository


logger = logging.getLogger(__name__)

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
        # a plain sink hashes what it stores, and that is the file itself: one sha256 pass, not two
        digest = hashlib.sha256() if self.cipher is not None else None
        written, size = self._pump(name, chunks, None, total, digest)
        self._record(name, written)
        if mode is None:
            mode = 0o600 if secret else 0o644
        sha256 = digest.hexdigest() if digest is not None else written.sha256
        entry = FileEntry(path=name, size=size, sha256=sha256, mode=mode, secret=secret)
        self.files.append(entry)
        return entry

    def _pump(self, name: str, chunks: Iterable[bytes], cipher: ObjectCipher | None, total: int | None,
              digest: Any = None) -> tuple[WrittenObject, int]:
        """``chunks`` into the object ``name`` (``digest`` updated on the way); aborted on any failure."""
        sink = self._sink(name, cipher)
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
        return written, size

    def add_object(self, name: str, chunks: Iterable[bytes], *, cipher: ObjectCipher | None = None,
                   encrypted: bool = False, total: int | None = None) -> StoredObject:
        """Store the bytes ``chunks`` yields as the object ``name``, with no file entry (a copy of a stored object).

        ``cipher`` encrypts them on the way (a plain set re-encrypted); ``encrypted`` is what the
        manifest will say of the object (:attr:`StoredObject.encrypted`). The caller gives the
        manifest to :meth:`commit`.
        """
        written, _ = self._pump(name, chunks, cipher, total)
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


