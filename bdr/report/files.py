"""Writing report files without ever leaving a half-written one behind.

A report is written under a temporary name in its directory, fsynced, then renamed over
the final name (and the directory fsynced): a reader sees the old file or the new one,
never a truncated mix. OS errors become :mod:`bdr.errors` storage errors.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from bdr.errors import StorageError
from bdr.storage.local import fsync_dir, translate_os_error


def ensure_dir(path: Path) -> None:
    """Create ``path`` (and its parents) or raise a typed error saying why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise translate_os_error(exc, path) from exc
    if not path.is_dir():
        raise StorageError(detail=f"cannot write reports to {path}: it is not a directory")


def write_atomic(path: Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically; returns ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(3)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise translate_os_error(exc, path) from exc
    return path


def append_line(path: Path, line: str) -> None:
    """Append one line to ``path`` and fsync it; a previous torn last line is closed off first."""
    try:
        with open(path, "a+b") as handle:
            handle.seek(0, os.SEEK_END)
            prefix = b""
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    prefix = b"\n"
            handle.write(prefix + line.rstrip("\n").encode("utf-8") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise translate_os_error(exc, path) from exc
