"""The logical method: every collection's schema and points, exported through the API.

Works with a server of any version and with the embedded engine, and is what makes a
selective restore possible. A backup writes, per collection, one point file
(:mod:`.pointfile`) streamed batch by batch (batched ``scroll``) through zstd straight into
the backup set, and records in the manifest:

- ``qdrant_version`` (``1.12.4`` or ``embedded qdrant-client X``) and ``mode``;
- per collection: ``config`` and ``payload_schema`` (:mod:`.schema`), ``points`` and
  ``content_hash`` (order-independent, see :mod:`.pointfile`), ``file``;
- ``aliases`` pointing at the collections in the set.

Qdrant has no point-in-time scroll: points written while a collection is exported may or
may not be in the backup (the manifest's count and hash describe exactly what is). For a
frozen copy of a busy server use the ``snapshot`` method.

An import recreates the collection with the same config and indexes, then upserts the
batches - in parallel into a server (``parallel`` workers, a bounded queue so memory stays
flat), one at a time into the embedded engine, which is single-threaded anyway.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from qdrant_client import QdrantClient, models

from bdr.engines.base import BackupRequest, Check, RestoreRequest
from bdr.engines.qdrant import schema as _schema
from bdr.engines.qdrant.client import Target, aliases, connect, list_collections, qdrant_errors, server_version
from bdr.engines.qdrant.method import PointOrigin, RestorePlan
from bdr.engines.qdrant.pointfile import (
    HASH_NAME,
    Batch,
    ContentHash,
    Layout,
    PointFileReader,
    PointFileWriter,
    VectorKind,
    batch_from_records,
)
from bdr.engines.qdrant.schema import CollectionSchema
from bdr.errors import BackupNotFound, CorruptArchive, UsageError
from bdr.repository import SetWriter
from bdr.repository.manifest import Manifest
from bdr.util import progress

logger = logging.getLogger(__name__)

METHOD = "logical"
POINTS_DIR = "collections"
COSINE_TOLERANCE = 1e-6
"""How far a cosine vector may move if an engine re-normalizes an already normalized vector on upsert
(float32 rounding). Qdrant servers leave unit-length vectors alone and qdrant-client local mode
persists the vector as given, so this is a safety margin, not the usual case."""
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def points_file(name: str) -> str:
    """The set-relative file of a collection's points (names that are not file-safe get a hash)."""
    if _SAFE_NAME.fullmatch(name) and not name.startswith("."):
        return f"{POINTS_DIR}/{name}.points.zst"
    return f"{POINTS_DIR}/c-{hashlib.sha256(name.encode()).hexdigest()[:16]}.points.zst"


def selected_collections(client: QdrantClient, target: Target, wanted: Sequence[str]) -> list[str]:
    """The collections to back up: ``wanted`` (each must exist), or all of them."""
    existing = list_collections(client, target)
    if not wanted:
        return existing
    missing = [c for c in wanted if c not in existing]
    if missing:
        raise BackupNotFound(ref=f"collection {', '.join(missing)}",
                             repo=f"{target.label()} (it has: {', '.join(existing) or 'no collections'})")
    return list(dict.fromkeys(wanted))


def wanted_collections(request: BackupRequest, target: Target) -> list[str]:
    wanted = request.options.get("collections") or target.instance.collections
    if isinstance(wanted, str):
        wanted = [wanted]
    return [str(c) for c in wanted]


# --- export --------------------------------------------------------------------------------------


def scroll_batches(client: QdrantClient, target: Target, name: str, layout: Layout,
                   batch_size: int) -> Iterator[Batch]:
    """Every point of collection ``name``, as batches, through batched scroll."""
    offset: Any = None
    while True:
        with qdrant_errors(target, f"scroll collection {name!r}"):
            records, offset = client.scroll(name, limit=batch_size, offset=offset, with_payload=True,
                                            with_vectors=True)
        if records:
            yield batch_from_records(records, layout)
        if offset is None:
            return


