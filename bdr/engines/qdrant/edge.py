"""Reading Qdrant server snapshots offline with qdrant-edge (the Qdrant engine, embedded).

No Qdrant tool checks a downloaded snapshot without a server. qdrant-edge-py (pinned
0.9.0) embeds the real engine as one shard and can load the segment layout a server
writes, so ``bdr verify`` opens a snapshot here, counts its points exactly and compares a
sample of points with the manifest.

What a snapshot looks like (Qdrant 1.x, "regular" snapshot format):

- a **shard snapshot** (``/collections/{c}/shards/{id}/snapshot``): ``segments/<uuid>.tar``
  (each holding ``snapshot/files/...``) and ``wal/``: qdrant-edge unpacks and loads it as is;
- a **collection snapshot** (``/collections/{c}/snapshots``): ``config.json`` and one
  directory per shard (``0/``, ``1/`` ...) in that layout; each shard is copied, streaming,
  into a tar of its own with the prefix stripped, then loaded;
- a **full-storage snapshot** (``/snapshots``): ``config.json`` (``collections_mapping``,
  ``collections_aliases``) and one collection snapshot per collection.

qdrant-edge refuses gzipped tars (bdr decompresses its own zstd first) and probably the
RocksDB-era layouts of old servers; such a snapshot is reported as not loadable, not as
corrupt. What is proven here: shard layouts written by qdrant-edge itself (the server's
segment format) load and count exactly; splitting a collection snapshot follows the
server's source (``collection/snapshots.rs``) but has not been run against a file made by
a real server - the day a server is reachable, the snapshot-method integration tests do.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import IO, Any

from bdr.engines.qdrant.pointfile import Batch, Layout, PointId, batch_from_records, canonical_id
from bdr.errors import CorruptArchive, UnsafeArchive
from bdr.repository.archive import check_member

logger = logging.getLogger(__name__)

PAGE = 1024


class SnapshotKind(StrEnum):
    SHARD = "shard"
    COLLECTION = "collection"
    FULL = "full"


@dataclass(slots=True)
class Inspection:
    """What qdrant-edge found in a snapshot."""

    kind: SnapshotKind
    shards: int = 0
    points: int = 0
    segments: int = 0
    sample: list[tuple[PointId, str]] = field(default_factory=list)
    """``(id, sha256 of the point's canonical encoding)`` for the sampled points."""
    missing: list[PointId] = field(default_factory=list)
    """Requested sample ids that no shard holds."""

    def sample_facts(self) -> list[list[Any]]:
        return [[point_id, digest] for point_id, digest in self.sample]


class EdgeUnavailable(CorruptArchive):
    """snapshot {name} cannot be opened with qdrant-edge: {detail}"""


def _edge() -> Any:
    try:
        import qdrant_edge
    except ImportError as exc:  # pragma: no cover - a pinned dependency
        raise EdgeUnavailable(name="(any)", detail=f"qdrant-edge-py is not installed ({exc})") from exc
    return qdrant_edge


def _clean(name: str) -> str:
    return str(PurePosixPath(name.removeprefix("./"))).lstrip("/") if name not in (".", "./") else ""


def kind_of(snapshot: Path) -> SnapshotKind:
    """Whether ``snapshot`` is a shard, collection or full-storage snapshot (from its member names)."""
    names: list[str] = []
    try:
        with tarfile.open(snapshot, mode="r|") as tar:
            for member in tar:
                names.append(_clean(member.name))
                if len(names) > 10_000:
                    break
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CorruptArchive(name=snapshot.name, detail=f"not a readable tar: {exc}") from exc
    if any(n == "segments" or n.startswith("segments/") for n in names):
        return SnapshotKind.SHARD
    if any(n.split("/", 1)[0].isdigit() for n in names):
        return SnapshotKind.COLLECTION
    if "config.json" in names and any(n.endswith(".snapshot") for n in names):
        return SnapshotKind.FULL
    raise CorruptArchive(name=snapshot.name, detail="neither a shard, a collection nor a full-storage snapshot "
                         f"(members: {', '.join(names[:5])})")


def split_shards(snapshot: Path, work: Path) -> list[Path]:
    """A collection snapshot's shards, each as a shard-snapshot tar with its ``<id>/`` prefix stripped."""
    work.mkdir(parents=True, exist_ok=True)
    writers: dict[str, tarfile.TarFile] = {}
    try:
        with tarfile.open(snapshot, mode="r|") as tar:
            for member in tar:
                name = _clean(member.name)
                head, _, rest = name.partition("/")
                if not head.isdigit() or not rest:
                    continue
                try:
                    check_member(member)
                except UnsafeArchive as exc:
                    raise CorruptArchive(name=snapshot.name, detail=exc.message) from exc
                out = writers.get(head)
                if out is None:
                    out = writers[head] = tarfile.open(work / f"shard-{head}.tar", mode="w")  # noqa: SIM115
                member.name = rest
                data: IO[bytes] | None = tar.extractfile(member) if member.isfile() else None
                out.addfile(member, data)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CorruptArchive(name=snapshot.name, detail=f"cannot split its shards: {exc}") from exc
    finally:
        for out in writers.values():
            out.close()
    return [work / f"shard-{k}.tar" for k in sorted(writers, key=int)]


def full_snapshot_config(snapshot: Path) -> dict[str, Any]:
    """The ``config.json`` of a full-storage snapshot (collections_mapping, collections_aliases)."""
    try:
        with tarfile.open(snapshot, mode="r|") as tar:
            for member in tar:
                if _clean(member.name) == "config.json" and member.isfile():
                    handle = tar.extractfile(member)
                    if handle is not None:
                        config: dict[str, Any] = json.loads(handle.read())
                        return config
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise CorruptArchive(name=snapshot.name, detail=f"unreadable full snapshot: {exc}") from exc
    raise CorruptArchive(name=snapshot.name, detail="a full snapshot without config.json")


def extract_member(snapshot: Path, member_name: str, dest: Path) -> Path:
    """Copy one member (a collection snapshot inside a full snapshot) to ``dest``, streaming."""
    try:
        with tarfile.open(snapshot, mode="r|") as tar:
            for member in tar:
                if _clean(member.name) == member_name and member.isfile():
                    source = tar.extractfile(member)
                    if source is None:
                        break
                    with dest.open("wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                    return dest
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CorruptArchive(name=snapshot.name, detail=f"cannot read member {member_name!r}: {exc}") from exc
    raise CorruptArchive(name=snapshot.name, detail=f"member {member_name!r} not found")


def shard_tars(snapshot: Path, work: Path, collection: str | None = None,
               kind: SnapshotKind | None = None) -> list[Path]:
    """The shard-snapshot tars inside ``snapshot`` (for a full snapshot: of ``collection``)."""
    kind = kind or kind_of(snapshot)
    if kind is SnapshotKind.SHARD:
        return [snapshot]
    if kind is SnapshotKind.COLLECTION:
        return split_shards(snapshot, work / "shards")
    config = full_snapshot_config(snapshot)
    mapping: dict[str, str] = config.get("collections_mapping") or {}
    if collection is None or collection not in mapping:
        raise CorruptArchive(name=snapshot.name, detail=f"the full snapshot has no collection {collection!r} "
                             f"(it has: {', '.join(mapping) or 'none'})")
    inner = extract_member(snapshot, mapping[collection], work / "collection.snapshot")
    return shard_tars(inner, work / "inner")


@dataclass(slots=True)
class _Shard:
    handle: Any
    path: Path


def _load_shards(tars: Sequence[Path], work: Path) -> Iterator[_Shard]:
    edge = _edge()
    for i, tar in enumerate(tars):
        target = work / f"loaded-{i}"
        try:
            edge.EdgeShard.unpack_snapshot(str(tar), str(target))
            handle = edge.EdgeShard.load(str(target))
        except Exception as exc:  # qdrant-edge raises plain exceptions with the engine's message
            raise EdgeUnavailable(name=tar.name, detail=str(exc) or type(exc).__name__) from exc
        try:
            yield _Shard(handle, target)
        finally:
            handle.close()
            shutil.rmtree(target, ignore_errors=True)


def _all_ids(shard: Any) -> Iterator[PointId]:
    edge = _edge()
    offset: Any = None
    while True:
        records, offset = shard.scroll(edge.ScrollRequest(offset=offset, limit=PAGE, with_payload=False,
                                                          with_vector=False))
        for record in records:
            yield canonical_id(record.id)
        if offset is None or not records:
            return


def inspect(snapshot: Path, layout: Layout, work: Path, *, collection: str | None = None,
            sample_ids: Sequence[PointId] | None = None, sample_size: int = 64, seed: int | None = None) -> Inspection:
    """Load every shard of ``snapshot`` and count its points; hash a sample of points.

    With ``sample_ids`` (from a manifest) those points are read; otherwise ``sample_size``
    ids are drawn uniformly at random (reservoir sampling over every shard's ids).
    """
    edge = _edge()
    work.mkdir(parents=True, exist_ok=True)
    kind = kind_of(snapshot)
    tars = shard_tars(snapshot, work, collection, kind)
    result = Inspection(kind, shards=len(tars))
    rng = random.Random(seed)
    reservoir: list[tuple[int, PointId]] = []
    seen = 0
    wanted = [canonical_id(i) for i in sample_ids] if sample_ids is not None else None
    found: dict[PointId, str] = {}
    for index, shard in enumerate(_load_shards(tars, work)):
        try:
            result.points += int(shard.handle.count(edge.CountRequest(exact=True)))
            result.segments += int(shard.handle.info().segments_count)
            if wanted is not None:
                found.update(_digests(shard.handle, wanted, layout))
                continue
            for point_id in _all_ids(shard.handle):
                seen += 1
                if len(reservoir) < sample_size:
                    reservoir.append((index, point_id))
                else:
                    slot = rng.randrange(seen)
                    if slot < sample_size:
                        reservoir[slot] = (index, point_id)
            mine = [p for i, p in reservoir if i == index]
            found.update(_digests(shard.handle, mine, layout))
        except EdgeUnavailable:
            raise
        except Exception as exc:
            raise EdgeUnavailable(name=snapshot.name, detail=str(exc) or type(exc).__name__) from exc
    order = wanted if wanted is not None else [p for _, p in reservoir]
    result.sample = [(p, found[p]) for p in order if p in found]
    result.missing = [p for p in order if p not in found]
    return result


def _digests(shard: Any, ids: Sequence[PointId], layout: Layout) -> dict[PointId, str]:
    if not ids:
        return {}
    records = shard.retrieve(list(ids), True, True)  # positional: the binary differs from the stub here
    batch = batch_from_records(records, layout)
    return {point_id: digest.hex() for point_id, digest in zip(batch.ids, batch.digests(), strict=True)}


def snapshot_config(snapshot: Path) -> dict[str, Any]:
    """A collection snapshot's ``config.json`` (the collection config as the server stores it) and its
    ``payload_index.json`` schema, as ``{"config": ..., "payload_schema": ...}`` (bdr's schema facts)."""
    config: dict[str, Any] | None = None
    indexes: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(snapshot, mode="r|") as tar:
            for member in tar:
                name = _clean(member.name)
                if name not in ("config.json", "payload_index.json") or not member.isfile():
                    continue
                handle = tar.extractfile(member)
                data = json.loads(handle.read()) if handle is not None else {}
                if name == "config.json":
                    config = data
                    continue
                for field_name, schema in (data.get("schema") or {}).items():
                    if isinstance(schema, str):
                        indexes[field_name] = {"data_type": schema, "params": None}
                    elif isinstance(schema, dict) and schema.get("type"):
                        indexes[field_name] = {"data_type": str(schema["type"]), "params": schema}
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise CorruptArchive(name=snapshot.name, detail=f"unreadable collection snapshot: {exc}") from exc
    if not config or "params" not in config:
        raise CorruptArchive(name=snapshot.name, detail="no collection config (config.json) in the snapshot: only "
                             "collection snapshots can be converted")
    return {"config": config, "payload_schema": indexes}


def points(snapshot: Path, layout: Layout, work: Path, batch_size: int = PAGE,
           collection: str | None = None) -> Iterator[Batch]:
    """Every point of every shard of a snapshot (for a full snapshot: of ``collection``), as batches."""
    edge = _edge()
    work.mkdir(parents=True, exist_ok=True)
    for shard in _load_shards(shard_tars(snapshot, work, collection), work):
        offset: Any = None
        while True:
            try:
                records, offset = shard.handle.scroll(edge.ScrollRequest(offset=offset, limit=batch_size,
                                                                         with_payload=True, with_vector=True))
            except Exception as exc:
                raise EdgeUnavailable(name=snapshot.name, detail=str(exc) or type(exc).__name__) from exc
            if records:
                yield batch_from_records(records, layout)
            if offset is None or not records:
                break
