"""What a repository holds, as records: good sets, damaged ones, unfinished ones, and their verification."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bdr.repository.layout import set_id_time
from bdr.repository.manifest import Manifest
from bdr.repository.markers import WriterMarker


@dataclass(frozen=True, slots=True)
class Verification:
    """The latest result of ``bdr verify`` for a set."""

    at: str
    ok: bool
    restore_test: bool = False
    detail: str = ""


@dataclass(frozen=True, slots=True)
class BackupSet:
    """A complete backup set as listed from a repository."""

    manifest: Manifest
    repository: str
    location: str
    verification: Verification | None = None

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def source(self) -> str:
        return self.manifest.source

    @property
    def created(self) -> datetime:
        return self.manifest.finished

    @property
    def verified(self) -> bool:
        return bool(self.verification and self.verification.ok)

    @property
    def tags(self) -> tuple[str, ...]:
        return self.manifest.tags


@dataclass(frozen=True, slots=True)
class DamagedSet:
    """A set bdr will not use, sweep or prune, and why (see the module docstring)."""

    id: str
    source: str
    repository: str
    location: str
    """``local`` or ``s3``, as :attr:`BackupSet.location`."""
    path: str
    """Where it is: a directory, or ``s3://bucket/prefix/<source>/<id>``."""
    reason: str
    manifest: Manifest | None = None
    """The manifest as it reads, when it does (a digest or MAC mismatch): not to be trusted."""

    @property
    def created(self) -> datetime | None:
        """When it finished by its manifest, else when it started by its id (None: neither is known)."""
        if self.manifest is not None:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                return self.manifest.finished
        return set_id_time(self.id)

    @property
    def instance(self) -> str | None:
        return self.manifest.instance if self.manifest is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "instance": self.instance, "location": self.location,
                "path": self.path, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class SkippedSet:
    """A set ``latest`` passed over: damaged, or its last ``bdr verify`` failed."""

    id: str
    reason: str
    damaged: bool = True

    def describe(self) -> str:
        return f"{self.id} (damaged: {self.reason})" if self.damaged else f"{self.id} ({self.reason})"


@dataclass(frozen=True, slots=True)
class Unfinished:
    """A set without a manifest whose writing marker names its writer: being written, or left by a crash."""

    id: str
    source: str
    writer: WriterMarker | None
    """None: an empty set directory (nothing was written into it yet)."""
    gone: bool
    """The writer is certainly dead: the set is a leftover the sweep removes."""


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything in a repository's source directories, from one scan."""

    sets: tuple[BackupSet, ...] = ()
    """Good sets, newest first."""
    damaged: tuple[DamagedSet, ...] = ()
    """Newest first (by what is known of their time)."""
    unfinished: tuple[Unfinished, ...] = ()


Entry = BackupSet | DamagedSet | Unfinished


