"""A repository on a local (or mounted) file system.

Every object is written to a temporary name beside its final one, fsynced, renamed with
``os.replace`` and its directory fsynced: a reader sees the whole object or nothing.

The temporary name says whose it is: ``<name>.bdr-tmp-<pid>-<random>`` (older bdr wrote
``<name>.tmp-<pid>-<random>``; both are recognised). Listings never show one; a process
killed mid-write leaves one behind, and :meth:`LocalStorage.abort_uploads` removes those
whose pid is no longer running on this host.

Every ``OSError`` of the file system is translated here by :func:`translate_os_error`: a
full disk or an exceeded quota is :class:`~bdr.errors.NoSpace`, a read-only file system or
a refused permission :class:`~bdr.errors.NotWritable`, anything else a
:class:`~bdr.errors.StorageError` naming the path; a failed write removes its temporary
file and leaves the sink broken (see :mod:`bdr.storage.base`).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from bdr.errors import BackupNotFound, NoSpace, NotWritable, StorageError
from bdr.storage.base import WrittenObject, failed_again, write_all
from bdr.util.host import pid_alive

logger = logging.getLogger(__name__)

TMP_MARK = ".bdr-tmp-"
"""Between an object's name and the writer's pid in its temporary file's name."""
TMP_NAME = re.compile(r"^(?P<name>.+)\.(?:bdr-)?tmp-(?P<pid>\d+)-(?P<token>[0-9a-f]{6,})$")
"""A temporary file of a bdr writer (this one's, or an older bdr's ``.tmp-``)."""

FIXES = {
    errno.EROFS: "remount it read-write or choose another repository",
    errno.EACCES: "run bdr as a user that may write there, or fix the directory's owner and mode",
    errno.EPERM: "run bdr as a user that may write there, or fix the directory's owner and mode (or its "
                 "immutable attribute)",
    errno.EIO: "the disk is failing or was disconnected; check `dmesg` and the mount",
    errno.EFBIG: "the file system cannot hold a file this large; use another one or a compressed backup",
    errno.ENOENT: "the directory disappeared while bdr was writing; was it removed or unmounted?",
}
"""What to do about an errno, after the system's own words for it."""


def translate_os_error(exc: OSError, path: Path | str, action: str = "write") -> StorageError:
    """The typed error for a failed file system call on ``path`` (``action``: write, read, delete)."""
    where = str(path)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(path=where)
    reason = exc.strerror or str(exc)
    if action == "read" and exc.errno in (errno.EACCES, errno.EPERM):
        return StorageError(detail=f"cannot read {where}: {reason}; run bdr as a user that may read the "
                                   "repository (backups are often readable by root only)")
    fix = FIXES.get(exc.errno or 0)
    detail = f"{reason}; {fix}" if fix else reason
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return NotWritable(path=where, detail=detail)
    return StorageError(detail=f"cannot {action} {where}: {detail}")


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(final: Path) -> Path:
    """Where ``final`` is written before it is renamed into place: recognisably ours, with our pid."""
    return final.with_name(f"{final.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(3)}")


def temp_writer(name: str) -> tuple[str, int] | None:
    """(the object's name, the writer's pid) of a temporary file's name; None for any other name."""
    match = TMP_NAME.match(name)
    return (match["name"], int(match["pid"])) if match else None


def writer_alive(pid: int) -> bool:
    """Whether the writer of a temporary file may still be at work (this process, or a live pid here)."""
    return pid == os.getpid() or pid_alive(pid)


