"""Benchmark of the Qdrant logical method, as ratios against a floor measured in the same run.

``--points`` points (default 100,000) of ``--dims`` float32 dimensions (default 384, a
sentence-embedding size; Cosine) with a small payload, in the embedded engine
(qdrant-client local mode), measured four ways:

- ``floor upsert``: plain qdrant-client ``upsert`` of the same points, batches of 1024, into an
  empty collection - what any import has to pay;
- ``floor open + scroll``: opening the directory (local mode loads every point from SQLite)
  and one ``scroll`` over all points with vectors and payloads - what any export has to pay;
- ``bdr export``: ``bdr backup qdrant`` end to end (open, scroll, columnar encoding, content
  hash, zstd, written into a repository, manifest);
- ``bdr import``: the ``replace`` step of ``bdr restore qdrant`` (create the collection,
  decode, upsert) into an empty directory, and its ``verify`` step (open, count, a scroll and
  a content hash of all points) against the plain open + scroll;
- ``format``: the point file alone (encode + hash + zstd, and decode + hash), no Qdrant.

Run: ``.venv/bin/python bench/qdrant_logical.py [--points N] [--dims D]``. Nothing is
asserted: the numbers are the result. Local mode is slow at upsert (it commits every point
to SQLite) and the numbers say so.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from bdr.config import Config, QdrantInstance
from bdr.engines import engine_for
from bdr.engines.base import BackupRequest, RestoreRequest, write_backup
from bdr.engines.qdrant.pointfile import Layout, PointFileReader, PointFileWriter, batch_from_records
from bdr.repository import Repository

BATCH = 1024
COLLECTION = "embeddings"


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    points: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else 0.0


def _quiet() -> Any:
    context = warnings.catch_warnings()
    context.__enter__()
    warnings.simplefilter("ignore", UserWarning)
    return context


def make_points(count: int, dims: int, seed: int = 11) -> tuple[np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    payloads = [{"doc": f"doc-{i // 8}", "chunk": i % 8, "tenant": ["acme", "globex", "initech"][i % 3],
                 "text": f"chunk {i} of a document about topic {i % 97}"} for i in range(count)]
    return vectors, payloads


def floor_upsert(path: Path, vectors: np.ndarray, payloads: list[dict[str, Any]]) -> Measurement:
    client = QdrantClient(path=str(path))
    client.create_collection(COLLECTION, vectors_config=models.VectorParams(size=vectors.shape[1],
                                                                            distance=models.Distance.COSINE))
    begun = time.perf_counter()
    for start in range(0, len(vectors), BATCH):
        end = min(start + BATCH, len(vectors))
        client.upsert(COLLECTION, [models.PointStruct(id=i, vector=vectors[i].tolist(), payload=payloads[i])
                                   for i in range(start, end)], wait=True)
    seconds = time.perf_counter() - begun
    client.close()
    return Measurement("floor upsert (plain qdrant-client)", len(vectors), seconds)


def floor_scroll(path: Path, count: int) -> tuple[Measurement, Measurement]:
    begun = time.perf_counter()
    client = QdrantClient(path=str(path))
    opened = time.perf_counter()
    offset: Any = None
    seen = 0
    while True:
        records, offset = client.scroll(COLLECTION, limit=BATCH, offset=offset, with_payload=True, with_vectors=True)
        seen += len(records)
        if offset is None:
            break
    done = time.perf_counter()
    client.close()
    assert seen == count, (seen, count)
    return (Measurement("floor open + scroll (plain qdrant-client)", count, done - begun),
            Measurement("floor scroll only", count, done - opened))


def config_for(base: Path, name: str, path: Path) -> Config:
    return dataclasses.replace(Config(), repository=str(base / "repo"),
                               qdrant={name: QdrantInstance(name=name, path=str(path), batch_size=BATCH)},
                               qdrant_default=name)


def bdr_export(base: Path, path: Path, count: int) -> tuple[Measurement, Any]:
    config = config_for(base, "source", path)
    repo = Repository.open(config.repository_path())
    begun = time.perf_counter()
    manifest = write_backup(engine_for("qdrant"), BackupRequest(config=config, repository=repo), "source", "default")
    seconds = time.perf_counter() - begun
    return Measurement("bdr export (bdr backup qdrant)", count, seconds), repo.get(manifest.id)


def bdr_import(base: Path, backup: Any, count: int) -> tuple[Measurement, Measurement, bool]:
    target = base / "restored"
    config = config_for(base, "target", target)
    repo = Repository.open(config.repository_path())
    result = engine_for("qdrant").restore(RestoreRequest(config=config, repository=repo, backup=backup,
                                                         target="target"))
    steps = {s.name: s.seconds for s in result.steps}
    return (Measurement("bdr import (restore: replace step)", count, steps["replace"]),
            Measurement("bdr verify (restore: verify step)", count, steps["verify"]), result.ok)


def format_only(path: Path, count: int) -> tuple[Measurement, Measurement, int]:
    """Encode + hash + zstd, then decode + hash, of points already read (no Qdrant in the timing)."""
    client = QdrantClient(path=str(path))
    layout = Layout.from_params(client.get_collection(COLLECTION).config.params.model_dump(mode="json"))
    records: list[Any] = []
    offset: Any = None
    while True:
        page, offset = client.scroll(COLLECTION, limit=BATCH, offset=offset, with_payload=True, with_vectors=True)
        records.append(page)
        if offset is None:
            break
    client.close()
    begun = time.perf_counter()
    writer = PointFileWriter(COLLECTION, layout)
    data = b"".join(writer.compressed(batch_from_records(page, layout) for page in records))
    encoded = time.perf_counter() - begun
    begun = time.perf_counter()
    reader = PointFileReader(io.BytesIO(data), "bench")
    decoded_points = sum(len(b) for b in reader.batches())
    decoded = time.perf_counter() - begun
    assert decoded_points == count and reader.content_hash == writer.content_hash
    return (Measurement("format: records -> batches, hash, zstd", count, encoded),
            Measurement("format: zstd -> batches, hash", count, decoded), len(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    args = parser.parse_args(argv)
    quiet = _quiet()
    base = Path(tempfile.mkdtemp(prefix="bdr-bench-qdrant-"))
    try:
        vectors, payloads = make_points(args.points, args.dims)
        print(f"{args.points:,} points x {args.dims} dims (float32, Cosine) + payload, embedded qdrant-client "
              "local mode; each number measured once in this run\n", flush=True)
        source = base / "source"
        upsert = floor_upsert(source, vectors, payloads)
        print(f"  {upsert.name}: {upsert.rate:,.0f} points/s", flush=True)
        open_scroll, scroll = floor_scroll(source, args.points)
        print(f"  {open_scroll.name}: {open_scroll.rate:,.0f} points/s ({scroll.name}: {scroll.rate:,.0f})",
              flush=True)
        export, backup = bdr_export(base, source, args.points)
        print(f"  {export.name}: {export.rate:,.0f} points/s", flush=True)
        imported, verified, ok = bdr_import(base, backup, args.points)
        print(f"  {imported.name}: {imported.rate:,.0f} points/s (verification {'passed' if ok else 'FAILED'})",
              flush=True)
        encode, decode, size = format_only(source, args.points)
        raw = args.points * args.dims * 4
        rows = [
            (export, open_scroll), (imported, upsert), (verified, open_scroll), (encode, None), (decode, None),
        ]
        print()
        print(f"| {'operation':<42} | {'points/s':>10} | {'floor':<42} | {'floor pts/s':>11} | {'ratio':>6} |")
        print(f"|{'-' * 44}|{'-' * 12}|{'-' * 44}|{'-' * 13}|{'-' * 8}|")
        for measured, floor in rows:
            ratio = f"{measured.rate / floor.rate:.2f}" if floor else "-"
            print(f"| {measured.name:<42} | {measured.rate:>10,.0f} | {floor.name if floor else '-':<42} | "
                  f"{floor.rate if floor else 0:>11,.0f} | {ratio:>6} |")
        print(f"\npoint file: {size / 1e6:,.1f} MB for {raw / 1e6:,.1f} MB of raw float32 vectors "
              f"({size / raw:.2f}x); seconds: upsert {upsert.seconds:.1f}, open+scroll {open_scroll.seconds:.1f}, "
              f"export {export.seconds:.1f}, import {imported.seconds:.1f}, verify {verified.seconds:.1f}")
    finally:
        quiet.__exit__(None, None, None)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
