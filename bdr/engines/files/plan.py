"""What a configuration restore would change, file by file: the dry run, and the restore's to-do list.

Each file of the backup is ``new`` (absent here), ``changed`` (other content or mode; for a
text file with the count of lines added and removed) or ``unchanged``. A secret is only ever
``changed``: no line counts, no hint of what differs. Files here that the configured
patterns name but the backup does not hold are listed as ``not in backup, left alone``: a
restore never deletes anything.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bdr.engines.files.incoming import Incoming, IncomingFile
from bdr.engines.files.place import Root

SECRET_MODE = 0o600
DIFF_MAX_BYTES = 1024 * 1024
"""Larger text files are reported as changed without line counts (difflib is quadratic)."""


class ChangeKind(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    LEFT_ALONE = "left alone"


@dataclass(frozen=True, slots=True)
class Change:
    """What happens to one file."""

    path: str
    kind: ChangeKind
    secret: bool = False
    added: int | None = None
    removed: int | None = None
    """Lines added and removed, for a changed text file that is not a secret."""
    mode_from: int | None = None
    mode_to: int | None = None

    def describe(self) -> str:
        if self.kind is ChangeKind.LEFT_ALONE:
            return f"{'kept':<10} {self.path} (not in backup, left alone)"
        notes = []
        if self.kind is ChangeKind.CHANGED and not self.secret:
            if self.added is not None and self.removed is not None and (self.added or self.removed):
                notes.append(f"+{self.added} -{self.removed} lines")
            if self.mode_from is not None and self.mode_to is not None and self.mode_from != self.mode_to:
                notes.append(f"mode {self.mode_from:o} -> {self.mode_to:o}")
        if self.secret:
            notes.append("secret")
        suffix = f" ({', '.join(notes)})" if notes else ""
        return f"{self.kind.value:<10} {self.path}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "status": self.kind.value, "secret": self.secret}
        if not self.secret:
            if self.added is not None:
                data.update(lines_added=self.added, lines_removed=self.removed)
            if self.mode_from is not None and self.mode_to is not None and self.mode_from != self.mode_to:
                data.update(mode_from=f"{self.mode_from:o}", mode_to=f"{self.mode_to:o}")
        return data


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]

    def of(self, *kinds: ChangeKind) -> list[Change]:
        return [c for c in self.changes if c.kind in kinds]

    @property
    def writes(self) -> list[Change]:
        return self.of(ChangeKind.NEW, ChangeKind.CHANGED)

    def counts(self) -> dict[str, int]:
        return {
            "new": len(self.of(ChangeKind.NEW)),
            "changed": len(self.of(ChangeKind.CHANGED)),
            "unchanged": len(self.of(ChangeKind.UNCHANGED)),
            "left_alone": len(self.of(ChangeKind.LEFT_ALONE)),
        }

    def summary(self) -> str:
        counts = self.counts()
        text = f"{counts['new']} new, {counts['changed']} changed, {counts['unchanged']} unchanged"
        if counts["left_alone"]:
            text += f"; {counts['left_alone']} not in the backup, left alone"
        return text

    def lines(self) -> list[str]:
        order = (ChangeKind.NEW, ChangeKind.CHANGED, ChangeKind.UNCHANGED, ChangeKind.LEFT_ALONE)
        return [c.describe() for kind in order for c in self.of(kind)]


def target_mode(incoming: IncomingFile) -> int:
    return SECRET_MODE if incoming.secret else incoming.mode & 0o7777


def line_counts(old: bytes, new: bytes) -> tuple[int | None, int | None]:
    """Lines added and removed from ``old`` to ``new``; None for binary or very large files."""
    if len(old) > DIFF_MAX_BYTES or len(new) > DIFF_MAX_BYTES or b"\0" in old or b"\0" in new:
        return None, None
    try:
        a, b = old.decode().splitlines(), new.decode().splitlines()
    except UnicodeDecodeError:
        return None, None
    added = removed = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("replace", "delete"):
            removed += i2 - i1
        if tag in ("replace", "insert"):
            added += j2 - j1
    return added, removed


def plan_restore(incoming: Incoming, root: Root, present: Iterable[str] = ()) -> Plan:
    """Compare each incoming file with the one at its place under ``root``.

    ``present``: the files here the configured patterns name, so that the plan can list those
    the backup does not hold. Refuses (before anything is written) any path that escapes the root.
    """
    changes: list[Change] = []
    for path in sorted(incoming):
        item = incoming[path]
        current = root.lstat(path)
        mode = target_mode(item)
        if current is None:
            changes.append(Change(path, ChangeKind.NEW, item.secret, mode_to=mode))
            continue
        old_mode = current.st_mode & 0o7777
        same = current.st_size == item.size and root.sha256(path) == item.sha256
        if same and old_mode == mode:
            changes.append(Change(path, ChangeKind.UNCHANGED, item.secret))
        elif item.secret:
            changes.append(Change(path, ChangeKind.CHANGED, True))
        elif same:
            changes.append(Change(path, ChangeKind.CHANGED, False, 0, 0, old_mode, mode))
        else:
            added, removed = None, None
            if current.st_size <= DIFF_MAX_BYTES and item.size <= DIFF_MAX_BYTES:
                added, removed = line_counts(root.read_bytes(path), item.read_bytes())
            changes.append(Change(path, ChangeKind.CHANGED, False, added, removed, old_mode, mode))
    for path in sorted(set(present) - set(incoming)):
        changes.append(Change(path, ChangeKind.LEFT_ALONE))
    return Plan(tuple(changes))
