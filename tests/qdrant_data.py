"""Test data for Qdrant: collections with every kind of vector, and a snapshot to compare them by.

:func:`load_every_kind` creates, in any qdrant-client (embedded or server):

- ``docs``: named vectors - ``text`` (dense, Cosine, 16-d, random, so the engine's
  re-normalization matters), ``colbert`` (multi-vector, Dot, MaxSim) and ``keywords``
  (sparse, IDF) - integer and UUID ids, points that lack some named vectors, nested
  payloads, a keyword index and a text index with BM25 scoring, collection metadata;
- ``plain``: one unnamed dense vector (Euclid), 40 points;
- ``sparse_only``: sparse vectors only;
- alias ``docs_current`` -> ``docs``.

:func:`dump` reads every point back as plain Python (ids, payloads, vectors as float32 - what
Qdrant stores) plus aliases, using only qdrant-client, none of bdr; :func:`assert_same`
compares two dumps exactly except that a vector component may move by 1e-6: local mode keeps
vectors given as Python floats at float64 precision, a Qdrant (and a logical backup) float32.
"""

from __future__ import annotations

import dataclasses
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from bdr.config import Config, QdrantInstance

UUIDS = [str(uuid.UUID(int=(i + 1) * 0x1234567890ABCDEF)) for i in range(10)]


def embedded_config(tmp_path: Path, **changes: Any) -> Config:
    """A Config whose default Qdrant is the embedded engine under ``tmp_path/qdrant``."""
    instance = QdrantInstance(name="production", path=str(tmp_path / "qdrant"), **changes)
    return dataclasses.replace(Config(), repository=str(tmp_path / "repo"), qdrant={"production": instance},
                               qdrant_default="production")


def open_embedded(config: Config, name: str = "production") -> QdrantClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return QdrantClient(path=str(config.qdrant_instance(name).path))


def load_every_kind(client: QdrantClient, seed: int = 7, docs: int = 60, prefix: str = "") -> None:
    """Create the collections described in the module docstring (names prefixed with ``prefix``)."""
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        client.create_collection(
            prefix + "docs",
            vectors_config={
                "text": models.VectorParams(size=16, distance=models.Distance.COSINE),
                "colbert": models.VectorParams(
                    size=4, distance=models.Distance.DOT,
                    multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)),
            },
            sparse_vectors_config={"keywords": models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata={"owner": "agents", "schema": 3},
        )
        client.create_payload_index(prefix + "docs", "tenant", models.PayloadSchemaType.KEYWORD)
        client.create_payload_index(prefix + "docs", "body", models.TextIndexParams(
            type=models.TextIndexType.TEXT, tokenizer=models.TokenizerType.WORD, scoring=True))
        points = []
        for i in range(docs):
            point_id: int | str = UUIDS[(i // 6) % len(UUIDS)] if i % 6 == 5 else i
            vector: dict[str, Any] = {"text": rng.normal(size=16).astype(np.float32).tolist()}
            if i % 3:
                vector["colbert"] = rng.normal(size=(1 + i % 4, 4)).astype(np.float32).tolist()
            if i % 4 != 1:
                indices = sorted(rng.choice(1000, size=1 + i % 5, replace=False).tolist())
                vector["keywords"] = models.SparseVector(indices=indices,
                                                         values=rng.random(len(indices)).astype(np.float32).tolist())
            payload = {"tenant": ["acme", "globex", "initech"][i % 3], "n": i, "score": i / 7,
                       "body": f"document number {i} about {'cats' if i % 2 else 'dogs'}",
                       "meta": {"tags": ["a", "b"][: i % 3], "nested": {"deep": i % 5}}}
            points.append(models.PointStruct(id=point_id, vector=vector, payload=payload))
        client.upsert(prefix + "docs", points)
        client.create_collection(prefix + "plain",
                                 vectors_config=models.VectorParams(size=5, distance=models.Distance.EUCLID))
        client.upsert(prefix + "plain", [models.PointStruct(id=1000 + i, vector=rng.normal(size=5).tolist(),
                                                   payload={"i": i} if i % 2 else None) for i in range(40)])
        client.create_collection(prefix + "sparse_only", vectors_config={},
                                 sparse_vectors_config={"bm25": models.SparseVectorParams()})
        client.upsert(prefix + "sparse_only", [models.PointStruct(
            id=i, vector={"bm25": models.SparseVector(indices=[i, i + 7], values=[0.5, 1.5])},
            payload={"word": f"w{i}"}) for i in range(12)])
        client.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name=prefix + "docs", alias_name=prefix + "docs_current"))])


