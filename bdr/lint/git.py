"""The few git questions lint asks: which files a checkout tracks, and what changed since a ref.

Every call runs ``git`` in a subprocess with a fixed argument list (no shell) and turns its
failures into :mod:`bdr.errors` with a hint. Paths come back absolute.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from bdr.errors import NotAGitRepository, UnknownGitRef, UsageError

logger = logging.getLogger(__name__)

GIT_TIMEOUT = 60.0


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``git args`` in ``cwd``; raises :class:`UsageError` when git is not installed."""
    if shutil.which("git") is None:
        raise UsageError(detail="git is not installed: install it (apt-get install git) to use this option")
    logger.debug("git %s (in %s)", " ".join(args), cwd)
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT,
                          check=False, stdin=subprocess.DEVNULL)


def toplevel(cwd: Path) -> Path | None:
    """The root of the checkout holding ``cwd``; None outside a git checkout (or without git)."""
    if shutil.which("git") is None:
        return None
    start = cwd if cwd.is_dir() else cwd.parent
    done = run(["rev-parse", "--show-toplevel"], start)
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 else None


def require_toplevel(cwd: Path) -> Path:
    root = toplevel(cwd)
    if root is None:
        raise NotAGitRepository(path=str(cwd))
    return root


def listed_files(directory: Path) -> list[Path] | None:
    """Files below ``directory`` that git tracks or would add (new, not ignored); None outside git."""
    root = toplevel(directory)
    if root is None:
        return None
    done = run(["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."], directory)
    if done.returncode != 0:
        return None
    return sorted({(directory / name).resolve() for name in done.stdout.split("\0") if name})


class TrackedFiles:
    """Answers "is this file committed?" for one lint run, asking git once per checkout."""

    def __init__(self) -> None:
        self._roots: dict[Path, Path | None] = {}
        self._tracked: dict[Path, frozenset[Path]] = {}

    def __call__(self, path: Path) -> bool:
        """True when ``path`` is committed (or staged) in the git checkout that holds it."""
        directory = path.resolve().parent
        if directory not in self._roots:
            self._roots[directory] = toplevel(directory)
        root = self._roots[directory]
        if root is None:
            return False
        if root not in self._tracked:
            done = run(["ls-files", "-z", "--cached"], root)
            listed = done.stdout.split("\0") if done.returncode == 0 else []
            self._tracked[root] = frozenset((root / name).resolve() for name in listed if name)
        return path.resolve() in self._tracked[root]


def verify_ref(ref: str, root: Path) -> str:
    """The commit ``ref`` names; :class:`UnknownGitRef` when the checkout does not have it."""
    if ref.startswith("-"):
        raise UnknownGitRef(ref=ref, repo=str(root))
    done = run(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root)
    if done.returncode != 0:
        raise UnknownGitRef(ref=ref, repo=str(root))
    return done.stdout.strip()


def names(args: list[str], root: Path) -> list[str]:
    """The NUL-separated file names a ``git diff --name-only -z`` style command prints."""
    done = run(args, root)
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        hint = " (a shallow clone? fetch the history: git fetch --unshallow, or fetch-depth: 0 in CI)" if (
            "merge base" in detail) else ""
        raise UsageError(detail=f"git {' '.join(args[:2])} failed in {root}: {detail}{hint}")
    return [name for name in done.stdout.split("\0") if name]
