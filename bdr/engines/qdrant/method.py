"""The three ways bdr copies a Qdrant, behind one interface, found by name.

- ``logical`` (:mod:`.logical`): schema + every point through the API; any version, server
  or embedded; selective restore;
- ``snapshot`` (:mod:`.snapshot`): Qdrant's own collection (or full-storage) snapshots of a
  server, restored by upload with ``priority=snapshot``; same or next minor version only;
- ``volume`` (:mod:`.volume`): the storage directory, copied while nothing uses it.

A restore is the same five steps for all three (:mod:`.restore`); a method supplies the
parts that differ: a plan made before anything changes (and that refuses a restore that
cannot work), the replacement itself, and the checks of the live data afterwards. The
methods are found by name in :mod:`.methods`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bdr.engines.base import BackupRequest, Check, RestoreRequest
from bdr.engines.qdrant.client import Target
from bdr.repository import SetWriter
from bdr.repository.manifest import Manifest


@dataclass(slots=True)
class RestorePlan:
    """What a full restore will do, worked out before anything live changes."""

    collections: list[str]
    """Collections the restore puts back (whole instance for ``volume``)."""
    existing: list[str] = field(default_factory=list)
    """Of those, the ones the target has now (what the safety backup must protect)."""
    whole_instance: bool = False
    """The restore replaces everything (``volume``): the safety backup covers the whole instance."""
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        new = [c for c in self.collections if c not in self.existing]
        parts = [f"replace {', '.join(self.existing)}" if self.existing else "",
                 f"create {', '.join(new)}" if new else ""]
        text = "; ".join(p for p in parts if p) or "nothing to restore"
        return f"{text}{'; ' + '; '.join(self.notes) if self.notes else ''}"


@dataclass(frozen=True, slots=True)
class PointOrigin:
    """Where a selective restore reads one collection's points in a fetched set (one of the three is set)."""

    file: Path | None = None
    """A logical point file."""
    target: Target | None = None
    """An embedded Qdrant copy, opened with qdrant-client."""
    snapshot: Path | None = None
    """A decompressed server snapshot, read with qdrant-edge."""
    in_full: bool = False
    """``snapshot`` is a full-storage snapshot (the collection is one of several in it)."""


class Method(Protocol):
    """One way of backing up and restoring a Qdrant instance."""

    name: str

    def backup(self, request: BackupRequest, writer: SetWriter, target: Target) -> None: ...

    def plan(self, request: RestoreRequest, target: Target, files: Path, manifest: Manifest) -> RestorePlan:
        """Check that the set can go into ``target`` (versions, mode) and list what it replaces."""
        ...

    def replace(self, request: RestoreRequest, target: Target, files: Path, manifest: Manifest,
                plan: RestorePlan) -> list[str]:
        """Put the set's data into ``target``; returns notes for the result."""
        ...

    def check_live(self, target: Target, files: Path, manifest: Manifest, plan: RestorePlan) -> list[Check]:
        """Compare the restored live data with the manifest."""
        ...

    def verify(self, manifest: Manifest, files: Path, restore_test: bool) -> list[Check]:
        """Offline checks of a set's extracted files."""
        ...

    def point_origin(self, manifest: Manifest, files: Path, facts: dict[str, Any], work: Path) -> PointOrigin:
        """Where a selective restore reads the points of the collection described by ``facts``;
        :class:`~bdr.errors.UsageError` when this set cannot feed a selective restore."""
        ...
