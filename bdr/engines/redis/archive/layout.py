"""Where the continuous archive lives in a repository, and the only code that knows those keys.

Over the repository's :class:`~bdr.storage.Storage` (a directory or an S3 prefix)::

    archive/redis/<instance>/<replid>/<segment name>.seg     the stream, one object per segment

``archive`` is no source directory: the repository's listings, sweeps and pruning of backup
sets never look at it (like ``journal/`` and ``evidence/``). The *bases* a restore starts from
are ordinary backup sets under ``redis/`` (:mod:`.bases`). A segment is written whole or not
at all (the storage's atomic write), so a listing shows only sealed segments; one a killed
archiver was uploading is a temporary file or a pending multipart upload, removed by the
next archiver of that instance (:func:`abort_uploads`).

Segments are encrypted like backup objects when the archive is written with a key (the
object then starts with the encryption header, ``BDRE``); a reader tells the two apart by
their first bytes. Names (offsets, mark times) are not encrypted: they say how much was
written when, as set ids say when a backup was taken.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from bdr.crypto.stream import MAGIC as ENCRYPTED_MAGIC
from bdr.engines.redis.archive.segment import SegmentName, SegmentReader
from bdr.errors import BackupNotFound, MissingKey
from bdr.repository import ObjectCipher, Repository
from bdr.storage.base import WrittenObject

logger = logging.getLogger(__name__)

ARCHIVE = "archive"
SOURCE = "redis"


def instance_prefix(instance: str) -> str:
    return f"{ARCHIVE}/{SOURCE}/{instance}"


def segment_key(instance: str, replid: str, name: SegmentName) -> str:
    return f"{instance_prefix(instance)}/{replid}/{name.name}"


@dataclass(frozen=True, slots=True)
class StoredSegment:
    """One sealed segment in a repository: its stream (the master's replication id) and what its name says."""

    replid: str
    name: SegmentName
    key: str

    @property
    def start(self) -> int:
        return self.name.start

    @property
    def end(self) -> int:
        return self.name.end


def list_segments(repo: Repository, instance: str) -> list[StoredSegment]:
    """Every sealed segment of ``instance`` in ``repo``, by stream then offset (names that are not segments are
    skipped: a half-written upload never shows)."""
    prefix = instance_prefix(instance)
    found: list[StoredSegment] = []
    for key in repo.storage.list(prefix):
        parts = key[len(prefix) + 1:].split("/")
        if len(parts) != 2:
            continue
        name = SegmentName.parse(parts[1])
        if name is not None:
            found.append(StoredSegment(parts[0], name, key))
    return sorted(found, key=lambda s: (s.replid, s.start, s.end))


def archived_instances(repo: Repository) -> list[str]:
    """The Redis instances that have an archive in ``repo``."""
    return sorted(repo.storage.children(f"{ARCHIVE}/{SOURCE}"))


def put_segment(repo: Repository, key: str, path: Path, cipher: ObjectCipher | None) -> WrittenObject:
    """Store the sealed segment file ``path`` as ``key`` (encrypted with ``cipher``), whole or not at all."""
    sink = repo.storage.open_write(key)
    if cipher is not None:
        sink = cipher.encrypting(sink)
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                sink.write(chunk)
        return sink.commit()
    except BaseException:
        sink.abort()
        raise


class _Prefixed(io.RawIOBase):
    """A stream whose first bytes were read already (to see whether it is encrypted)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            data, self._head = self._head + self._rest.read(), b""
            return data
        if self._head:
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._rest.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._rest.close()
        super().close()


@contextlib.contextmanager
def open_segment(repo: Repository, segment: StoredSegment, cipher: ObjectCipher | None) -> Iterator[SegmentReader]:
    """A checked reader of one stored segment (decrypted when it is encrypted)."""
    raw = repo.storage.open_read(segment.key)
    try:
        head = raw.read(len(ENCRYPTED_MAGIC))
        stream = cast(BinaryIO, _Prefixed(head, raw))
        if head == ENCRYPTED_MAGIC:
            if cipher is None:
                raise MissingKey(detail=f"archive segment {segment.key} is encrypted: give the key with --key-file "
                                 "or $BDR_KEY (encryption: in bdr.yaml)")
            stream = cipher.decrypting(stream, segment.key)
        yield SegmentReader(stream, segment.key, segment.name)
    finally:
        raw.close()


def delete_segment(repo: Repository, segment: StoredSegment) -> None:
    with contextlib.suppress(BackupNotFound):
        repo.storage.delete(segment.key)


def abort_uploads(repo: Repository, instance: str) -> int:
    """Remove the uploads a killed archiver of ``instance`` left (only one archiver per instance runs)."""
    return repo.storage.abort_uploads(instance_prefix(instance))
