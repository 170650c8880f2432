"""Restoring a whole Qdrant backup set through the runbook (:mod:`bdr.engines.runbook`).

1. ``fetch``: the set's files, each checked against the manifest's sha256, into a work
   directory - before anything live is touched;
2. ``check``: the method works out what will be replaced and refuses what cannot work (a
   snapshot from an incompatible Qdrant version, a snapshot into the embedded engine ...),
   still before any change;
3. ``safety backup`` of what the restore will replace: only the collections that exist in
   the target (scoped with the ``collections`` option), or the whole instance for ``volume``;
   skipped when there is nothing to protect;
4. ``replace``: collections recreated and imported (logical), snapshots uploaded with
   ``priority=snapshot`` (snapshot), or the storage directory swapped (volume);
5. ``verify``: config, point count and content (hash over all points, or a sample for
   snapshots) of every restored collection equal to the manifest, aliases in place.

A failure in 4-5 puts the safety backup back (with the method it was taken with) and drops
collections the restore created; the runbook raises :class:`~bdr.errors.RestoreRolledBack`
(or :class:`~bdr.errors.RollbackFailed`, exit 12, when that fails too). Qdrant needs no
``stop``/``start``: the logical and snapshot methods work on a running server, and the
embedded engine is opened by bdr only while it works on it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdr.engines.base import Check, Engine, RestoreRequest, RestoreResult, safety_backup
from bdr.engines.qdrant.client import Target, connect, list_collections, qdrant_errors, target_of
from bdr.engines.qdrant.method import Method, RestorePlan
from bdr.engines.qdrant.methods import method_of
from bdr.engines.runbook import StepOutcome
from bdr.engines.selection import QdrantSelection
from bdr.errors import RestoreError, UsageError
from bdr.repository import extract_set
from bdr.repository.manifest import Manifest
from bdr.safety.journal import JournalEntry

logger = logging.getLogger(__name__)


def scratch_near(target: Target) -> Path:
    """A scratch directory, beside the embedded directory when possible (same file system)."""
    if target.embedded:
        try:
            target.path.parent.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=".bdr-qdrant-", dir=target.path.parent))
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix="bdr-qdrant-"))


def fetch(request: RestoreRequest, files: Path, work: Path) -> Manifest:
    """The set's files in ``files``, checked against its manifest; a legacy snapshot converted."""
    if request.backup is not None:
        extract_set(request.repository, request.backup, files, request.cipher)
        return request.backup.manifest
    if request.legacy_path is None:
        raise UsageError(detail="nothing to restore: give a backup set")
    from bdr.engines.qdrant.legacy import convert

    return convert(request.legacy_path, files, QdrantSelection.expect(request.selection, "qdrant").collection, work)


MANIFEST_COPY = "manifest.json"
"""The set's manifest, kept in the work directory so ``--resume`` needs no repository read."""


