"""Selective restore into a live embedded Qdrant: a collection (renamed), or the points a filter matches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models

from bdr.config import Config
from bdr.engines import engine_for
from bdr.engines.base import BackupRequest, Engine, RestoreRequest, RestoreResult, write_backup
from bdr.engines.selection import Conflict, QdrantSelection, RedisSelection, Selection
from bdr.errors import SelectionConflict, UsageError, WrongSelection
from bdr.repository import BackupSet, Repository
from tests.qdrant_data import (
    assert_same,
    dump_collection,
    dump_embedded,
    embedded_config,
    load_every_kind,
    open_embedded,
)

ACME = {"must": [{"key": "tenant", "match": {"value": "acme"}}]}


@pytest.fixture
def engine() -> Engine:
    return engine_for("qdrant")


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
def taken(engine: Engine, config: Config) -> BackupSet:
    repo = Repository.open(config.repository_path())
    return repo.get(write_backup(engine, BackupRequest(config=config, repository=repo), "production", "x").id)


def restore(engine: Engine, config: Config, backup: BackupSet, selection: Selection,
            conflict: str = "fail", dry_run: bool = False) -> RestoreResult:
    return engine.restore(RestoreRequest(config=config, repository=Repository.open(config.repository_path()),
                                         backup=backup, selection=selection, conflict=Conflict(conflict),
                                         dry_run=dry_run))


def points(config: Config, collection: str) -> dict[Any, Any]:
    client = open_embedded(config)
    try:
        return dump_collection(client, collection)
    finally:
        client.close()


def acme_ids(config: Config) -> set[str]:
    return {pid for pid, (_, payload) in points(config, "docs").items() if payload["tenant"] == "acme"}


def test_one_collection_restored_under_another_name_leaves_the_rest_alone(engine: Engine, config: Config,
                                                                           taken: BackupSet) -> None:
    before = dump_embedded(config)
    client = open_embedded(config)
    client.delete("docs", points_selector=models.PointIdsList(points=[0, 1]))  # live data moved on
    client.close()
    moved_on = dump_embedded(config)

    result = restore(engine, config, taken, QdrantSelection(collection="docs", rename_as="docs_restored"))

    assert result.ok, result.checks
    assert [s.name for s in result.steps] == ["fetch", "check", "safety backup", "replace", "verify", "finish"]
    assert result.steps[2].status == "skipped"  # a new collection: nothing to protect
    assert result.counts == {"selected": 60, "copied": 60, "skipped": 0, "conflicts": 0}
    after = dump_embedded(config)
    assert_same(after["docs_restored"], before["docs"])
    assert {k: v for k, v in after.items() if k != "docs_restored"} == moved_on


def test_filter_restore_with_conflicts_fail_skip_replace_and_dry_run(engine: Engine, config: Config,
                                                                     taken: BackupSet) -> None:
    original = points(config, "docs")
    wanted = acme_ids(config)
    client = open_embedded(config)
    ids = [int(p) if p.isdigit() else p for p in sorted(wanted)]
    lost, kept = ids[: len(ids) // 2], ids[len(ids) // 2:]
    client.delete("docs", points_selector=models.PointIdsList(points=lost))
    client.set_payload("docs", payload={"edited": "live"}, points=kept)
    client.close()
    edited = points(config, "docs")
    selection = QdrantSelection(collection="docs", filter=ACME)

    # fail (the default): nothing changes, the error names the conflicts
    with pytest.raises(SelectionConflict, match=f"{len(kept)} points already exist") as caught:
        restore(engine, config, taken, selection)
    assert caught.value.exit_code == 2
    assert points(config, "docs") == edited

    # dry run of each mode reports the counts and changes nothing
    dry = restore(engine, config, taken, selection, conflict="fail", dry_run=True)
    assert not dry.ok and dry.counts["conflicts"] == len(kept) and dry.counts["copied"] == 0
    dry = restore(engine, config, taken, selection, conflict="skip", dry_run=True)
    assert dry.ok and dry.counts == {"selected": len(ids), "copied": len(lost), "skipped": len(kept),
                                     "conflicts": len(kept)}
    assert points(config, "docs") == edited and len(Repository.open(config.repository_path()).sets()) == 1

    # skip: the lost points come back, the live edits stay
    result = restore(engine, config, taken, selection, conflict="skip")
    assert result.ok, result.checks
    assert result.counts == {"selected": len(ids), "copied": len(lost), "skipped": len(kept), "conflicts": len(kept)}
    now = points(config, "docs")
    assert_same({p: now[str(p)] for p in lost}, {p: original[str(p)] for p in lost})
    assert_same({p: now[str(p)] for p in kept}, {p: edited[str(p)] for p in kept})
    assert result.safety_id is not None

    # replace: the live edits are overwritten by the backup's points; other tenants untouched
    result = restore(engine, config, taken, selection, conflict="replace")
    assert result.ok and result.counts["copied"] == len(ids) and result.counts["conflicts"] == len(ids)
    assert_same(points(config, "docs"), original)


def test_filter_restore_into_a_new_collection(engine: Engine, config: Config, taken: BackupSet) -> None:
    wanted = acme_ids(config)
    nested = {"must": [{"key": "tenant", "match": {"value": "acme"}},
                       {"key": "meta.nested.deep", "range": {"gte": 2}}]}
    result = restore(engine, config, taken, QdrantSelection(collection="docs", rename_as="acme_deep", filter=nested))
    assert result.ok
    restored = points(config, "acme_deep")
    assert set(restored) < wanted and restored
    assert all(payload["meta"]["nested"]["deep"] >= 2 for _, payload in restored.values())


def test_bad_selections_are_usage_errors(engine: Engine, config: Config, taken: BackupSet) -> None:
    with pytest.raises(UsageError, match="choose one with --collection"):
        restore(engine, config, taken, QdrantSelection(filter=ACME))
    with pytest.raises(UsageError, match="has no collection 'nope'; it has: docs, plain, sparse_only"):
        restore(engine, config, taken, QdrantSelection(collection="nope"))
    with pytest.raises(UsageError, match="not a valid Qdrant filter"):
        restore(engine, config, taken, QdrantSelection(collection="docs", filter={"must": [{"key": "t", "match": 5}]}))
    with pytest.raises(UsageError, match="other vectors"):
        restore(engine, config, taken, QdrantSelection(collection="docs", rename_as="plain"))
    with pytest.raises(WrongSelection, match="selects with --collection, --as, --filter, not --keys"):
        restore(engine, config, taken, RedisSelection(keys="user:*"))
