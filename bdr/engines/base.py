"""The engine interface: one datastore's backup, restore and verification.

An engine turns a live service into files plus facts for the manifest (``backup``),
puts a set's files back into a live service and proves it (``restore``), and checks a
set without touching any live service (``verify``). Engines are found through the
registry in :mod:`bdr.engines` by source name, never by if/elif.

Every engine restores through **one runbook** (:mod:`bdr.engines.runbook`): fetch,
check, safety backup, stop, replace, start, verify, finish; rolled back on failure,
journaled before each step so that a killed restore can be resumed or aborted. An
engine supplies the parts that differ as a :class:`~bdr.engines.runbook.Restorer`.
Steps are recorded as :class:`Step` objects with UTC start/end times so the CLI can print
them and the drills can turn them into a timeline (a drill's own steps are the same record,
:class:`~bdr.report.records.DrillStep`, placed on the scenario's clock). What a restore
selects is the engine's own typed :class:`~bdr.engines.selection.Selection`.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bdr.config import Config
from bdr.engines.selection import EVERYTHING, Conflict, Selection
from bdr.errors import UsageError
from bdr.repository import BackupSet, ObjectCipher, Repository, SetWriter
from bdr.repository.manifest import Manifest, to_iso, utcnow

if TYPE_CHECKING:
    from bdr.engines.runbook import Restorer
    from bdr.safety.journal import JournalEntry


READ_ERRNOS = (errno.ENOENT, errno.EISDIR)
"""errno values that mean a file bdr wanted to read is not there (not a full or read-only disk)."""


class StepStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(slots=True)
class Step:
    """One timed step of an operation (``safety backup``, ``stop``, ``replace`` ...)."""

    name: str
    started_at: str
    finished_at: str = ""
    seconds: float = 0.0
    status: StepStatus = StepStatus.OK
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": round(self.seconds, 4),
            "status": str(self.status),
            "detail": self.detail,
        }


@dataclass(slots=True)
class StepLog:
    """Records steps as they run; ``with log.step("stop"): ...``."""

    steps: list[Step] = field(default_factory=list)
    on_step: Any = None
    """Optional callback ``(step) -> None`` called when a step finishes (progress display)."""

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Step]:
        step = Step(name=name, started_at=to_iso(utcnow()))
        begun = time.perf_counter()
        self.steps.append(step)
        try:
            yield step
        except BaseException as exc:
            step.status = StepStatus.FAILED
            step.detail = step.detail or str(exc)
            raise
        finally:
            step.seconds = time.perf_counter() - begun
            step.finished_at = to_iso(utcnow())
            if self.on_step is not None:
                self.on_step(step)

    def skipped(self, name: str, detail: str) -> None:
        now = to_iso(utcnow())
        self.steps.append(Step(name, now, now, 0.0, StepStatus.SKIPPED, detail))

    def to_list(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.steps]


@dataclass(frozen=True, slots=True)
class Check:
    """One verification check and its outcome.

    ``skipped``: the check could not be made (the backup records nothing to compare, the
    server refuses the command ...); it does not fail the operation, and output, JSON and
    the drill report show it as *not verified*, never as passed.
    """

    name: str
    ok: bool
    detail: str = ""
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "ok": self.ok, "detail": self.detail}
        if self.skipped:
            data["skipped"] = True
        return data


@dataclass(slots=True)
class BackupRequest:
    """What to back up, and how."""

    config: Config
    repository: Repository
    instance: str | None = None
    method: str | None = None
    compress: bool = False
    cipher: ObjectCipher | None = None
    tags: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    """Engine-specific options (collections, file lists ...)."""
    log: StepLog = field(default_factory=StepLog)


@dataclass(slots=True)
class RestoreRequest:
    """What to restore, where, and which part of it."""

    config: Config
    repository: Repository
    backup: BackupSet | None
    """The set to restore; None for a legacy input (see ``legacy_path``)."""
    legacy_path: Path | None = None
    """A plain directory or .tar.gz made by the old shell scripts."""
    target: str | None = None
    cipher: ObjectCipher | None = None
    selection: Selection = EVERYTHING
    """The engine's own kind of :class:`~bdr.engines.selection.Selection` (keys/db, collection/filter/as,
    paths ...); empty (the default) = everything."""
    conflict: Conflict = Conflict.FAIL
    dry_run: bool = False
    safety_backup: bool = True
    safety_repository: Repository | None = None
    """Where the safety backup goes: the local repository, even when restoring from off-site."""
    log: StepLog = field(default_factory=StepLog)
    force: bool = False
    """``--abort --force``: roll back even if the restored instance has taken writes since (they are lost)."""

    def __post_init__(self) -> None:
        self.conflict = Conflict.of(self.conflict)
        if not isinstance(self.selection, Selection):
            raise UsageError(detail=f"a restore's selection is a bdr.engines.selection.Selection (RedisSelection, "
                             f"QdrantSelection ...), not a {type(self.selection).__name__}")

    @property
    def safety_repo(self) -> Repository:
        return self.safety_repository or self.repository


@dataclass(slots=True)
class RestoreResult:
    """What a restore did: its steps, the safety backup, counts, and the verification checks."""

    source: str
    ref: str
    target: str
    steps: list[Step]
    safety_id: str | None = None
    checks: list[Check] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "ref": self.ref,
            "target": self.target,
            "ok": self.ok,
            "dry_run": self.dry_run,
            "safety_id": self.safety_id,
            "seconds": round(self.seconds, 4),
            "steps": [s.to_dict() for s in self.steps],
            "checks": [c.to_dict() for c in self.checks],
            "not_verified": [f"{c.name}: {c.detail}" for c in self.checks if c.skipped],
            "counts": self.counts,
            "facts": self.facts,
        }


class Engine(Protocol):
    """One datastore's backup, restore and verification."""

    source: str

    @property
    def selection_type(self) -> type[Selection]:
        """The kind of selection its restores take (:mod:`bdr.engines.selection`)."""
        ...

    def backup(self, request: BackupRequest, writer: SetWriter) -> None:
        """Fill ``writer`` with the data's files and the manifest facts; the caller commits."""
        ...

    def instance_name(self, config: Config, target: str | None) -> str:
        """The instance a restore with ``--target target`` works on (the restore journal's key)."""
        ...

    def restorer(self, request: RestoreRequest) -> Restorer:
        """The engine's part of a new restore (the runbook drives it)."""
        ...

    def resumed(self, request: RestoreRequest, entry: JournalEntry, result: RestoreResult) -> Restorer:
        """The engine's part of an interrupted restore, rebuilt from its journal entry."""
        ...

    def restore(self, request: RestoreRequest) -> RestoreResult:
        """The whole restore through the runbook (``run_restore(self, request)``)."""
        ...

    def verify(self, manifest: Manifest, files: Path, restore_test: bool = False) -> list[Check]:
        """Check a set's extracted ``files`` (checksums are already checked by the caller)."""
        ...


