"""Which files a configuration backup takes: the patterns of ``files:`` in bdr.yaml, resolved.

A pattern is a glob relative to the root (``docker-compose*.yml``, ``**/*.conf``) or a
directory taken whole (``monitoring/``). ``exclude`` leaves paths out, and a file whose path
or name matches a ``secrets`` pattern is a secret. Only regular files are taken: symbolic
links are not followed (one could point anywhere, and a restore writes no links), and are
reported with other skipped entries and with the patterns that matched nothing, so that
a typo in bdr.yaml shows in the manifest instead of as a file missing at restore time.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from bdr.config import FilesSource
from bdr.errors import ConfigError


def matches(relative: str, pattern: str) -> bool:
    """Whether ``relative`` (posix, relative to the root) is named by ``pattern``.

    The path matches the glob; or, for a pattern without ``/``, the file name does; or one of
    the path's directories does (``monitoring/`` and ``monitoring`` name all below it).
    """
    glob = pattern.rstrip("/")
    if not glob:
        return False
    if fnmatchcase(relative, glob):
        return True
    parts = PurePosixPath(relative).parts
    if "/" not in glob and fnmatchcase(parts[-1], glob):
        return True
    return any(fnmatchcase("/".join(parts[:i]), glob) for i in range(1, len(parts)))


def matches_any(relative: str, patterns: Iterable[str]) -> bool:
    return any(matches(relative, pattern) for pattern in patterns)


def is_secret(relative: str, files: FilesSource) -> bool:
    return matches_any(relative, files.secrets)


@dataclass(frozen=True, slots=True)
class Collected:
    """The files a backup takes, and what it noticed on the way."""

    files: tuple[str, ...]
    """Relative posix paths, sorted."""
    secrets: frozenset[str]
    unmatched: tuple[str, ...]
    """Patterns that named no file."""
    skipped: tuple[str, ...]
    """``path (reason)`` of entries left out: symbolic links, sockets, files outside the root."""

    @property
    def plain(self) -> list[str]:
        return [f for f in self.files if f not in self.secrets]

    @property
    def secret_files(self) -> list[str]:
        return [f for f in self.files if f in self.secrets]


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symbolic link, not followed"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISFIFO(mode):
        return "fifo"
    return "not a regular file"


def _through_link(root: Path, relative: str) -> bool:
    parts = PurePosixPath(relative).parts[:-1]
    return any(root.joinpath(*parts[:i]).is_symlink() for i in range(1, len(parts) + 1))


def _walk(root: Path, top: Path, skipped: list[str]) -> Iterator[Path]:
    """Regular files under ``top`` (a directory), never through a symbolic link."""
    for current, dirs, names in os.walk(top, followlinks=False, onerror=None):
        base = Path(current)
        for name in sorted(dirs):
            if (base / name).is_symlink():
                skipped.append(f"{(base / name).relative_to(root).as_posix()} (symbolic link, not followed)")
        for name in sorted(names):
            path = base / name
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode):
                yield path
            else:
                skipped.append(f"{path.relative_to(root).as_posix()} ({_kind(mode)})")


def collect(root: Path, files: FilesSource, only: Sequence[str] | None = None,
            check_readable: bool = True) -> Collected:
    """Resolve the patterns of ``files`` under ``root`` (or take exactly the paths ``only``).

    ``check_readable``: refuse (:class:`ConfigError`) a file bdr cannot read, rather than fail
    in the middle of writing the archive.
    """
    found: set[str] = set()
    unmatched: list[str] = []
    skipped: list[str] = []
    patterns = list(only) if only is not None else [*files.paths, *files.secrets]
    for pattern in patterns:
        hits: list[Path] = []
        glob = pattern.rstrip("/")
        if not glob or glob.startswith(("/", "~")) or ".." in glob.split("/"):
            raise ConfigError(path="files", detail=f"pattern {pattern!r} must be relative to files.root and stay "
                              "inside it (no leading / or ~, no ..)")
        candidates = [root / glob] if only is not None else sorted(root.glob(glob))
        for hit in candidates:
            relative = hit.relative_to(root).as_posix()
            if matches_any(relative, files.exclude):
                continue
            try:
                mode = hit.lstat().st_mode
            except FileNotFoundError:
                continue
            if _through_link(root, relative):
                skipped.append(f"{relative} (under a symbolic link, not followed)")
            elif not hit.resolve().is_relative_to(root):
                skipped.append(f"{relative} (outside the root)")
            elif stat.S_ISDIR(mode):
                hits += _walk(root, hit, skipped)
            elif stat.S_ISREG(mode):
                hits.append(hit)
            else:
                skipped.append(f"{relative} ({_kind(mode)})")
        taken = [h.relative_to(root).as_posix() for h in hits]
        taken = [t for t in taken if not matches_any(t, files.exclude)]
        if not taken:
            unmatched.append(pattern)
        found.update(taken)
    for relative in sorted(found) if check_readable else ():
        if not os.access(root / relative, os.R_OK):
            raise ConfigError(path=str(root / relative), detail="cannot read this file (permission denied): run bdr "
                              "as a user who can, or leave it out with files.exclude in bdr.yaml")
    return Collected(
        files=tuple(sorted(found)),
        secrets=frozenset(f for f in found if is_secret(f, files)),
        unmatched=tuple(unmatched),
        skipped=tuple(sorted(set(skipped))),
    )


def select(paths: Iterable[str], patterns: Sequence[str] | None) -> list[str]:
    """The ``paths`` that ``--path`` patterns name (all of them without patterns)."""
    every = sorted(paths)
    if not patterns:
        return every
    return [p for p in every if matches_any(p, patterns)]
