"""Backups made by the old shell scripts: a directory with dump.rdb / appendonly files, or a .tar.gz.

``scripts/backup-redis.sh`` wrote ``redis_backup_YYYYMMDD_HHMMSS/`` (optionally as
``.tar.gz``) holding ``dump.rdb`` and ``appendonly.aof`` (Redis 6) or ``appendonlydir/``
(Redis 7). bdr restores them as they are; there is no manifest, so the restore is verified
by the server loading them, not by checksums.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bdr.errors import BackupNotFound
from bdr.repository.archive import extract_archive

DATA_NAMES = ("dump.rdb", "appendonly.aof", "appendonlydir")


def looks_like_redis_data(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in DATA_NAMES)


def _find_data_root(root: Path) -> Path:
    """The directory holding the data files: the root itself or its single sub-directory."""
    if looks_like_redis_data(root):
        return root
    for candidate in sorted(root.rglob("*")):
        if looks_like_redis_data(candidate):
            return candidate
    raise BackupNotFound(ref=str(root), repo="(legacy backup: no dump.rdb or appendonly files inside)")


def unpack_legacy(source: Path, scratch: Path) -> Path:
    """Copy (or safely extract) a legacy backup into ``scratch``; returns the directory of data files."""
    scratch.mkdir(parents=True, exist_ok=True)
    if source.is_file():
        unpacked = scratch / "unpacked"
        with source.open("rb") as stream:
            extract_archive(stream, unpacked, name=source.name)
        data = _find_data_root(unpacked)
    else:
        data = _find_data_root(source)
    out = scratch / "data"
    out.mkdir()
    for name in DATA_NAMES:
        item = data / name
        if item.is_dir():
            shutil.copytree(item, out / name)
        elif item.is_file():
            shutil.copy2(item, out / name)
    return out
