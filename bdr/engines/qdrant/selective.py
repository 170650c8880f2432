"""Selective restore: one collection of a set, optionally renamed, or only the points matching a filter.

The selection (``RestoreRequest.selection``, a :class:`~bdr.engines.selection.QdrantSelection`, from
``--collection/--as/--filter``):

- ``collection``: the collection in the set (may be omitted when the set holds only one);
- ``rename_as`` (``--as``): the live collection to restore into (default: the same name); it is created with
  the backup's config and payload indexes when it does not exist, and must have the same
  vectors (names, kinds, sizes) when it does;
- ``filter``: a Qdrant filter as JSON (``{"must": [{"key": "tenant", "match": {"value": "a"}}]}``),
  validated with qdrant-client's models and evaluated by Qdrant itself: the collection is
  loaded into a temporary in-memory embedded instance and scrolled with the filter.

Points that already exist in the target (same id) are conflicts, handled by
``request.conflict``: ``fail`` (the default: nothing is written, the error lists them),
``skip`` (keep the live point) or ``replace`` (overwrite it). ``dry_run`` reports the counts
and changes nothing. Other collections, and live points outside the selection, are never
touched. Steps: ``fetch``, ``select``, ``safety backup`` (of the target collection, when it
exists), ``replace``, ``verify`` (count and content of what was copied); a failure in the
last two restores the target collection from the safety backup (or drops it if the restore
created it).

Logical sets, volume sets of the embedded engine (opened with qdrant-client) and snapshot
sets (read offline with qdrant-edge, see :mod:`.edge`) can be restored selectively.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
from qdrant_client import QdrantClient, models

from bdr.engines.base import Check, Engine, RestoreRequest, RestoreResult, safety_backup
from bdr.engines.qdrant import logical
from bdr.engines.qdrant import schema as _schema
from bdr.engines.qdrant.client import META_FILE, Target, connect, qdrant_errors, target_of
from bdr.engines.qdrant.method import RestorePlan
from bdr.engines.qdrant.pointfile import Batch, ContentHash, Layout, PointId
from bdr.engines.qdrant.restore import roll_back, scratch_near
from bdr.engines.qdrant.schema import CollectionSchema
from bdr.engines.runbook import StepOutcome
from bdr.engines.selection import Conflict, QdrantSelection
from bdr.errors import SelectionConflict, UsageError
from bdr.repository import extract_set
from bdr.repository.manifest import Manifest
from bdr.safety.journal import JournalEntry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Selection:
    """What to copy: ``source`` collection of the set, into live collection ``dest``, filtered."""

    source: str
    dest: str
    filter: models.Filter | None
    filter_json: Mapping[str, Any] | None

    @classmethod
    def parse(cls, selection: QdrantSelection, manifest: Manifest) -> Selection:
        available = list(logical.collection_facts(manifest))
        source = selection.collection
        if not source:
            if len(available) != 1:
                raise UsageError(detail=f"backup {manifest.id} holds {len(available)} collections "
                                 f"({', '.join(available) or 'none'}); choose one with --collection")
            source = available[0]
        if source not in available:
            raise UsageError(detail=f"backup {manifest.id} has no collection {source!r}; it has: "
                             f"{', '.join(available) or 'none'}")
        raw = selection.filter
        parsed = None
        if raw is not None:
            try:
                parsed = models.Filter.model_validate(dict(raw))
            except pydantic.ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise UsageError(detail=f"--filter is not a valid Qdrant filter: {first['msg']} at {where or 'top'}"
                                 ) from exc
        return cls(str(source), str(selection.rename_as or source), parsed, dict(raw) if raw is not None else None)

    def describe(self) -> str:
        text = self.source if self.dest == self.source else f"{self.source} as {self.dest}"
        return text + (" (filtered)" if self.filter is not None else "")


# --- where the points come from ------------------------------------------------------------------


class PointSource:
    """A collection's points in a fetched set: a logical point file, an embedded volume copy (opened
    with qdrant-client), or a server snapshot (read with qdrant-edge)."""

    def __init__(self, manifest: Manifest, files: Path, collection: str, work: Path) -> None:
        self.facts = logical.collection_facts(manifest)[collection]
        self.collection = collection
        self.schema = CollectionSchema.from_facts(self.facts)
        self.layout = logical.layout_of(self.facts)
        self._work = work
        self._passes = 0
        from bdr.engines.qdrant.methods import method_of

        origin = method_of(manifest).point_origin(manifest, files, self.facts, work)
        self._file, self._target, self._snapshot, self._in_full = (origin.file, origin.target, origin.snapshot,
                                                                   origin.in_full)

    def batches(self) -> Iterator[Batch]:
        if self._file is not None:
            reader, handle = logical.open_points(self._file, self._file.name)
            with handle:
                yield from reader.batches()
        elif self._snapshot is not None:
            from bdr.engines.qdrant import edge

            self._passes += 1
            work = self._work / f"edge-{self._passes}"
            try:
                yield from edge.points(self._snapshot, self.layout, work,
                                       collection=self.collection if self._in_full else None)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        else:
            assert self._target is not None
            with connect(self._target) as client:
                yield from logical.scroll_batches(client, self._target, self.collection, self.layout, 1024)


def ids_matching(source: PointSource, flt: models.Filter) -> set[PointId]:
    """Ids of the source's points that match ``flt``, as Qdrant evaluates it (a temporary
    in-memory embedded instance holding the collection)."""
    from bdr.engines.qdrant.pointfile import canonical_id

    client = QdrantClient(location=":memory:")
    matched: set[PointId] = set()
    try:
        args, _ = _schema.create_args(source.schema)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            client.create_collection("selection", **args)
            for batch in source.batches():
                client.upsert("selection", points=batch.points(source.layout), wait=True)
        offset: Any = None
        while True:
            try:
                records, offset = client.scroll("selection", scroll_filter=flt, limit=1024, offset=offset,
                                                with_payload=False, with_vectors=False)
            except (ValueError, KeyError, TypeError) as exc:
                raise UsageError(detail=f"--filter cannot be evaluated: {exc}") from exc
            matched.update(canonical_id(r.id) for r in records)
            if offset is None:
                return matched
    finally:
        client.close()


# --- planning --------------------------------------------------------------------------------------


@dataclass(slots=True)
class SelectionPlan:
    exists: bool
    before: int
    selected: int
    conflicts: list[PointId]


def _existing_ids(client: QdrantClient, target: Target, name: str, ids: list[PointId]) -> set[PointId]:
    from bdr.engines.qdrant.pointfile import canonical_id

    with qdrant_errors(target, f"read collection {name!r}"):
        records = client.retrieve(name, ids=ids, with_payload=False, with_vectors=False)
    return {canonical_id(r.id) for r in records}


def _chosen(batch: Batch, matched: set[PointId] | None, skip: set[PointId] | None = None) -> Batch:
    if matched is None and not skip:
        return batch
    keep = np.fromiter(((matched is None or p in matched) and not (skip and p in skip) for p in batch.ids),
                       dtype=bool, count=len(batch))
    return batch.select(keep)


def plan_selection(target: Target, selection: Selection, source: PointSource,
                   matched: set[PointId] | None) -> SelectionPlan:
    """Count the selected points and find the ones that already exist in the target."""
    if target.embedded and not (target.path / META_FILE).is_file():
        selected = sum(len(_chosen(b, matched)) for b in source.batches())
        return SelectionPlan(False, 0, selected, [])
    with connect(target) as client:
        with qdrant_errors(target, f"check collection {selection.dest!r}"):
            exists = client.collection_exists(selection.dest)
        if exists:
            live_layout = _schema.describe(client, target, selection.dest).layout
            if live_layout.key() != source.layout.key():
                raise UsageError(detail=f"live collection {selection.dest!r} has other vectors than the backup's "
                                 f"{selection.source!r}; restore it under another name with --as")
        selected = 0
        conflicts: list[PointId] = []
        for batch in source.batches():
            chosen = _chosen(batch, matched)
            selected += len(chosen)
            if exists and len(chosen):
                found = _existing_ids(client, target, selection.dest, list(chosen.ids))
                conflicts += [p for p in chosen.ids if p in found]
        before = logical.count_points(client, target, selection.dest) if exists else 0
    return SelectionPlan(exists, before, selected, conflicts)


# --- the restore -----------------------------------------------------------------------------------


@dataclass(slots=True)
class QdrantSelectiveRestore:
    """A selective Qdrant restore through the runbook (see the module docstring for the steps)."""

    engine: Engine
    request: RestoreRequest
    target: Target
    result: RestoreResult
    selection: Selection
    work: Path | None = None
    plan: SelectionPlan | None = None
    source: str = "qdrant"
    stops_service: bool = False
    _points: PointSource | None = None
    _matched: set[PointId] | None = None
    _expected: ContentHash | None = None
    _written: list[PointId] = field(default_factory=list)

    @property
    def instance(self) -> str:
        return self.target.name

    @classmethod
    def new(cls, engine: Engine, request: RestoreRequest) -> QdrantSelectiveRestore:
        if request.backup is None:
            raise UsageError(detail="a selective Qdrant restore needs a bdr backup set")
        conflict = Conflict.of(request.conflict)
        selection = Selection.parse(QdrantSelection.expect(request.selection, "qdrant"), request.backup.manifest)
        target = target_of(request.config, request.target)
        result = RestoreResult(source="qdrant", ref=request.backup.id, target=target.name, steps=request.log.steps,
                               dry_run=request.dry_run)
        result.facts = {"collection": selection.source, "as": selection.dest, "filter": selection.filter_json,
                        "conflict": str(conflict)}
        return cls(engine, request, target, result, selection)

    @classmethod
    def resumed(cls, engine: Engine, request: RestoreRequest, entry: JournalEntry,
                result: RestoreResult) -> QdrantSelectiveRestore:
        if request.backup is None:
            raise UsageError(detail=f"the set {entry.ref} of the interrupted restore cannot be read now: run "
                             "`bdr restore qdrant --abort` once its repository answers")
        restorer = cls.new(engine, request)
        restorer.result = result
        restorer.work = Path(entry.state["work"]) if entry.state.get("work") else None
        return restorer

    def state(self) -> dict[str, Any]:
        return {"mode": "selective", "work": str(self.work) if self.work else None,
                "selection": self.request.selection.to_state(), "conflict": str(self.request.conflict)}

    @property
    def _manifest(self) -> Manifest:
        assert self.request.backup is not None
        return self.request.backup.manifest

    def _source(self) -> PointSource:
        assert self.work is not None
        if self._points is None:
            self._points = PointSource(self._manifest, self.work / "incoming", self.selection.source,
                                       self.work / "source")
        return self._points

    def fetch(self) -> StepOutcome:
        assert self.request.backup is not None
        self.work = scratch_near(self.target)
        extract_set(self.request.repository, self.request.backup, self.work / "incoming", self.request.cipher)
        return StepOutcome(f"{len(self._manifest.files)} file(s) match the manifest")

    def check(self) -> StepOutcome:
        source = self._source()
        selection = self.selection
        self._matched = ids_matching(source, selection.filter) if selection.filter is not None else None
        plan = self.plan = plan_selection(self.target, selection, source, self._matched)
        conflicts = len(plan.conflicts)
        skip = self.request.conflict is Conflict.SKIP
        self.result.counts = {
            "selected": plan.selected,
            "copied": plan.selected - (conflicts if skip else 0),
            "skipped": conflicts if skip else 0,
            "conflicts": conflicts,
        }
        if conflicts and self.request.conflict is Conflict.FAIL and not self.request.dry_run:
            raise self._conflict_error()
        return StepOutcome(f"{plan.selected} point(s) of {selection.describe()}; {conflicts} already in "
                           f"{selection.dest}")

    def _conflict_error(self) -> SelectionConflict:
        assert self.plan is not None
        return SelectionConflict(count=len(self.plan.conflicts), what="points",
                                 target=f"collection {self.selection.dest}",
                                 examples=", ".join(str(p) for p in self.plan.conflicts[:5]))

    def dry_run(self) -> list[Check]:
        assert self.plan is not None
        conflicts = len(self.plan.conflicts)
        if conflicts and self.request.conflict is Conflict.FAIL:
            self.result.counts["copied"] = 0
            return [Check("conflicts", False, f"would fail: {self._conflict_error().message}")]
        skip = self.request.conflict is Conflict.SKIP
        return [Check("dry run", True, (
            f"would copy {self.result.counts['copied']} point(s) of {self.selection.describe()} into "
            f"{'existing' if self.plan.exists else 'new'} collection {self.selection.dest} of {self.target.label()}"
            + (f"; {conflicts} conflict(s) would be {'skipped' if skip else 'replaced'}" if conflicts else "")
            + " (dry run, nothing changed)"))]

    def safety_backup(self) -> tuple[str | None, StepOutcome]:
        assert self.plan is not None
        if not self.plan.exists:
            return None, StepOutcome(f"nothing to protect: collection {self.selection.dest} does not exist",
                                     skipped=True)
        safety = safety_backup(self.engine, self.request, self.target.name, {"collections": [self.selection.dest]})
        return safety.id, StepOutcome(safety.id)

    def stop(self) -> StepOutcome:
        return StepOutcome(skipped=True)

    start = stop

    def replace(self) -> StepOutcome:
        if self.plan is None:  # resumed after a crash: plan again (points written before are conflicts now)
            self.check()
        assert self.plan is not None
        skip = set(self.plan.conflicts) if self.request.conflict is Conflict.SKIP else None
        self._expected, self._written = _copy(self.target, self.selection, self._source(), self._matched, skip,
                                              self.plan.exists)
        return StepOutcome(f"{len(self._written)} point(s) written into {self.selection.dest}")

    def verify(self) -> list[Check]:
        if self.plan is None or self._expected is None:  # resumed at verify: copy again (idempotent), then check
            self.replace()
        assert self.plan is not None and self._expected is not None
        return _verify(self.target, self.selection, self._source(), self.plan, self._expected, self._written,
                       self.request.conflict)

    def rollback(self, safety_id: str | None) -> StepOutcome:
        exists = self.plan.exists if self.plan is not None else True
        undo = RestorePlan([self.selection.dest], [self.selection.dest] if exists else [])
        assert self.work is not None
        return StepOutcome(roll_back(self.request, self.target, undo, safety_id, self.work / "rollback"))

    def finish(self) -> StepOutcome:
        self.discard()
        return StepOutcome("work directory removed")

    def discard(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)


def _copy(target: Target, selection: Selection, source: PointSource, matched: set[PointId] | None,
          skip: set[PointId] | None, exists: bool) -> tuple[ContentHash, list[PointId]]:
    """Upsert the chosen points; returns the content hash and ids of what was written."""
    expected = ContentHash(source.layout)
    written: list[PointId] = []

    def chosen_batches() -> Iterator[Batch]:
        for batch in source.batches():
            chosen = _chosen(batch, matched, skip)
            if len(chosen):
                expected.update(chosen)
                written.extend(chosen.ids)
                yield chosen

    with connect(target, create=True) as client:
        if not exists:
            _schema.create(client, target, selection.dest, source.schema)
        logical.upsert_batches(client, target, selection.dest, source.layout, chosen_batches(),
                               target.instance.parallel)
    return expected, written


def _verify(target: Target, selection: Selection, source: PointSource, plan: SelectionPlan, expected: ContentHash,
            written: list[PointId], conflict: Conflict) -> list[Check]:
    replaced = len(plan.conflicts) if conflict is Conflict.REPLACE else 0
    want = plan.before + len(written) - replaced
    layout: Layout = source.layout
    checks: list[Check] = []
    with connect(target) as client:
        live = logical.count_points(client, target, selection.dest)
        checks.append(Check(f"{selection.dest}: points", live == want,
                            f"live {live}, expected {want} ({plan.before} before + {len(written) - replaced} new)"))
        content = ContentHash(layout)
        comparison = logical.Comparison()
        size = target.instance.batch_size
        for start in range(0, len(written), size):
            ids = written[start:start + size]
            content.update(logical.retrieve_batch(client, target, selection.dest, ids, layout))
        if content.hexdigest() == expected.hexdigest():
            checks.append(Check(f"{selection.dest}: content", True,
                                f"the {len(written)} copied point(s) read back with an equal content hash"))
            return checks
        skip = set(plan.conflicts) if conflict is Conflict.SKIP else None
        matched = None if selection.filter is None else set(written)
        for batch in source.batches():
            chosen = _chosen(batch, matched, skip)
            if len(chosen):
                logical.compare_batches(chosen, logical.retrieve_batch(client, target, selection.dest,
                                                                       list(chosen.ids), layout), comparison)
    detail = (f"all {comparison.compared} copied points equal; {comparison.renormalized} cosine vector(s) "
              "re-normalized by the engine") if comparison.ok else (
        f"{len(comparison.missing)} missing, {len(comparison.different)} different "
        f"({'; '.join([str(p) for p in comparison.missing[:3]] + comparison.different[:3])})")
    checks.append(Check(f"{selection.dest}: content", comparison.ok, detail))
    return checks
