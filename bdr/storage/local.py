"""A repository on a local (or mounted) file system.

Every object is written to a temporary name beside its final one, fsynced, renamed with
``os.replace`` and its directory fsynced: a reader sees the whole object or nothing.
``ENOSPC`` and permission errors become :class:`~bdr.errors.NoSpace` and
:class:`~bdr.errors.NotWritable`, and the temporary file is removed.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from bdr.errors import BackupNotFound, NoSpace, NotWritable, StorageError
from bdr.storage.base import WrittenObject, write_all

TMP_MARK = ".tmp-"


def translate_os_error(exc: OSError, path: Path | str) -> StorageError:
    """The typed error for a failed write: disk full, not writable, or other."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(path=str(path))
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return NotWritable(path=str(path), detail=exc.strerror or str(exc))
    return StorageError(detail=f"cannot write {path}: {exc.strerror or exc}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalSink:
    """Writes one object under a temporary name; :meth:`commit` makes it appear atomically."""

    def __init__(self, final: Path) -> None:
        self._final = final
        self._tmp = final.with_name(f"{final.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(3)}")
        self._digest = hashlib.sha256()
        self._size = 0
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._handle: BinaryIO | None = self._tmp.open("wb")
        except OSError as exc:
            raise translate_os_error(exc, final.parent) from exc

    def write(self, data: bytes) -> int:
        assert self._handle is not None, "write after commit/abort"
        try:
            self._handle.write(data)
        except OSError as exc:
            self.abort()
            raise translate_os_error(exc, self._final.parent) from exc
        self._digest.update(data)
        self._size += len(data)
        return len(data)

    def commit(self) -> WrittenObject:
        assert self._handle is not None, "commit after commit/abort"
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
            os.replace(self._tmp, self._final)
            fsync_dir(self._final.parent)
        except OSError as exc:
            self.abort()
            raise translate_os_error(exc, self._final.parent) from exc
        return WrittenObject(key=self._final.name, size=self._size, sha256=self._digest.hexdigest())

    def abort(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):  # closing flushes the buffer: on a full disk that fails again
                self._handle.close()
            self._handle = None
        self._tmp.unlink(missing_ok=True)


class LocalStorage:
    """Objects as files under a root directory."""

    location = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise StorageError(detail=f"invalid object key {key!r}")
        return self.root.joinpath(*parts)

    def open_write(self, key: str) -> LocalSink:
        return LocalSink(self._path(key))

    def open_read(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise BackupNotFound(ref=key, repo=self.url) from exc

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as handle:
            return handle.read()

    def put_bytes(self, key: str, data: bytes) -> WrittenObject:
        return write_all(self.open_write(key), data)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise translate_os_error(exc, path.parent) from exc
        try:
            os.write(fd, data)
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise translate_os_error(exc, path.parent) from exc
        os.close(fd)
        return True

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise BackupNotFound(ref=key, repo=self.url) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self._path(prefix) if prefix else self.root
        if base.is_file():
            yield prefix
            return
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if TMP_MARK in name:
                    continue
                yield Path(dirpath, name).relative_to(self.root).as_posix()

    def children(self, prefix: str = "") -> builtins.list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if TMP_MARK not in p.name)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def free_space(self) -> int | None:
        probe = self.root
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        return shutil.disk_usage(probe).free

    def local_path(self, key: str) -> Path:
        """The file behind ``key`` (local storage only), for tools that need a path."""
        return self._path(key)
