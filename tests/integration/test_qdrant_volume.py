"""Volume backups of the embedded engine: its directory, copied under its own lock, swapped back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from qdrant_client import models

from bdr.config import Config
from bdr.engines import engine_for
from bdr.engines.base import BackupRequest, RestoreRequest, write_backup
from bdr.engines.selection import QdrantSelection
from bdr.errors import ServiceBusy, UsageError
from bdr.repository import Repository, extract_set
from tests.qdrant_data import assert_same, dump_embedded, embedded_config, load_every_kind, open_embedded


@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = embedded_config(tmp_path, method="volume")
    client = open_embedded(config)
    try:
        load_every_kind(client, docs=24)
    finally:
        client.close()
    return config


def test_volume_round_trip_with_facts_and_verification(config: Config, tmp_path: Path) -> None:
    engine = engine_for("qdrant")
    repo = Repository.open(config.repository_path())
    before = dump_embedded(config)
    manifest = write_backup(engine, BackupRequest(config=config, repository=repo), "production", "default")
    assert manifest.method == "volume" and manifest.compressed
    assert any(f.path == "storage/meta.json" for f in manifest.files)
    assert not any(f.path.endswith(".lock") for f in manifest.files)
    assert manifest.facts["collections"]["docs"]["points"] == 24

    client = open_embedded(config)
    client.delete_collection("plain")
    client.upsert("docs", [models.PointStruct(id=999, vector={"text": [1.0] * 16})])
    client.close()

    result = engine.restore(RestoreRequest(config=config, repository=repo, backup=repo.get(manifest.id)))

    assert result.ok, result.checks
    assert [s.name for s in result.steps] == ["fetch", "check", "safety backup", "replace", "verify", "finish"]
    assert_same(dump_embedded(config), before)
    assert all(c.detail.startswith("content hash equal") for c in result.checks if c.name.endswith(": content"))
    files = tmp_path / "files"
    extract_set(repo, repo.get(manifest.id), files)
    checks = engine.verify(manifest, files, restore_test=True)
    assert all(c.ok for c in checks) and any(c.name == "restore test: docs: content" for c in checks)


def test_volume_backup_and_restore_refuse_a_directory_in_use(config: Config) -> None:
    engine = engine_for("qdrant")
    repo = Repository.open(config.repository_path())
    manifest = write_backup(engine, BackupRequest(config=config, repository=repo), "production", "default")
    app = open_embedded(config)
    try:
        with pytest.raises(ServiceBusy):
            write_backup(engine, BackupRequest(config=config, repository=repo), "production", "default")
        with pytest.raises(ServiceBusy):
            engine.restore(RestoreRequest(config=config, repository=repo, backup=repo.get(manifest.id)))
    finally:
        app.close()
    assert len(repo.sets()) == 1


def test_a_volume_restore_onto_an_empty_machine_and_a_selective_restore_from_it(config: Config) -> None:
    engine = engine_for("qdrant")
    repo = Repository.open(config.repository_path())
    before = dump_embedded(config)
    manifest = write_backup(engine, BackupRequest(config=config, repository=repo), "production", "default")
    shutil.rmtree(config.qdrant_instance().path or "")

    result = engine.restore(RestoreRequest(config=config, repository=repo, backup=repo.get(manifest.id)))
    assert result.ok and result.steps[2].status == "skipped"
    assert_same(dump_embedded(config), before)

    copy = engine.restore(RestoreRequest(config=config, repository=repo, backup=repo.get(manifest.id),
                                         selection=QdrantSelection(collection="plain", rename_as="plain_copy")))
    assert copy.ok and copy.counts["copied"] == 40
    assert_same(dump_embedded(config)["plain_copy"], before["plain"])


def test_a_volume_set_of_the_embedded_engine_cannot_go_into_a_server(config: Config, tmp_path: Path) -> None:
    import dataclasses

    from bdr.config import QdrantInstance

    engine = engine_for("qdrant")
    repo = Repository.open(config.repository_path())
    manifest = write_backup(engine, BackupRequest(config=config, repository=repo), "production", "default")
    server = dataclasses.replace(config, qdrant={**config.qdrant, "server": QdrantInstance(
        name="server", url="http://127.0.0.1:9", storage_dir=str(tmp_path / "storage"))})
    with pytest.raises(UsageError, match="cannot go into Qdrant server"):
        engine.restore(RestoreRequest(config=server, repository=repo, backup=repo.get(manifest.id), target="server"))
