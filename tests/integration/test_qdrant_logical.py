"""Logical backup and full restore of the embedded engine (qdrant-client local mode), for real."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from qdrant_client import models

from bdr.config import Config
from bdr.engines import engine_for
from bdr.engines.base import BackupRequest, Engine, RestoreRequest, write_backup
from bdr.engines.qdrant.pointfile import PointFileReader, PointFileWriter, batch_from_records
from bdr.errors import (
    BackupNotFound,
    BdrError,
    ChecksumMismatch,
    RestoreRolledBack,
    ServiceBusy,
)
from bdr.repository import BackupSet, Repository, extract_set
from bdr.repository.manifest import Manifest
from tests.backup_sets import rewrite_manifest
from tests.qdrant_data import assert_same, dump_embedded, embedded_config, load_every_kind, open_embedded

STEPS = ["fetch", "check", "safety backup", "replace", "verify", "finish"]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = embedded_config(tmp_path)
    client = open_embedded(config)
    try:
        load_every_kind(client)
    finally:
        client.close()
    return config


@pytest.fixture
def engine() -> Engine:
    return engine_for("qdrant")


def backup(engine: Engine, config: Config, **options: object) -> BackupSet:
    repo = Repository.open(config.repository_path())
    manifest = write_backup(engine, BackupRequest(config=config, repository=repo, options=options), "production",
                            "default")
    return repo.get(manifest.id)


def restore(engine: Engine, config: Config, backup_set: BackupSet, **kwargs: object) -> object:
    repo = Repository.open(config.repository_path())
    return engine.restore(RestoreRequest(config=config, repository=repo, backup=backup_set, **kwargs))  # type: ignore[arg-type]


def test_round_trip_of_every_vector_kind_index_and_alias(engine: Engine, config: Config) -> None:
    before = dump_embedded(config)
    taken = backup(engine, config)
    facts = taken.manifest.facts
    assert taken.manifest.method == "logical" and facts["qdrant_version"].startswith("embedded qdrant-client")
    assert facts["aliases"] == {"docs_current": "docs"}
    assert {c: facts["collections"][c]["points"] for c in facts["collections"]} == {
        "docs": 60, "plain": 40, "sparse_only": 12}
    assert facts["collections"]["docs"]["payload_schema"]["body"]["params"]["scoring"] is True
    assert facts["collections"]["docs"]["config"]["params"]["vectors"]["colbert"]["multivector_config"]
    assert all(f.path.endswith(".points.zst") for f in taken.manifest.files)

    shutil.rmtree(config.qdrant_instance().path or "")  # the disaster: the storage is gone
    result = restore(engine, config, taken)

    assert [s.name for s in result.steps] == ["fetch", "check", "safety backup", "replace", "verify", "finish"]  # type: ignore[attr-defined]
    assert result.steps[2].status == "skipped"  # type: ignore[attr-defined]  # nothing left to protect
    assert result.ok, result.checks  # type: ignore[attr-defined]
    assert_same(dump_embedded(config), before)
    # a new backup of the restored instance records the same schema: configs and the BM25 text index
    again = backup(engine, config).manifest.facts["collections"]
    for name, item in facts["collections"].items():
        assert (again[name]["config"], again[name]["payload_schema"]) == (item["config"], item["payload_schema"])


def test_restore_over_changed_data_takes_a_safety_backup_and_reports_every_check(engine: Engine,
                                                                                  config: Config) -> None:
    before = dump_embedded(config)
    taken = backup(engine, config)
    client = open_embedded(config)
    client.delete("docs", points_selector=models.PointIdsList(points=[0, 1, 2]))
    client.set_payload("plain", payload={"i": "changed"}, points=[1001])
    client.create_collection("created_later", vectors_config=models.VectorParams(size=2,
                                                                                 distance=models.Distance.DOT))
    client.close()
    changed = dump_embedded(config)

    result = restore(engine, config, taken)

    assert [s.name for s in result.steps] == STEPS  # type: ignore[attr-defined]
    names = [c.name for c in result.checks]  # type: ignore[attr-defined]
    assert {"docs: config", "docs: points", "docs: content", "aliases"} <= set(names)
    after = dump_embedded(config)
    assert_same({k: v for k, v in after.items() if k != "created_later"}, before)
    assert "created_later" in after  # a collection the backup does not know is left alone
    safety = Repository.open(config.repository_path()).get(result.safety_id)  # type: ignore[attr-defined]
    assert "safety" in safety.tags and set(safety.manifest.facts["collections"]) == {"docs", "plain", "sparse_only"}
    # the safety backup holds the data from before the restore
    assert safety.manifest.facts["collections"]["docs"]["points"] == len(changed["docs"]["points"])


def test_a_cosine_collection_restores_with_an_equal_content_hash(engine: Engine, config: Config) -> None:
    """Random float32 cosine vectors: the restored collection hashes exactly like the backup (local
    mode persists vectors as given, so nothing is re-normalized between backup and check)."""
    taken = backup(engine, config, collections=["docs"])
    result = restore(engine, config, taken)
    content = next(c for c in result.checks if c.name == "docs: content")  # type: ignore[attr-defined]
    assert content.ok and content.detail.startswith("content hash equal"), content.detail


def test_dry_run_changes_nothing(engine: Engine, config: Config) -> None:
    taken = backup(engine, config)
    client = open_embedded(config)
    client.delete_collection("plain")
    client.close()
    before = dump_embedded(config)
    result = restore(engine, config, taken, dry_run=True)
    assert result.dry_run and result.safety_id is None  # type: ignore[attr-defined]
    assert "create plain" in result.checks[0].detail  # type: ignore[attr-defined]
    assert dump_embedded(config) == before
    assert len(Repository.open(config.repository_path()).sets()) == 1


def test_backup_of_named_collections_only(engine: Engine, config: Config) -> None:
    taken = backup(engine, config, collections=["plain"])
    assert list(taken.manifest.facts["collections"]) == ["plain"]
    assert taken.manifest.facts["aliases"] == {}
    with pytest.raises(BackupNotFound, match="nope"):
        backup(engine, config, collections=["nope"])


def test_backup_refuses_an_embedded_directory_the_application_holds(engine: Engine, config: Config) -> None:
    app = open_embedded(config)
    try:
        with pytest.raises(ServiceBusy, match="another process has it open") as caught:
            backup(engine, config)
        assert caught.value.exit_code == 7
    finally:
        app.close()
    repo = Repository.open(config.repository_path())
    assert repo.sets() == [] and repo.incomplete() == []


def test_verify_with_restore_test(engine: Engine, config: Config, tmp_path: Path) -> None:
    taken = backup(engine, config)
    files = tmp_path / "files"
    extract_set(Repository.open(config.repository_path()), taken, files)
    checks = engine.verify(taken.manifest, files, restore_test=True)
    assert all(c.ok for c in checks), checks
    names = {c.name for c in checks}
    assert {"docs: point file", "restore test: docs: content", "restore test: plain: points"} <= names


def _tamper(path: Path) -> None:
    """Re-encode a point file with one payload changed: a well-formed file with other content."""
    with path.open("rb") as handle:
        reader = PointFileReader(handle, path.name)
        batches = list(reader.batches())
    points = batches[0].points(reader.layout)
    points[0].payload = {"tampered": True}
    records = [models.Record(id=p.id, vector=p.vector, payload=p.payload) for p in points]  # type: ignore[arg-type]
    batches[0] = batch_from_records(records, reader.layout)
    writer = PointFileWriter(reader.collection, reader.layout)
    path.write_bytes(b"".join(writer.compressed(batches)))


def test_verify_detects_a_tampered_and_a_corrupt_point_file(engine: Engine, config: Config, tmp_path: Path) -> None:
    taken = backup(engine, config)
    files = tmp_path / "files"
    extract_set(Repository.open(config.repository_path()), taken, files)
    _tamper(files / "collections/docs.points.zst")
    plain = files / "collections/plain.points.zst"
    plain.write_bytes(plain.read_bytes()[:-20])

    checks = {c.name: c for c in engine.verify(taken.manifest, files)}

    assert not checks["docs: point file"].ok and "content hash" in checks["docs: point file"].detail
    assert not checks["plain: point file"].ok and "truncated" in checks["plain: point file"].detail
    assert checks["sparse_only: point file"].ok


def test_a_tampered_set_is_refused_before_the_live_data_is_touched(engine: Engine, config: Config) -> None:
    taken = backup(engine, config)
    stored = config.repository_path() / "qdrant" / taken.id / "collections/docs.points.zst"
    _tamper(stored)
    client = open_embedded(config)
    client.delete_collection("plain")
    client.close()
    before = dump_embedded(config)

    with pytest.raises(ChecksumMismatch):
        restore(engine, config, taken)

    assert dump_embedded(config) == before


def test_a_failed_verification_rolls_back_to_the_safety_backup(engine: Engine, config: Config) -> None:
    taken = backup(engine, config)
    # the manifest now claims other content than the files hold: the restore's verify step fails
    rewrite_manifest(Repository.open(config.repository_path()), "qdrant", taken.id,
                     lambda data: data["facts"]["collections"]["plain"].update(content_hash="0" * 64))
    lying = Repository.open(config.repository_path()).get(taken.id)
    client = open_embedded(config)
    client.delete("docs", points_selector=models.PointIdsList(points=[3, 4]))
    client.delete_collection("sparse_only")
    client.close()
    before = dump_embedded(config)

    with pytest.raises(RestoreRolledBack, match="the manifest says") as caught:
        restore(engine, config, lying)

    assert caught.value.exit_code == 10
    assert_same(dump_embedded(config), before)  # including: sparse_only, created by the restore, is gone again


def test_restore_into_another_instance_leaves_the_source_alone(engine: Engine, config: Config,
                                                             tmp_path: Path) -> None:
    import dataclasses

    from bdr.config import QdrantInstance

    test_instance = QdrantInstance(name="test", path=str(tmp_path / "qdrant-test"))
    both = dataclasses.replace(config, qdrant={**config.qdrant, "test": test_instance})
    before = dump_embedded(both)
    taken = backup(engine, both)
    result = restore(engine, both, taken, target="test")
    assert result.ok and result.target == "test"  # type: ignore[attr-defined]
    assert_same(dump_embedded(both, "test"), before)
    assert dump_embedded(both) == before


def test_errors_are_typed(engine: Engine, tmp_path: Path) -> None:
    config = embedded_config(tmp_path)  # nothing at that path
    with pytest.raises(BdrError, match="no qdrant-client local-mode storage"):
        backup(engine, config)


def test_manifest_round_trips_through_json(engine: Engine, config: Config) -> None:
    taken = backup(engine, config)
    again = Manifest.from_json(taken.manifest.to_json())
    assert again.facts == json.loads(json.dumps(taken.manifest.facts))