def write_backup(engine: Engine, request: BackupRequest, instance_name: str, method: str,
                 lock: bool = True) -> Manifest:
    """Take one backup with ``engine`` into ``request.repository``: lock, write, commit (or abort).

    The single place a backup set is written, used by ``bdr backup`` and by every engine's
    safety backup before a restore. ``lock=False`` when the caller already holds the lock
    (the members of a whole-system backup).
    """
    repo = request.repository
    try:
        with repo.lock(f"backup {engine.source}") if lock else contextlib.nullcontext():
            writer = repo.new_set(engine.source, instance_name, method, request.tags, request.cipher)
            with writer:
                engine.backup(request, writer)
                return writer.commit()
    except OSError as exc:  # a file the engine reads or writes (the AOF, a staging file): a typed error, one line
        from bdr.storage.local import translate_os_error

        raise translate_os_error(exc, exc.filename or repo.url, "read" if exc.errno in READ_ERRNOS else "write") \
            from exc


def safety_backup(engine: Engine, request: RestoreRequest, instance_name: str,
                  options: Mapping[str, Any] | None = None) -> Manifest:
    """Back up the target's current data as a set tagged ``safety`` before a restore replaces it.

    ``options`` are engine options that scope it to what the restore touches (e.g. the
    Qdrant collections being replaced).
    """
    backup_request = BackupRequest(
        config=request.config,
        repository=request.safety_repo,
        instance=instance_name,
        cipher=request.cipher,
        tags=("safety",),
        compress=False,
        options=dict(options or {}),
    )
    return write_backup(engine, backup_request, instance_name, method="safety")