class LocalSink:
    """Writes one object under a temporary name; :meth:`commit` makes it appear atomically."""

    def __init__(self, final: Path) -> None:
        self._final = final
        self._tmp = temp_name(final)
        self._digest = hashlib.sha256()
        self._size = 0
        self._failure: BaseException | None = None
        self._handle: BinaryIO | None = None
        self._done = False
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self._tmp.open("wb")
        except OSError as exc:
            self._done = True
            raise translate_os_error(exc, final.parent) from exc

    def _usable(self) -> BinaryIO:
        if self._failure is not None:
            raise failed_again(self._failure, str(self._final))
        if self._handle is None:
            raise StorageError(detail=f"write to {self._final} after it was committed or aborted")
        return self._handle

    def _fail(self, exc: OSError) -> StorageError:
        """Discard the temporary file and remember why, so every later call says the same."""
        error = translate_os_error(exc, self._final.parent)
        self._failure = error
        self.abort()
        return error

    def write(self, data: bytes) -> int:
        handle = self._usable()
        try:
            handle.write(data)
        except OSError as exc:
            raise self._fail(exc) from exc
        self._digest.update(data)
        self._size += len(data)
        return len(data)

    def commit(self) -> WrittenObject:
        handle = self._usable()
        try:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()  # on NFS a full disk may only show here
            self._handle = None
            os.replace(self._tmp, self._final)
        except OSError as exc:
            raise self._fail(exc) from exc
        self._done = True
        try:
            fsync_dir(self._final.parent)
        except OSError as exc:  # the object is whole and in place; only the rename may not survive a crash
            raise translate_os_error(exc, self._final.parent) from exc
        return WrittenObject(key=self._final.name, size=self._size, sha256=self._digest.hexdigest())

    def abort(self) -> None:
        """Discard the object (idempotent; never raises for the file system)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):  # closing flushes the buffer: on a full disk that fails again
                handle.close()
        if not self._done:
            self._done = True
            try:
                self._tmp.unlink(missing_ok=True)
            except OSError as exc:
                logger.warning("could not remove the temporary file %s: %s", self._tmp, exc)


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
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise BackupNotFound(ref=key, repo=self.url) from exc
        except OSError as exc:
            raise translate_os_error(exc, path, "read") from exc

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as handle:
            try:
                return handle.read()
            except OSError as exc:
                raise translate_os_error(exc, self._path(key), "read") from exc

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
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            raise translate_os_error(exc, path.parent) from exc
        return True

    def exists(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise translate_os_error(exc, path, "read") from exc
        return True

    def size(self, key: str) -> int:
        path = self._path(key)
        try:
            return path.stat().st_size
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise BackupNotFound(ref=key, repo=self.url) from exc
        except OSError as exc:
            raise translate_os_error(exc, path, "read") from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self._path(prefix) if prefix else self.root
        if base.is_file():
            yield prefix
            return
        if not base.is_dir():
            return

        def unreadable(exc: OSError) -> None:  # os.walk would skip it silently: a sweep must not think it empty
            raise translate_os_error(exc, exc.filename or base, "read") from exc

        for dirpath, _dirs, files in os.walk(base, onerror=unreadable):
            for name in files:
                if temp_writer(name) is None:
                    yield Path(dirpath, name).relative_to(self.root).as_posix()

    def children(self, prefix: str = "") -> builtins.list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        try:
            return sorted(p.name for p in base.iterdir() if temp_writer(p.name) is None)
        except OSError as exc:
            raise translate_os_error(exc, base, "read") from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise translate_os_error(exc, path, "delete") from exc

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise translate_os_error(exc, Path(exc.filename or path), "delete") from exc

    def free_space(self) -> int | None:
        probe = self.root
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            return shutil.disk_usage(probe).free
        except OSError:
            return None

    # --- uploads left by killed writers ---------------------------------------------------------------

    def _uploads(self, prefix: str) -> Iterator[tuple[Path, str, int]]:
        """(temporary file, the key it was becoming, writer pid) of every write in progress under ``prefix``."""
        base = self._path(prefix) if prefix else self.root
        if base.is_dir():
            candidates = [Path(d, n) for d, _dirs, names in os.walk(base) for n in names]
        else:  # an object's key: its temporary files are its siblings
            try:
                candidates = [p for p in base.parent.iterdir() if p.name.startswith(f"{base.name}.")]
            except OSError:
                candidates = []
        for path in candidates:
            writer = temp_writer(path.name)
            if writer is None or (not base.is_dir() and writer[0] != base.name):
                continue
            key = path.with_name(writer[0]).relative_to(self.root).as_posix()
            yield path, key, writer[1]

    def abort_uploads(self, prefix: str = "") -> int:
        """Remove the temporary files of dead writers under ``prefix`` (a key or a directory); how many."""
        removed = 0
        for path, _key, pid in self._uploads(prefix):
            if writer_alive(pid):
                continue
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise translate_os_error(exc, path, "delete") from exc
            removed += 1
        if removed:
            logger.warning("removed %d temporary file(s) of killed bdr runs under %s/%s", removed, self.url, prefix)
        return removed

    def stale_uploads(self, older_than_seconds: float = 0.0) -> builtins.list[str]:
        """Keys a dead writer was writing, last written to more than ``older_than_seconds`` ago."""
        cutoff = time.time() - older_than_seconds
        keys: set[str] = set()
        for path, key, pid in self._uploads(""):
            try:
                modified = path.stat().st_mtime
            except OSError:
                continue
            if modified <= cutoff and not writer_alive(pid):
                keys.add(key)
        return sorted(keys)

    def local_path(self, key: str) -> Path:
        """The file behind ``key`` (local storage only), for tools that need a path."""
        return self._path(key)
