"""Which drills a configuration change can affect: the basis of ``--changed-since REF`` in CI.

A pull request that touches redis.conf can change what a restart keeps, how a damaged
AOF is repaired and how a restore loads, so it should prove the ``redis_restart``,
``redis_corruption`` and ``redis_local_restore`` scenarios again; one that only edits the
README needs no drill at all. :func:`scenarios_for_changes` maps changed paths to scenarios,
each with the reasons (which file, why); :func:`changed_files` asks git what changed since a
ref (``REF...HEAD``, i.e. since the branch left it, plus uncommitted and new files).

``bdr drill --changed-since REF`` runs exactly the scenarios returned::

    affected = scenarios_for_changes(changed_files(ref, Path.cwd()))

and ``bdr lint --changed-since REF`` lints only the changed configuration files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePath, PurePosixPath

from bdr.drill import catalogue
from bdr.lint import git
from bdr.lint.files import classify

SCENARIOS: tuple[str, ...] = catalogue.names()
"""The drill scenarios, in the order the drill suite runs them (:mod:`bdr.drill.catalogue`)."""


def scenarios_for_changes(paths: Iterable[str | PurePath]) -> dict[str, list[str]]:
    """The scenarios the changed ``paths`` can affect, in suite order, each with its reasons.

    Empty when no change touches the configuration (a README edit): then there is nothing to drill.
    """
    reasons: dict[str, list[str]] = {}
    for raw in paths:
        path = PurePosixPath(PurePath(raw).as_posix())
        for scenario, reason in _affected(path):
            reasons.setdefault(scenario, [])
            if reason not in reasons[scenario]:
                reasons[scenario].append(reason)
    return {s: reasons[s] for s in SCENARIOS if s in reasons}


def _affected(path: PurePosixPath) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    kind = classify(path)
    if kind is not None:
        found += [(s.name, f"{path} changed: {catalogue.WHY[kind]}") for s in catalogue.affected_by(kind)]
    own = catalogue.of_module(path)
    if own is not None:
        found.append((own.name, f"{path} changed: the scenario itself"))
    return found


class ChangeStatus(StrEnum):
    CHANGED = "changed"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Change:
    """A file changed since the ref (``path`` absolute)."""

    path: Path
    status: ChangeStatus


def changes_since(ref: str, cwd: Path) -> list[Change]:
    """Files changed since ``ref``: on the branch (``REF...HEAD``), uncommitted, and new untracked ones."""
    root = git.require_toplevel(cwd)
    git.verify_ref(ref, root)
    names = set(git.names(["diff", "--name-only", "--no-renames", "-z", f"{ref}...HEAD", "--"], root))
    names |= set(git.names(["diff", "--name-only", "--no-renames", "-z", "HEAD", "--"], root))
    names |= set(git.names(["ls-files", "--others", "--exclude-standard", "-z"], root))
    changes = []
    for name in sorted(names):
        path = root / name
        changes.append(Change(path, ChangeStatus.CHANGED if path.exists() else ChangeStatus.DELETED))
    return changes


def changed_files(ref: str, cwd: Path) -> list[Path]:
    """Paths (relative to ``cwd`` when below it) of every file changed since ``ref``.

    Raises :class:`~bdr.errors.NotAGitRepository` outside a checkout and
    :class:`~bdr.errors.UnknownGitRef` for a ref the checkout does not have (a shallow CI clone).
    """
    return [_relative(c.path, cwd) for c in changes_since(ref, cwd)]


def _relative(path: Path, cwd: Path) -> Path:
    try:
        return path.relative_to(cwd.resolve())
    except ValueError:
        return Path(os.path.relpath(path, cwd.resolve()))