def backup(request: BackupRequest, writer: SetWriter, target: Target) -> None:
    """Export the selected collections into ``writer`` (see the module docstring for the facts)."""
    instance = target.instance
    writer.method = METHOD
    with connect(target) as client:
        names = selected_collections(client, target, wanted_collections(request, target))
        all_aliases = aliases(client, target)
        collections: dict[str, Any] = {}
        for name in names:
            schema = _schema.describe(client, target, name)
            if schema.custom_sharding:
                raise UsageError(detail=f"collection {name!r} uses custom sharding (shard keys), which the "
                                 "logical method does not support yet; back it up with method snapshot")
            layout = schema.layout
            pw = PointFileWriter(name, layout)
            entry = writer.add_stream(points_file(name),
                                      pw.compressed(scroll_batches(client, target, name, layout, instance.batch_size)))
            collections[name] = {**schema.to_facts(), "points": pw.count, "content_hash": pw.content_hash,
                                 "file": entry.path, "layout": layout.to_dict()}
            logger.info("qdrant %s: exported collection %s (%d points)", target.name, name, pw.count)
        writer.facts.update(
            method=METHOD,
            mode="embedded" if target.embedded else "server",
            qdrant_version=server_version(client, target),
            hash=HASH_NAME,
            collections=collections,
            aliases={a: c for a, c in sorted(all_aliases.items()) if c in collections},
        )
    writer.compressed = True


# --- import --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Imported:
    """What an import wrote: the point count and content hash of the file, as read."""

    points: int
    content_hash: str
    dropped: list[str] = field(default_factory=list)


def open_points(path: Path, name: str, label: str | None = None) -> tuple[PointFileReader, Any]:
    """The point file at ``path``; ``label``: show its reading as a progress task (the import)."""
    try:
        handle: BinaryIO = path.open("rb")
        if label is not None:
            handle = progress.reading(handle, label, path.stat().st_size)
    except OSError as exc:
        raise CorruptArchive(name=name, detail=f"cannot open the point file: {exc.strerror}") from exc
    return PointFileReader(handle, name), handle


def upsert_batches(client: QdrantClient, target: Target, name: str, layout: Layout, batches: Iterator[Batch],
                   parallel: int) -> None:
    """Upsert ``batches`` into ``name``; ``parallel`` > 1 keeps that many requests in flight."""
    def send(batch: Batch) -> None:
        with qdrant_errors(target, f"upsert into collection {name!r}"):
            client.upsert(name, points=batch.points(layout), wait=True)

    if parallel <= 1 or target.embedded:
        for batch in batches:
            send(batch)
        return
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="bdr-upsert") as pool:
        pending: list[Future[None]] = []
        for batch in batches:
            pending.append(pool.submit(send, batch))
            if len(pending) >= 2 * parallel:
                pending.pop(0).result()
        for future in pending:
            future.result()


def import_collection(client: QdrantClient, target: Target, name: str, schema: CollectionSchema, path: Path,
                      replace: bool = True) -> Imported:
    """Create ``name`` (dropping a live one when ``replace``) from ``schema`` and upsert the file's points."""
    with qdrant_errors(target, f"check collection {name!r}"):
        exists = client.collection_exists(name)
    if exists:
        if not replace:
            raise UsageError(detail=f"collection {name!r} already exists in {target.label()}")
        with qdrant_errors(target, f"delete collection {name!r}"):
            client.delete_collection(name)
    dropped = _schema.create(client, target, name, schema)
    reader, handle = open_points(path, path.name, label=f"import {name}")
    with handle:
        if reader.layout != schema.layout:
            raise CorruptArchive(name=path.name, detail="its vector layout does not match the collection config")
        upsert_batches(client, target, name, reader.layout, reader.batches(), target.instance.parallel)
    return Imported(reader.count, reader.content_hash, dropped)


def restore_aliases(client: QdrantClient, target: Target, wanted: Mapping[str, str]) -> None:
    """Make each alias point at its collection (replacing an alias of the same name)."""
    if not wanted:
        return
    existing = aliases(client, target)
    ops: list[Any] = []
    for alias, collection in wanted.items():
        if existing.get(alias) == collection:
            continue
        if alias in existing:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        ops.append(models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)))
    if ops:
        with qdrant_errors(target, "update aliases"):
            client.update_collection_aliases(change_aliases_operations=ops)


# --- checks against live data ---------------------------------------------------------------------


def live_hash(client: QdrantClient, target: Target, name: str, layout: Layout, batch_size: int) -> ContentHash:
    content = ContentHash(layout)
    for batch in scroll_batches(client, target, name, layout, batch_size):
        content.update(batch)
    return content