@dataclass(slots=True)
class QdrantRestore:
    """A full restore of one Qdrant instance through the runbook (no stop/start: the logical and
    snapshot methods work on a running server, the embedded engine is opened only by bdr)."""

    engine: Engine
    request: RestoreRequest
    target: Target
    result: RestoreResult
    work: Path | None = None
    plan: RestorePlan | None = None
    source: str = "qdrant"
    stops_service: bool = False
    _manifest: Manifest | None = None

    @property
    def instance(self) -> str:
        return self.target.name

    @classmethod
    def new(cls, engine: Engine, request: RestoreRequest) -> QdrantRestore:
        target = target_of(request.config, request.target)
        ref = request.backup.id if request.backup else str(request.legacy_path)
        result = RestoreResult(source="qdrant", ref=ref, target=target.name, steps=request.log.steps,
                               dry_run=request.dry_run)
        return cls(engine, request, target, result)

    @classmethod
    def resumed(cls, engine: Engine, request: RestoreRequest, entry: JournalEntry,
                result: RestoreResult) -> QdrantRestore:
        state = entry.state
        restorer = cls(engine, request, target_of(request.config, entry.instance), result,
                       work=Path(state["work"]) if state.get("work") else None)
        if state.get("plan"):
            plan = state["plan"]
            restorer.plan = RestorePlan(list(plan["collections"]), list(plan["existing"]),
                                        bool(plan["whole_instance"]), list(plan.get("notes") or []))
        return restorer

    def state(self) -> dict[str, Any]:
        plan = self.plan
        return {"work": str(self.work) if self.work else None,
                "plan": {"collections": plan.collections, "existing": plan.existing,
                         "whole_instance": plan.whole_instance, "notes": plan.notes} if plan else None}

    @property
    def files(self) -> Path:
        assert self.work is not None
        return self.work / "incoming"

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            assert self.work is not None
            self._manifest = Manifest.from_json((self.work / MANIFEST_COPY).read_bytes())
        return self._manifest

    def fetch(self) -> StepOutcome:
        self.work = scratch_near(self.target)
        self._manifest = fetch(self.request, self.files, self.work / "convert")
        (self.work / MANIFEST_COPY).write_bytes(self._manifest.to_json())
        if self.request.backup:
            return StepOutcome(f"{len(self._manifest.files)} file(s) match the manifest")
        converted = ", ".join(f"{n} ({c['points']} points)" for n, c in self._manifest.facts["collections"].items())
        return StepOutcome(f"legacy snapshot converted with qdrant-edge: {converted}")

    def check(self) -> StepOutcome:
        method = method_of(self.manifest)
        self.plan = method.plan(self.request, self.target, self.files, self.manifest)
        points = sum(int(c.get("points", 0) or 0) for c in (self.manifest.facts.get("collections") or {}).values())
        self.result.counts = {"collections": len(self.plan.collections), "points": points}
        self.result.facts = {"method": method.name, "backup_version": self.manifest.facts.get("qdrant_version"),
                             "collections": self.plan.collections}
        return StepOutcome(self.plan.describe())

    def dry_run(self) -> list[Check]:
        assert self.plan is not None
        return [Check("dry run", True, f"would {self.plan.describe()} in {self.target.label()} (dry run, nothing "
                      "changed)")]

    def safety_backup(self) -> tuple[str | None, StepOutcome]:
        assert self.plan is not None
        return take_safety_backup(self.engine, self.request, self.target, self.plan)

    def stop(self) -> StepOutcome:
        return StepOutcome(skipped=True)

    start = stop

    def replace(self) -> StepOutcome:
        assert self.plan is not None
        notes = method_of(self.manifest).replace(self.request, self.target, self.files, self.manifest, self.plan)
        return StepOutcome("; ".join([self.plan.describe(), *notes]))

    def verify(self) -> list[Check]:
        assert self.plan is not None
        return method_of(self.manifest).check_live(self.target, self.files, self.manifest, self.plan)

    def rollback(self, safety_id: str | None) -> StepOutcome:
        plan = self.plan or RestorePlan([])
        if safety_id is None and plan.existing and not plan.whole_instance:
            raise RestoreError(detail="there is no safety backup to roll back to (it was turned off)")
        assert self.work is not None
        return StepOutcome(roll_back(self.request, self.target, plan, safety_id, self.work / "rollback"))

    def finish(self) -> StepOutcome:
        self.discard()
        return StepOutcome("work directory removed")

    def discard(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)


def take_safety_backup(engine: Engine, request: RestoreRequest, target: Target,
                       plan: RestorePlan) -> tuple[str | None, StepOutcome]:
    """The safety backup of what ``plan`` replaces; (None, skipped) when there is nothing to protect."""
    if plan.whole_instance:
        if not _has_data(target):
            return None, StepOutcome(f"nothing to protect: {target.label()} holds no data", skipped=True)
        options: dict[str, object] = {}
    else:
        if not plan.existing:
            return None, StepOutcome("nothing to protect: none of the collections exist in the target",
                                     skipped=True)
        options = {"collections": plan.existing}
    safety = safety_backup(engine, request, target.name, options)
    return safety.id, StepOutcome(safety.id)


def _has_data(target: Target) -> bool:
    if target.embedded:
        return target.path.is_dir() and any(target.path.iterdir())
    storage = target.instance.storage_dir
    return bool(storage) and Path(str(storage)).is_dir() and any(Path(str(storage)).iterdir())


def roll_back(request: RestoreRequest, target: Target, plan: RestorePlan, safety_id: str | None,
              files: Path) -> str:
    """Restore the safety set with its own method, then drop collections the failed restore created."""
    done: list[str] = []
    restored: list[str] = []
    if safety_id is not None:
        repo = request.safety_repo
        safety = repo.get(safety_id)
        extract_set(repo, safety, files, request.cipher)
        method: Method = method_of(safety.manifest)
        safety_plan = method.plan(request, target, files, safety.manifest)
        method.replace(request, target, files, safety.manifest, safety_plan)
        restored = safety_plan.collections
        done.append(f"restored {safety_id}")
    if not plan.whole_instance:
        created = [c for c in plan.collections if c not in plan.existing and c not in restored]
        if created:
            drop_collections(target, created)
            done.append(f"dropped {', '.join(created)}")
    return "; ".join(done) or "nothing to undo"


def drop_collections(target: Target, names: list[str]) -> None:
    if target.embedded and not target.path.is_dir():
        return
    with connect(target, create=True) as client:
        live = set(list_collections(client, target))
        for name in names:
            if name in live:
                with qdrant_errors(target, f"delete collection {name!r}"):
                    client.delete_collection(name)
