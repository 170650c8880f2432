"""Streaming tar + zstd archives, written into a sink and extracted safely.

A compressed backup set holds one archive object (``data.tar.zst``): files go in one at
a time, never the whole set in memory, and every file's sha256 is computed on the way
through so the manifest can list it. Extraction is strict: regular files and
directories only, no absolute paths, no ``..``, no links, devices or fifos; a violation
raises :class:`~bdr.errors.UnsafeArchive` before anything is written for that member.
Legacy ``.tar.gz`` files of the old shell scripts go through the same extractor.

Failures: when the sink breaks (disk full, S3 gone), tarfile and zstd still hold buffered
bytes they would flush on close or when garbage-collected. :func:`write_archive` lets the
sink's error through as it is and turns the writer it gave them into a drain, so nothing
reaches the broken sink after it failed and no second error hides the first. Extraction
translates a failed write of the target directory (:func:`copy_to_file`) into
:class:`~bdr.errors.NoSpace` / :class:`~bdr.errors.NotWritable` and removes the partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

import zstandard

from bdr.errors import CorruptArchive, UnsafeArchive
from bdr.repository.manifest import CHUNK, FileEntry
from bdr.storage.base import ObjectSink
from bdr.storage.local import translate_os_error

ZSTD_LEVEL = 3


class SinkWriter(io.RawIOBase):
    """A write-only file object over an :class:`ObjectSink` (what tarfile and zstd expect).

    After :meth:`drain` it swallows what it is given: the sink failed and is being aborted,
    and tarfile's or zstd's leftover buffers must not reach it (``tarfile`` flushes its
    buffer even from ``__del__``).
    """

    def __init__(self, sink: ObjectSink) -> None:
        self._sink = sink
        self._draining = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self._draining:
            return len(data)
        return self._sink.write(bytes(data))

    def drain(self) -> None:
        self._draining = True


class HashingReader(io.RawIOBase):
    """Reads through to ``inner`` and hashes what passes."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.digest.update(data)
        self.size += n
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


@dataclass(frozen=True, slots=True)
class ArchiveMember:
    """A file to put into an archive: where it is now, and its name inside the set."""

    source: Path
    name: str
    secret: bool = False


def write_archive(members: Iterable[ArchiveMember], sink: ObjectSink, compress: bool = True) -> list[FileEntry]:
    """Stream ``members`` as a tar (zstd-compressed when ``compress``) into ``sink``; don't commit it.

    On any failure the error propagates unchanged and nothing more is written to ``sink``;
    the caller aborts it.
    """
    raw = SinkWriter(sink)
    try:
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1) if compress else None
        target: BinaryIO = (
            compressor.stream_writer(raw, closefd=False) if compressor else raw  # type: ignore[assignment,arg-type]
        )
        entries: list[FileEntry] = []
        tar = tarfile.open(fileobj=target, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115  (not closed on failure: see drain)
        for member in members:
            entry = _add(tar, member)
            if entry is not None:
                entries.append(entry)
        tar.close()  # the end-of-archive blocks
        if compressor is not None:
            target.close()  # the end of the zstd frame (closefd=False: the sink stays open)
    except BaseException:
        raw.drain()
        raise
    return entries


def _add(tar: tarfile.TarFile, member: ArchiveMember) -> FileEntry | None:
    """Put one member into ``tar``; its entry for the manifest (None for a directory or a non-file)."""
    if member.source.is_dir():
        info = tar.gettarinfo(str(member.source), arcname=member.name)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info)
        return None
    with member.source.open("rb") as handle:
        # fstat of the open file: the member may be a /proc/self/fd link held open
        info = tar.gettarinfo(arcname=member.name, fileobj=handle)
        if not info.isfile():
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        reader = HashingReader(handle)
        tar.addfile(info, reader)  # type: ignore[arg-type]
    return FileEntry(path=member.name, size=reader.size, sha256=reader.digest.hexdigest(), mode=info.mode,
                     secret=member.secret)


