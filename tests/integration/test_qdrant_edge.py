"""Offline verification of Qdrant server snapshots with qdrant-edge (the Qdrant engine, embedded).

No Qdrant server can run here, so the inputs are built the way a server builds them, from
shards written by the real engine (qdrant-edge): a shard snapshot (``segments/<uuid>.tar``
holding ``snapshot/files/...`` plus ``wal/``), a collection snapshot (``./config.json`` and
``./0/``, ``./1/``), and a full-storage snapshot (``config.json`` + collection snapshots).
What this does not prove: that a file written by a real server has exactly this layout
(see the module docstring of ``bdr.engines.qdrant.edge``).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bdr.config import QdrantInstance
from bdr.engines import engine_for
from bdr.engines.qdrant import edge
from bdr.engines.qdrant.client import Target
from bdr.engines.qdrant.pointfile import Layout, batch_from_records, compress
from bdr.engines.qdrant.snapshot import FULL_FILE, SnapshotMethod
from bdr.repository import BackupSet, Repository, extract_set
from tests.backup_sets import rewrite_manifest
from tests.qdrant_data import (
    EDGE_PARAMS,
    UUIDS,
    collection_snapshot,
    full_snapshot,
    make_edge_shard,
    shard_snapshot,
)

LAYOUT = Layout.from_params(EDGE_PARAMS)
EVEN = [*range(0, 80, 2), UUIDS[0], UUIDS[1]]
ODD = list(range(1, 80, 2))


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("edge-shards")
    yield make_edge_shard(base / "s0", EVEN), make_edge_shard(base / "s1", ODD, sparse=False, seed=2)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def snapshots(shards: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Snapshot files are large (qdrant pre-allocates 32 MiB files): removed after the module."""
    base = tmp_path_factory.mktemp("edge-snapshots")
    collection = collection_snapshot(list(shards), base / "docs.snapshot")
    yield {
        "shard": shard_snapshot(shards[0], base / "shard-0.snapshot"),
        "collection": collection,
        "full": full_snapshot({"docs": collection}, base / "full.snapshot"),
    }
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path) -> Iterator[None]:
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


def source_digests(shard_dirs: tuple[Path, ...], ids: list[Any]) -> dict[Any, str]:
    """Digests of points read straight from the shards that were snapshotted."""
    import qdrant_edge as qe

    out: dict[Any, str] = {}
    for path in shard_dirs:
        shard = qe.EdgeShard.load(str(path))
        try:
            batch = batch_from_records(shard.retrieve(list(ids), True, True), LAYOUT)
            out.update({p: d.hex() for p, d in zip(batch.ids, batch.digests(), strict=True)})
        finally:
            shard.close()
    return out


@pytest.mark.parametrize(("kind", "points", "shard_count"), [("shard", 42, 1), ("collection", 82, 2),
                                                             ("full", 82, 2)])