def retrieve_batch(client: QdrantClient, target: Target, name: str, ids: list[Any], layout: Layout) -> Batch:
    with qdrant_errors(target, f"read points of collection {name!r}"):
        records = client.retrieve(name, ids=ids, with_payload=True, with_vectors=True)
    return batch_from_records(records, layout)


@dataclass(slots=True)
class Comparison:
    """Points of a backup compared one by one with the live ones."""

    compared: int = 0
    missing: list[Any] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    renormalized: int = 0
    """Cosine vectors that differ by float32 re-normalization only (within :data:`COSINE_TOLERANCE`)."""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.different


def compare_batches(expected: Batch, live: Batch, result: Comparison) -> None:
    """Compare ``expected`` with the same points read back (``live``, any order)."""
    position = {point_id: i for i, point_id in enumerate(live.ids)}
    live_vectors = [_per_point_arrays(c) for c in live.columns]
    want_vectors = [_per_point_arrays(c) for c in expected.columns]
    for i, point_id in enumerate(expected.ids):
        result.compared += 1
        j = position.get(point_id)
        if j is None:
            result.missing.append(point_id)
            continue
        if expected.payloads[i] != live.payloads[j]:
            result.different.append(f"{point_id}: payload")
            continue
        for column, want, have in zip(expected.columns, want_vectors, live_vectors, strict=True):
            a, b = want[i], have[j]
            if a is None or b is None:
                if a is not b:
                    result.different.append(f"{point_id}: vector {column.spec.name!r} present in one only")
                continue
            if a[0].shape != b[0].shape or any(np.any(x != y) for x, y in zip(a[1:], b[1:], strict=True)):
                result.different.append(f"{point_id}: vector {column.spec.name!r}")
                continue
            if np.array_equal(a[0], b[0]):
                continue
            cosine = column.spec.distance == "Cosine" and column.spec.kind is not VectorKind.SPARSE
            if cosine and float(np.max(np.abs(a[0] - b[0]))) <= COSINE_TOLERANCE:
                result.renormalized += 1
            else:
                result.different.append(f"{point_id}: vector {column.spec.name!r}")


def _per_point_arrays(column: Any) -> list[tuple[Any, ...] | None]:
    """Each point's vector as (values, *exact parts) with sparse entries sorted by index."""
    out: list[tuple[Any, ...] | None] = [None] * len(column.present)
    where = np.flatnonzero(column.present)
    if column.spec.kind is VectorKind.DENSE:
        for k, i in enumerate(where):
            out[i] = (column.data[k],)
        return out
    offsets = np.concatenate(([0], np.cumsum(column.counts, dtype=np.int64)))
    for k, i in enumerate(where):
        a, b = offsets[k], offsets[k + 1]
        if column.spec.kind is VectorKind.MULTI:
            out[i] = (column.data[a:b],)
        else:
            order = np.argsort(column.indices[a:b], kind="stable")
            out[i] = (column.data[a:b][order], column.indices[a:b][order])
    return out


def compare_file(client: QdrantClient, target: Target, name: str, path: Path) -> tuple[Comparison, str]:
    """Every point of a point file against the live collection ``name`` (retrieved by id); and the
    file's own content hash (which must be the manifest's for the comparison to mean anything)."""
    result = Comparison()
    reader, handle = open_points(path, path.name)
    with handle:
        for batch in reader.batches():
            compare_batches(batch, retrieve_batch(client, target, name, list(batch.ids), reader.layout), result)
    return result, reader.content_hash


def layout_of(facts: Mapping[str, Any]) -> Layout:
    return Layout.from_dict(facts["layout"]) if facts.get("layout") else CollectionSchema.from_facts(facts).layout


def live_facts(client: QdrantClient, target: Target, name: str) -> dict[str, Any]:
    """A live collection's manifest facts (schema, layout, point count, content hash), without a file."""
    schema = _schema.describe(client, target, name)
    content = live_hash(client, target, name, schema.layout, target.instance.batch_size)
    return {**schema.to_facts(), "points": content.count, "content_hash": content.hexdigest(),
            "layout": schema.layout.to_dict()}


