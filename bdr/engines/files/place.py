"""Writing files under a root directory, and never anywhere else.

A restore writes what a backup (or an old runbook's tarball) says into the configuration
directory. A path that escapes it is refused (:class:`~bdr.errors.UnsafeArchive`): absolute
names, ``..``, and symbolic links on the way, including a link planted in the root after the
backup was taken (``monitoring -> /etc``). The check is not a ``resolve()`` done beforehand
and trusted later: every access opens the path one directory at a time from a descriptor
of the root with ``O_NOFOLLOW``, so a link swapped in between the check and the write is
refused too. A file is written to a temporary name in its directory, fsynced, given its
mode and its previous owner, renamed over the old one and the directory fsynced: a reader
sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from bdr.errors import UnsafeArchive, UsageError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CHUNK = 1024 * 1024


def check_relative(relative: str) -> tuple[str, ...]:
    """The components of a path inside the root, or :class:`UnsafeArchive`."""
    path = PurePosixPath(relative)
    if not relative or path.is_absolute() or relative.startswith("\\") or "\0" in relative:
        raise UnsafeArchive(member=relative, reason="an absolute or empty path")
    if ".." in path.parts:
        raise UnsafeArchive(member=relative, reason="it would be written outside the root ('..')")
    parts = tuple(p for p in path.parts if p not in ("", "."))
    if not parts:
        raise UnsafeArchive(member=relative, reason="an empty path")
    return parts


class Root:
    """A directory files are placed into through descriptors; ``with Root(path, create=...) as root:``.

    ``create=False`` (a dry run) never creates anything: a missing root reads as empty.
    """

    def __init__(self, path: Path, create: bool = True) -> None:
        self.path = path
        self._create = create
        self._fd: int | None = None
        if create:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                from bdr.storage.local import translate_os_error

                raise translate_os_error(exc, path) from exc
        with contextlib.suppress(FileNotFoundError):
            self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # --- walking ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _parent(self, relative: str, create: bool = False, dir_mode: int = 0o755) -> Iterator[int | None]:
        """A descriptor of the directory that holds ``relative`` (None when it does not exist)."""
        parts = check_relative(relative)
        if self._fd is None:
            yield None
            return
        fd = os.dup(self._fd)
        try:
            for i, part in enumerate(parts[:-1]):
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        yield None
                        return
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, dir_mode, dir_fd=fd)
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        where = "/".join(parts[:i + 1])
                        raise UnsafeArchive(member=relative, reason=f"{where} is a symbolic link or not a directory "
                                            f"in {self.path}: it could lead outside it") from exc
                    raise
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def lstat(self, relative: str) -> os.stat_result | None:
        """The current file at ``relative`` (None if absent); refuses a link or a directory there."""
        with self._parent(relative) as parent:
            if parent is None:
                return None
            try:
                info = os.stat(check_relative(relative)[-1], dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                return None
        if stat.S_ISLNK(info.st_mode):
            raise UnsafeArchive(member=relative, reason=f"it is a symbolic link in {self.path}: bdr does not write "
                                "through links (remove it to restore the file)")
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(detail=f"{self.path / relative} is a directory or special file, and the backup holds a "
                             "file there: move it away and run the restore again")
        return info

    def read_chunks(self, relative: str) -> Iterator[bytes]:
        """The content of the file at ``relative`` (which must exist), in 1 MiB chunks."""
        with self._parent(relative) as parent:
            if parent is None:
                raise FileNotFoundError(relative)
            fd = os.open(check_relative(relative)[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        with os.fdopen(fd, "rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def read_bytes(self, relative: str) -> bytes:
        return b"".join(self.read_chunks(relative))

    def sha256(self, relative: str) -> str:
        digest = hashlib.sha256()
        for chunk in self.read_chunks(relative):
            digest.update(chunk)
        return digest.hexdigest()

    # --- writing ----------------------------------------------------------------------------

    def write(self, relative: str, chunks: Iterable[bytes], mode: int, dir_mode: int = 0o755) -> None:
        """Put a file at ``relative`` atomically with ``mode``, keeping the owner of the file it replaces."""
        name = check_relative(relative)[-1]
        previous = self.lstat(relative)
        with self._parent(relative, create=True, dir_mode=dir_mode) as parent:
            assert parent is not None
            tmp = f".{name}.bdr-{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in chunks:
                        out.write(chunk)
                    out.flush()
                    os.fchmod(out.fileno(), mode & 0o7777)
                    self._keep_owner(out.fileno(), previous, parent)
                    os.fsync(out.fileno())
                os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=parent)
                raise
            os.fsync(parent)

    @staticmethod
    def _keep_owner(fd: int, previous: os.stat_result | None, parent: int) -> None:
        """The owner of the file replaced, or (as root) of the directory: services keep reading their files."""
        if previous is not None:
            owner = (previous.st_uid, previous.st_gid)
        elif os.geteuid() == 0:
            info = os.fstat(parent)
            owner = (info.st_uid, info.st_gid)
        else:
            return
        with contextlib.suppress(PermissionError):
            os.fchown(fd, *owner)

    def remove(self, relative: str) -> None:
        """Remove the file at ``relative`` (a rollback of a file the restore created)."""
        with self._parent(relative) as parent:
            if parent is None:
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(check_relative(relative)[-1], dir_fd=parent)
            os.fsync(parent)