def check_member(member: tarfile.TarInfo) -> str:
    """The safe relative name of ``member``, or :class:`UnsafeArchive`."""
    name = member.name
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith(("/", "\\")):
        raise UnsafeArchive(member=name, reason="absolute path")
    if ".." in path.parts:
        raise UnsafeArchive(member=name, reason="path escapes the target directory ('..')")
    if member.issym() or member.islnk():
        raise UnsafeArchive(member=name, reason=f"links are not allowed (-> {member.linkname!r})")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchive(member=name, reason="only regular files and directories are allowed")
    clean = "/".join(p for p in path.parts if p not in ("", "."))
    return clean


def open_tar_stream(stream: BinaryIO, name: str) -> tarfile.TarFile:
    """A streaming tar reader over a .tar.zst, .tar.gz or plain .tar stream (sniffed by magic bytes)."""
    head = stream.read(4) if not hasattr(stream, "peek") else stream.peek(4)[:4]  # type: ignore[attr-defined]
    if not hasattr(stream, "peek"):
        stream = _Prefixed(head, stream)  # type: ignore[assignment]
    try:
        if head == b"\x28\xb5\x2f\xfd":
            reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
            return tarfile.open(fileobj=reader, mode="r|")  # type: ignore[arg-type]
        if head[:2] == b"\x1f\x8b":
            return tarfile.open(fileobj=stream, mode="r|gz")
        return tarfile.open(fileobj=stream, mode="r|")
    except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
        raise CorruptArchive(name=name, detail=str(exc)) from exc


class _Prefixed(io.RawIOBase):
    def __init__(self, head: bytes, inner: BinaryIO) -> None:
        self._head = head
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def copy_to_file(stream: IO[bytes], dest: Path, hashed: bool = True) -> tuple[str, int]:
    """Copy ``stream`` into the new file ``dest``; the sha256 (``""`` unless ``hashed``) and size of what was copied.

    A failed write (disk full, read-only, permission) is the typed storage error naming
    ``dest``'s directory, and the partial file is removed; errors of ``stream`` pass unchanged.
    """
    digest = hashlib.sha256() if hashed else None
    size = 0
    try:
        out = dest.open("wb")
    except OSError as exc:
        raise translate_os_error(exc, dest.parent) from exc
    try:
        with out:
            while chunk := stream.read(CHUNK):
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise translate_os_error(exc, dest.parent) from exc
                if digest is not None:
                    digest.update(chunk)
                size += len(chunk)
            try:
                out.flush()
            except OSError as exc:
                raise translate_os_error(exc, dest.parent) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            dest.unlink(missing_ok=True)
        raise
    return digest.hexdigest() if digest is not None else "", size


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise translate_os_error(exc, path.parent) from exc


def _chmod(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except OSError as exc:
        raise translate_os_error(exc, path) from exc


def extract_archive(stream: BinaryIO, target: Path, name: str = "archive") -> list[FileEntry]:
    """Extract a tar stream into ``target`` safely; returns the files with their sha256."""
    _make_dir(target)
    entries: list[FileEntry] = []
    tar = open_tar_stream(stream, name)
    try:
        for member in tar:
            rel = check_member(member)
            if not rel:
                continue
            dest = target / rel
            if member.isdir():
                _make_dir(dest)
                _chmod(dest, (member.mode & 0o777) | 0o700)
                continue
            _make_dir(dest.parent)
            source = tar.extractfile(member)
            if source is None:
                raise CorruptArchive(name=name, detail=f"cannot read member {member.name!r}")
            sha256, size = copy_to_file(source, dest)
            if size != member.size:
                raise CorruptArchive(name=name, detail=f"member {member.name!r} is truncated")
            _chmod(dest, member.mode & 0o777)
            entries.append(FileEntry(path=rel, size=size, sha256=sha256, mode=member.mode & 0o7777))
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
        raise CorruptArchive(name=name, detail=str(exc) or type(exc).__name__) from exc
    finally:
        tar.close()
    return entries