def content_check(client: QdrantClient, target: Target, name: str, facts: Mapping[str, Any], path: Path | None,
                  label: str) -> Check:
    """The live collection's content equals the backup's: same content hash, or (when an engine
    re-normalized cosine vectors on upsert) the same points within float32 rounding. Without
    a point file (``path`` None: a volume copy, nothing was re-normalized) the hash must match."""
    content = live_hash(client, target, name, layout_of(facts), target.instance.batch_size)
    want = str(facts.get("content_hash", ""))
    if content.hexdigest() == want:
        return Check(f"{label}: content", True, f"content hash equal ({want[:16]}, {content.count} points)")
    if path is None:
        return Check(f"{label}: content", False, f"content hash {content.hexdigest()[:16]} != backup {want[:16]}")
    comparison, file_hash = compare_file(client, target, name, path)
    if file_hash != want:
        return Check(f"{label}: content", False, f"the backup's point file hashes to {file_hash[:16]}, its manifest "
                     f"says {want[:16]}: the set is inconsistent")
    if comparison.ok and content.count == facts.get("points"):
        return Check(f"{label}: content", True,
                     f"all {comparison.compared} points equal; {comparison.renormalized} cosine vector(s) were "
                     f"re-normalized by the engine (within {COSINE_TOLERANCE:g}), so the exact hash differs")
    problems = [f"missing {p}" for p in comparison.missing[:3]] + comparison.different[:3]
    return Check(f"{label}: content", False,
                 f"content hash {content.hexdigest()[:16]} != backup {want[:16]}: "
                 f"{len(comparison.missing)} missing, {len(comparison.different)} different ({'; '.join(problems)})")


def count_points(client: QdrantClient, target: Target, name: str) -> int:
    with qdrant_errors(target, f"count points of collection {name!r}"):
        return int(client.count(name, exact=True).count)


def verify_collection(client: QdrantClient, target: Target, name: str, facts: Mapping[str, Any],
                      path: Path | None, label: str | None = None) -> list[Check]:
    """Config, point count and content of live collection ``name`` against its manifest facts."""
    label = label or name
    checks: list[Check] = []
    schema = CollectionSchema.from_facts(facts)
    scope = _schema.EMBEDDED_SCOPE if target.embedded else ()
    differ, missing = _schema.config_differences(schema.config, _schema.live_config(client, target, name), scope)
    detail = "equal" if not differ else "; ".join(differ[:4])
    if missing and not differ:
        detail += f" ({len(missing)} key(s) not reported by the target: {', '.join(missing[:3])})"
    checks.append(Check(f"{label}: config", not differ, detail))
    live = count_points(client, target, name)
    checks.append(Check(f"{label}: points", live == facts.get("points"), f"live {live}, backup {facts.get('points')}"))
    checks.append(content_check(client, target, name, facts, path, label))
    return checks


# --- the method -------------------------------------------------------------------------------------


def existing_collections(target: Target) -> list[str]:
    """The target's collections, without creating an embedded directory that is not there."""
    from bdr.engines.qdrant.client import META_FILE

    if target.embedded and not (target.path / META_FILE).is_file():
        return []
    with connect(target) as client:
        return list_collections(client, target)


def collection_facts(manifest: Manifest) -> dict[str, dict[str, Any]]:
    collections: dict[str, dict[str, Any]] = dict(manifest.facts.get("collections") or {})
    return collections