def test_edge_counts_every_point_and_samples_them_exactly(kind: str, points: int, shard_count: int,
                                                          snapshots: dict[str, Path], shards: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    found = edge.inspect(snapshots[kind], LAYOUT, tmp_path, collection="docs" if kind == "full" else None,
                         sample_size=10, seed=4)
    assert (str(found.kind), found.points, found.shards) == (kind, points, shard_count)
    assert len(found.sample) == 10 and not found.missing
    sampled = [p for p, _ in found.sample]
    assert dict(found.sample) == source_digests(shards if kind != "shard" else shards[:1], sampled)
    again = edge.inspect(snapshots[kind], LAYOUT, tmp_path / "again", collection="docs" if kind == "full" else None,
                         sample_ids=[*sampled, 10_000])
    assert again.sample == found.sample and again.missing == [10_000]


def test_a_tar_that_is_no_snapshot_is_refused(tmp_path: Path) -> None:
    import tarfile

    bogus = tmp_path / "bogus.snapshot"
    (tmp_path / "readme.txt").write_text("hello")
    with tarfile.open(bogus, "w") as tar:
        tar.add(tmp_path / "readme.txt", arcname="readme.txt")
    with pytest.raises(edge.CorruptArchive, match="neither a shard"):
        edge.inspect(bogus, LAYOUT, tmp_path / "w")
    with pytest.raises(edge.CorruptArchive, match="not a readable tar"):
        edge.inspect(tmp_path / "readme.txt", LAYOUT, tmp_path / "w")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _chunks(path: Path) -> Any:
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk


def snapshot_set(repo_dir: Path, snapshot: Path, work: Path, full: bool = False) -> BackupSet:
    """A snapshot-method set as the backup writes it (the server's part replaced by the file at hand)."""
    repo = Repository.open(repo_dir)
    target = Target(QdrantInstance(name="production", url="http://127.0.0.1:6333", sample_size=12),
                    "http://127.0.0.1:6333")
    item: dict[str, Any] = {"config": {"params": EDGE_PARAMS}, "payload_schema": {}, "layout": LAYOUT.to_dict(),
                            "points": 0, "points_source": "api"}
    writer = repo.new_set("qdrant", "production", "snapshot")
    with writer:
        if full:
            item["snapshot"] = {"name": "docs-1-2025-01-24-02-00-00.snapshot", "in": FULL_FILE}
            item.update(SnapshotMethod._inspect(snapshot, LAYOUT, work, target, "docs"))
            writer.add_stream(FULL_FILE, compress(_chunks(snapshot)))
            writer.facts["full_snapshot"] = {"name": "full.snapshot", "size": snapshot.stat().st_size,
                                             "checksum": _sha256(snapshot), "file": FULL_FILE}
        else:
            item["file"] = "snapshots/docs.snapshot.zst"
            item["snapshot"] = {"name": "docs-1.snapshot", "size": snapshot.stat().st_size,
                                "checksum": _sha256(snapshot)}
            item.update(SnapshotMethod._inspect(snapshot, LAYOUT, work, target, None))
            writer.add_stream(item["file"], compress(_chunks(snapshot)))
        writer.facts.update(method="snapshot", mode="server", qdrant_version="1.12.4", collections={"docs": item},
                            aliases={})
        writer.commit()
    return repo.get(writer.id)


def verify(backup: BackupSet, repo_dir: Path, files: Path, restore_test: bool = False) -> dict[str, Any]:
    extract_set(Repository.open(repo_dir), backup, files)
    return {c.name: c for c in engine_for("qdrant").verify(backup.manifest, files, restore_test)}


@pytest.mark.parametrize("kind", ["collection", "full"])
def test_verify_of_a_snapshot_set(kind: str, snapshots: dict[str, Path], tmp_path: Path) -> None:
    backup = snapshot_set(tmp_path / "repo", snapshots[kind], tmp_path / "work", full=kind == "full")
    item = backup.manifest.facts["collections"]["docs"]
    assert (item["points"], item["points_source"], len(item["sample"])) == (82, "edge", 12)

    checks = verify(backup, tmp_path / "repo", tmp_path / "files", restore_test=True)

    assert all(c.ok for c in checks.values()), checks
    assert checks["docs: points"].detail.startswith("82 in 2 shard(s)")
    assert checks["docs: sample"].detail == "12 sampled point(s) equal"
    assert ("full snapshot" if kind == "full" else "docs: snapshot") in checks
    assert "restore test: docs" in checks


@pytest.mark.parametrize("damage", ["sample digest", "point count", "snapshot bytes"])
def test_verify_detects_a_snapshot_that_does_not_match_its_manifest(damage: str, snapshots: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    backup = snapshot_set(repo_dir, snapshots["shard"], tmp_path / "work")
    set_dir = repo_dir / "qdrant" / backup.id
    if damage == "snapshot bytes":
        stored = set_dir / "snapshots/docs.snapshot.zst"
        data = bytearray(stored.read_bytes())
        data[len(data) // 3] ^= 0x55
        stored.write_bytes(bytes(data))
        files = tmp_path / "files"
        files.mkdir()
        (files / "snapshots").mkdir()
        (files / "snapshots/docs.snapshot.zst").write_bytes(bytes(data))
        checks = {c.name: c for c in engine_for("qdrant").verify(backup.manifest, files, False)}
        assert not checks["docs: snapshot"].ok
        return
    def damage_it(manifest: dict[str, Any]) -> None:
        item = manifest["facts"]["collections"]["docs"]
        if damage == "sample digest":
            item["sample"][3][1] = "0" * 64
        else:
            item["points"] += 1

    rewrite_manifest(Repository.open(repo_dir), "qdrant", backup.id, damage_it)
    checks = verify(Repository.open(repo_dir).get(backup.id), repo_dir, tmp_path / "files")
    failed = [c for c in checks.values() if not c.ok]
    assert [c.name for c in failed] == ["docs: sample" if damage == "sample digest" else "docs: points"]


def test_an_old_scripts_snapshot_file_restores_into_the_embedded_engine(snapshots: dict[str, Path],
                                                                        shards: tuple[Path, Path],
                                                                        tmp_path: Path) -> None:
    """The runbook's qdrant_backup_<ts>.snapshot (a collection snapshot, version unknown) is converted
    with qdrant-edge and restored as a logical backup of collection ``documents``."""
    from bdr.engines.base import RestoreRequest
    from tests.qdrant_data import embedded_config, open_embedded

    config = embedded_config(tmp_path)
    legacy = tmp_path / "qdrant_backup_20250124_020000.snapshot"
    legacy.symlink_to(snapshots["collection"])
    result = engine_for("qdrant").restore(RestoreRequest(
        config=config, repository=Repository.open(config.repository_path()), backup=None, legacy_path=legacy))

    assert result.ok, result.checks
    assert [s.name for s in result.steps] == ["fetch", "check", "safety backup", "replace", "verify", "finish"]
    assert "documents (82 points)" in result.steps[0].detail
    client = open_embedded(config)
    try:
        records, _ = client.scroll("documents", limit=200, with_payload=True, with_vectors=True)
        info = client.get_collection("documents")
    finally:
        client.close()
    assert info.config.params.vectors["text"].distance == "Cosine"  # type: ignore[index]
    import qdrant_edge as qe

    from bdr.engines.qdrant.logical import Comparison, compare_batches

    restored = batch_from_records(records, LAYOUT)
    comparison = Comparison()
    for path in shards:
        shard = qe.EdgeShard.load(str(path))
        try:
            originals, _ = shard.scroll(qe.ScrollRequest(limit=200, with_payload=True, with_vector=True))
        finally:
            shard.close()
        compare_batches(batch_from_records(originals, LAYOUT), restored, comparison)
    assert comparison.ok and comparison.compared == len(restored) == 82


def test_selective_restore_from_a_snapshot_set_into_the_embedded_engine(snapshots: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    """A server snapshot set holds points too: qdrant-edge reads them for a filtered restore."""
    import dataclasses

    from bdr.engines.base import RestoreRequest
    from bdr.engines.selection import QdrantSelection
    from tests.qdrant_data import embedded_config, open_embedded

    config = dataclasses.replace(embedded_config(tmp_path), repository=str(tmp_path / "repo"))
    backup = snapshot_set(tmp_path / "repo", snapshots["collection"], tmp_path / "work")
    result = engine_for("qdrant").restore(RestoreRequest(
        config=config, repository=Repository.open(tmp_path / "repo"), backup=backup,
        selection=QdrantSelection(collection="docs", rename_as="tenant_a",
                                  filter={"must": [{"key": "tenant", "match": {"value": "a"}}]})))
    assert result.ok, result.checks
    client = open_embedded(config)
    try:
        records, _ = client.scroll("tenant_a", limit=200, with_payload=True)
    finally:
        client.close()
    assert result.counts["copied"] == len(records) == 41
    assert {r.payload["tenant"] for r in records} == {"a"}  # type: ignore[index]
