"""The logical and snapshot methods against a real Qdrant server (QDRANT_URL, e.g. http://127.0.0.1:6333).

No Qdrant server can be installed on this machine, so these tests skip unless ``QDRANT_URL``
names a reachable server (``QDRANT_API_KEY`` when it needs one). They work in collections
named ``bdr_test_<random>_*`` and delete them afterwards. They are the tests that prove,
on the day a server is reachable, what the embedded tests cannot: snapshot download with
the server's checksum, upload with ``priority=snapshot``, the version check, and that
qdrant-edge opens a snapshot made by a real server.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from qdrant_client import QdrantClient

from bdr.config import Config, QdrantInstance
from bdr.engines import engine_for
from bdr.engines.base import BackupRequest, RestoreRequest, write_backup
from bdr.engines.selection import QdrantSelection
from bdr.errors import IncompatibleVersion
from bdr.repository import BackupSet, Repository, extract_set
from tests.backup_sets import rewrite_manifest
from tests.qdrant_data import assert_same, dump, load_every_kind

pytestmark = pytest.mark.qdrant_server


def _server() -> str:
    url = os.environ.get("QDRANT_URL")
    if not url:
        pytest.skip("QDRANT_URL is not set: no Qdrant server can run on this machine (set it to test the "
                    "snapshot method and the logical method against a server)")
    key = os.environ.get("QDRANT_API_KEY")
    try:
        httpx.get(f"{url.rstrip('/')}/", headers={"api-key": key} if key else {}, timeout=3.0).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.skip(f"QDRANT_URL={url} is not reachable: {exc}")
    return url.rstrip("/")


@pytest.fixture
def prefix() -> str:
    return f"bdr_test_{secrets.token_hex(3)}_"


@pytest.fixture
def client(prefix: str) -> Iterator[QdrantClient]:
    url = _server()
    client = QdrantClient(url=url, api_key=os.environ.get("QDRANT_API_KEY"), timeout=120)
    load_every_kind(client, prefix=prefix)
    try:
        yield client
    finally:
        for collection in client.get_collections().collections:
            if collection.name.startswith(prefix):
                client.delete_collection(collection.name)
        client.close()


def server_config(tmp_path: Path, prefix: str, **changes: Any) -> Config:
    instance = QdrantInstance(name="production", url=_server(), api_key_env="QDRANT_API_KEY",
                              collections=(f"{prefix}docs", f"{prefix}plain", f"{prefix}sparse_only"), **changes)
    return dataclasses.replace(Config(), repository=str(tmp_path / "repo"), qdrant={"production": instance})


def take(config: Config) -> BackupSet:
    repo = Repository.open(config.repository_path())
    manifest = write_backup(engine_for("qdrant"), BackupRequest(config=config, repository=repo), "production", "x")
    return repo.get(manifest.id)


def restore(config: Config, backup: BackupSet, **kwargs: Any) -> Any:
    return engine_for("qdrant").restore(RestoreRequest(config=config, repository=Repository.open(
        config.repository_path()), backup=backup, **kwargs))


def destroy(client: QdrantClient, prefix: str) -> None:
    for name in ("docs", "plain", "sparse_only"):
        client.delete_collection(prefix + name)


def test_logical_round_trip_on_a_server(client: QdrantClient, prefix: str, tmp_path: Path) -> None:
    config = server_config(tmp_path, prefix, parallel=3, batch_size=16)
    before = dump(client, prefix)
    backup = take(config)
    facts = backup.manifest.facts
    assert facts["mode"] == "server" and facts["qdrant_version"][0].isdigit()
    assert facts["collections"][f"{prefix}docs"]["payload_schema"]["tenant"]["data_type"] == "keyword"

    destroy(client, prefix)
    result = restore(config, backup)

    assert result.ok, result.checks
    assert_same(dump(client, prefix), before)
    assert all("content hash equal" in c.detail for c in result.checks if c.name.endswith(": content"))
    assert set(client.get_collection(f"{prefix}docs").payload_schema) == {"tenant", "body"}


@pytest.mark.parametrize("full", [False, True], ids=["collection-snapshots", "full-snapshot"])
def test_snapshot_round_trip_on_a_server(client: QdrantClient, prefix: str, tmp_path: Path, full: bool) -> None:
    config = server_config(tmp_path, prefix, method="snapshot", full_snapshot=full)
    before = dump(client, prefix)
    backup = take(config)
    item = backup.manifest.facts["collections"][f"{prefix}docs"]
    assert item["points"] == 60
    assert item["points_source"] == "edge", item.get("inspection")  # qdrant-edge opened the server's snapshot
    assert client.list_snapshots(f"{prefix}docs") == []  # the server-side snapshot was deleted

    files = tmp_path / "files"
    extract_set(Repository.open(config.repository_path()), backup, files)
    checks = engine_for("qdrant").verify(backup.manifest, files, restore_test=True)
    assert all(c.ok for c in checks), checks

    destroy(client, prefix)
    result = restore(config, backup)
    assert result.ok, result.checks
    assert_same(dump(client, prefix), before)


def test_a_snapshot_from_an_incompatible_version_is_refused_before_any_change(client: QdrantClient, prefix: str,
                                                                              tmp_path: Path) -> None:
    config = server_config(tmp_path, prefix, method="snapshot", inspect_snapshots=False)
    backup = take(config)
    rewrite_manifest(Repository.open(config.repository_path()), "qdrant", backup.id,
                     lambda data: data["facts"].update(qdrant_version="0.9.1"))
    client.delete_collection(f"{prefix}plain")
    before = dump(client, prefix)
    with pytest.raises(IncompatibleVersion, match=r"0\.9\.1"):
        restore(config, Repository.open(config.repository_path()).get(backup.id))
    assert dump(client, prefix) == before
    assert len(Repository.open(config.repository_path()).sets()) == 1  # not even a safety backup


def test_selective_filter_restore_on_a_server(client: QdrantClient, prefix: str, tmp_path: Path) -> None:
    config = server_config(tmp_path, prefix)
    backup = take(config)
    result = restore(config, backup, selection=QdrantSelection(
        collection=f"{prefix}docs", rename_as=f"{prefix}acme",
        filter={"must": [{"key": "tenant", "match": {"value": "acme"}}]}))
    assert result.ok and result.counts["copied"] == 20
    assert client.count(f"{prefix}acme").count == 20