def _plain(value: Any, vector: bool = False) -> Any:
    if isinstance(value, models.SparseVector):
        pairs = sorted(zip(value.indices, value.values, strict=True))
        return ("sparse", tuple(i for i, _ in pairs), tuple(float(np.float32(v)) for _, v in pairs))
    if isinstance(value, dict):
        return {k: _plain(v, vector) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return tuple(_plain(v, vector) for v in value)
    if isinstance(value, float) and vector:
        return float(np.float32(value))
    return value


def _differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                yield f"{path}/{key}: only in {'second' if key in b else 'first'}"
            else:
                yield from _differences(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, tuple | list) and isinstance(b, tuple | list):
        if len(a) != len(b):
            yield f"{path}: length {len(a)} != {len(b)}"
        else:
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                yield from _differences(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        if abs(a - b) > 1e-6:
            yield f"{path}: {a} != {b}"
    elif a != b:
        yield f"{path}: {a!r} != {b!r}"


def assert_same(first: Any, second: Any) -> None:
    """Two dumps are the same data (vector components within 1e-6)."""
    found = list(_differences(first, second))
    assert not found, f"{len(found)} difference(s): " + "; ".join(found[:5])


def dump_collection(client: QdrantClient, name: str) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    offset: Any = None
    while True:
        records, offset = client.scroll(name, limit=256, offset=offset, with_payload=True, with_vectors=True)
        for r in records:
            out[str(r.id)] = (_plain(r.vector, vector=True), _plain(r.payload or {}))
        if offset is None:
            return out


def dump(client: QdrantClient, prefix: str = "") -> dict[str, Any]:
    """Every collection's points, its vector config and metadata, and the aliases (of the collections
    whose name starts with ``prefix``)."""
    collections = sorted(c.name for c in client.get_collections().collections if c.name.startswith(prefix))
    out: dict[str, Any] = {"aliases": sorted((a.alias_name, a.collection_name) for a in client.get_aliases().aliases
                                             if a.collection_name.startswith(prefix))}
    for name in collections:
        info = client.get_collection(name)
        out[name] = {
            "vectors": info.config.params.model_dump(mode="json")["vectors"],
            "sparse": info.config.params.model_dump(mode="json")["sparse_vectors"],
            "metadata": info.config.metadata,
            "points": dump_collection(client, name),
        }
    return out


def dump_embedded(config: Config, name: str = "production") -> dict[str, Any]:
    client = open_embedded(config, name)
    try:
        return dump(client)
    finally:
        client.close()


# --- server-snapshot-like inputs, made from qdrant-edge shards ----------------------------------------


EDGE_PARAMS = {"vectors": {"text": {"size": 8, "distance": "Cosine"}}, "sparse_vectors": {"kw": {}}}
"""A collection config (server JSON) matching the shards :func:`make_edge_shard` writes."""


def make_edge_shard(path: Path, ids: list[int | str], sparse: bool = True, seed: int = 1) -> Path:
    """A shard written by the real Qdrant engine (qdrant-edge), flushed and closed: the segment
    layout a server's shard snapshot holds."""
    import qdrant_edge as qe

    rng = np.random.default_rng(seed)
    config = qe.EdgeConfig(
        vectors={"text": qe.EdgeVectorParams(size=8, distance=qe.Distance.Cosine)},
        sparse_vectors={"kw": qe.EdgeSparseVectorParams()} if sparse else None,
    )
    shard = qe.EdgeShard.create(str(path), config)
    points = []
    for n, point_id in enumerate(ids):
        vector: dict[str, Any] = {"text": rng.normal(size=8).tolist()}
        if sparse and n % 2:
            vector["kw"] = qe.SparseVector([n, n + 3], [0.5, 1.5])
        points.append(qe.Point(point_id, vector, {"n": n, "tenant": ["a", "b"][n % 2], "nested": {"x": [n]}}))
    shard.update(qe.UpdateOperation.upsert_points(points))
    shard.flush()
    shard.close()
    return path


def _add_bytes(tar: Any, name: str, data: bytes) -> None:
    import io
    import tarfile

    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_shard(tar: Any, shard: Path, prefix: str = "") -> None:
    """Add ``shard`` to an open tar the way a server's shard snapshot stores it: each segment as
    ``segments/<uuid>.tar`` holding ``snapshot/files/...``, and the ``wal/`` directory."""
    import io
    import tarfile

    for segment in sorted((shard / "segments").iterdir()):
        inner = io.BytesIO()
        with tarfile.open(fileobj=inner, mode="w") as seg:
            for file in sorted(segment.rglob("*")):
                seg.add(file, arcname=f"snapshot/files/{file.relative_to(segment).as_posix()}", recursive=False)
        _add_bytes(tar, f"{prefix}segments/{segment.name}.tar", inner.getvalue())
    for file in sorted((shard / "wal").rglob("*")):
        tar.add(file, arcname=f"{prefix}wal/{file.relative_to(shard / 'wal').as_posix()}", recursive=False)


def shard_snapshot(shard: Path, out: Path) -> Path:
    import tarfile

    with tarfile.open(out, "w") as tar:
        add_shard(tar, shard)
    return out


def collection_snapshot(shards: list[Path], out: Path, params: dict[str, Any] | None = None) -> Path:
    """A collection snapshot as a server writes it: ``./config.json`` and ``./0/``, ``./1/`` ..."""
    import json
    import tarfile

    with tarfile.open(out, "w") as tar:
        _add_bytes(tar, "./config.json", json.dumps({"params": {**(params or EDGE_PARAMS),
                                                                "shard_number": len(shards)}}).encode())
        _add_bytes(tar, "./payload_index.json", json.dumps({"schema": {"tenant": "keyword", "n": {
            "type": "integer", "lookup": True, "range": True}}}).encode())
        for number, shard in enumerate(shards):
            _add_bytes(tar, f"./{number}/shard_config.json", b'{"type": "Local"}')
            add_shard(tar, shard, prefix=f"./{number}/")
    return out


def full_snapshot(collections: dict[str, Path], out: Path) -> Path:
    """A full-storage snapshot: ``config.json`` (collections_mapping) and the collection snapshots."""
    import json
    import tarfile

    mapping = {name: f"{name}-1-2025-01-24-02-00-00.snapshot" for name in collections}
    with tarfile.open(out, "w") as tar:
        for name, path in collections.items():
            tar.add(path, arcname=mapping[name])
        _add_bytes(tar, "config.json", json.dumps({"collections_mapping": mapping,
                                                   "collections_aliases": {"current": "docs"}}).encode())
    return out