class LogicalMethod:
    """Schema and points through the API (see the module docstring)."""

    name = METHOD

    def backup(self, request: BackupRequest, writer: SetWriter, target: Target) -> None:
        backup(request, writer, target)

    def plan(self, request: RestoreRequest, target: Target, files: Path, manifest: Manifest) -> RestorePlan:
        collections = list(collection_facts(manifest))
        live = existing_collections(target)
        plan = RestorePlan(collections, [c for c in collections if c in live])
        if target.embedded and manifest.facts.get("mode") == "server":
            plan.notes.append("the embedded engine keeps only vectors, sparse vectors, metadata and text indexes "
                              "with scoring of each collection's config")
        return plan

    def replace(self, request: RestoreRequest, target: Target, files: Path, manifest: Manifest,
                plan: RestorePlan) -> list[str]:
        notes: list[str] = []
        facts = collection_facts(manifest)
        with connect(target, create=True) as client:
            for name in plan.collections:
                imported = import_collection(client, target, name, CollectionSchema.from_facts(facts[name]),
                                             files / facts[name]["file"])
                if imported.content_hash != facts[name].get("content_hash"):
                    raise CorruptArchive(name=facts[name]["file"], detail=f"its points hash to "
                                         f"{imported.content_hash[:16]}, the manifest says "
                                         f"{str(facts[name].get('content_hash'))[:16]}")
                if imported.dropped:
                    notes.append(f"{name}: config keys unknown to this qdrant-client dropped: "
                                 f"{', '.join(imported.dropped)}")
                logger.info("qdrant %s: imported collection %s (%d points)", target.name, name, imported.points)
            restore_aliases(client, target, dict(manifest.facts.get("aliases") or {}))
        return notes

    def check_live(self, target: Target, files: Path, manifest: Manifest, plan: RestorePlan) -> list[Check]:
        facts = collection_facts(manifest)
        checks: list[Check] = []
        with connect(target) as client:
            for name in plan.collections:
                checks += verify_collection(client, target, name, facts[name], files / facts[name]["file"])
            checks.append(alias_check(client, target, dict(manifest.facts.get("aliases") or {})))
        return checks

    def point_origin(self, manifest: Manifest, files: Path, facts: dict[str, Any], work: Path) -> PointOrigin:
        return PointOrigin(file=files / facts["file"])

    def verify(self, manifest: Manifest, files: Path, restore_test: bool) -> list[Check]:
        checks = verify_files(manifest, files)
        if restore_test and all(c.ok for c in checks):
            checks += restore_test_embedded(manifest, files)
        return checks


def alias_check(client: QdrantClient, target: Target, wanted: Mapping[str, str]) -> Check:
    live = aliases(client, target)
    wrong = [f"{a} -> {live.get(a)} (backup: {c})" for a, c in wanted.items() if live.get(a) != c]
    return Check("aliases", not wrong, "; ".join(wrong) or f"{len(wanted)} alias(es) in place")


def verify_files(manifest: Manifest, files: Path) -> list[Check]:
    """Each point file decodes, and its point count and content hash equal the manifest's."""
    checks: list[Check] = []
    for name, facts in collection_facts(manifest).items():
        path = files / str(facts.get("file", points_file(name)))
        try:
            reader, handle = open_points(path, str(facts.get("file")))
            with handle:
                for _ in reader.batches():
                    pass
        except CorruptArchive as exc:
            checks.append(Check(f"{name}: point file", False, exc.message))
            continue
        problems = []
        if reader.collection != name:
            problems.append(f"the file holds collection {reader.collection!r}")
        if facts.get("layout") and reader.layout != Layout.from_dict(facts["layout"]):
            problems.append("its vector layout differs from the manifest's")
        if reader.count != facts.get("points"):
            problems.append(f"{reader.count} points, manifest {facts.get('points')}")
        if reader.content_hash != facts.get("content_hash"):
            want = str(facts.get("content_hash"))
            problems.append(f"content hash {reader.content_hash[:16]} != manifest {want[:16]}")
        checks.append(Check(f"{name}: point file", not problems,
                            "; ".join(problems) or f"{reader.count} points, content hash equal"))
    if not checks:
        checks.append(Check("collections", True, "the backup holds no collections"))
    return checks


def restore_test_embedded(manifest: Manifest, files: Path) -> list[Check]:
    """Import every collection into a temporary embedded instance, reopen it, and compare."""
    import tempfile

    from bdr.config import QdrantInstance

    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="bdr-qdrant-test-") as scratch:
        target = Target(QdrantInstance(name="restore-test", path=scratch, parallel=1), scratch)
        facts = collection_facts(manifest)
        with connect(target, create=True) as client:
            for name, item in facts.items():
                import_collection(client, target, name, CollectionSchema.from_facts(item), files / item["file"])
        with connect(target) as client:  # reopened: what was persisted, not what is in memory
            for name, item in facts.items():
                checks += [Check(f"restore test: {c.name}", c.ok, c.detail)
                           for c in verify_collection(client, target, name, item, files / item["file"])]
    return checks


IMPLEMENTATION = LogicalMethod()
