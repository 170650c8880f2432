"""Damaged sets, not a damaged repository: one bad set never stops list, latest, prune or status.

Each scenario runs against a repository on disk and in an S3 bucket (moto's server on
127.0.0.1): the listing code differs (directories, common prefixes). The commands run as an
operator runs them (the click app in-process, with ``--remote`` for S3).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from bdr.api.inputs import resolve_input
from bdr.cli.main import cli
from bdr.config import load_config
from bdr.errors import BackupNotFound, DamagedBackup
from bdr.repository import Repository
from bdr.repository.manifest import MANIFEST_NAME
from bdr.repository.retention import keep_last
from tests.backup_sets import edit_manifest_by_hand, make_manifest, store_set
from tests.s3_fixtures import S3Bucket

NOW = datetime.now(UTC)
TRUNCATED = "unreadable manifest (truncated or not JSON): "


@dataclass
class Where:
    """A repository and how the CLI reaches it."""

    repo: Repository
    config: Path
    args: tuple[str, ...]
    kind: str

    def run(self, *args: str, repo_args: bool = True) -> Result:
        argv = ["--config", str(self.config), *args, *(self.args if repo_args else ())]
        return CliRunner(env={"COLUMNS": "250"}).invoke(cli, argv)

    def exists(self, source: str, set_id: str, name: str = "") -> bool:
        prefix = f"{source}/{set_id}"
        return any(True for _ in self.repo.storage.list(f"{prefix}/{name}" if name else prefix))


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Where]:
    retention = {"last": {"count": 1, "locations": ["local", "s3"]}}
    if request.param == "local":
        config = tmp_path / "bdr.yaml"
        config.write_text(yaml.safe_dump({"repository": str(tmp_path / "repo"), "retention": retention,
                                          "schedule": {"redis": "0 * * * *"}}))
        yield Where(Repository.open(tmp_path / "repo"), config, (), "local")
        return
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    config = tmp_path / "bdr.yaml"
    config.write_text(yaml.safe_dump({
        "repository": str(tmp_path / "repo"), "retention": retention, "schedule": {"redis": "0 * * * *"},
        "remote": {"url": bucket.url(), "endpoint_url": bucket.server.endpoint, "region": "us-east-1",
                   "part_size_mib": 5},
    }))
    yield Where(Repository.open(bucket.url(), settings=load_config(str(config)).remote), config,
                ("--remote", bucket.url()), "s3")


def hours_ago(repo: Repository, *hours: float, source: str = "redis") -> list[str]:
    return [store_set(repo, make_manifest(NOW - timedelta(hours=h), source)).id for h in hours]


def truncate_manifest(repo: Repository, source: str, set_id: str) -> None:
    key = f"{source}/{set_id}/{MANIFEST_NAME}"
    raw = repo.storage.read_bytes(key)
    repo.storage.put_bytes(key, raw[: len(raw) // 2])


@pytest.fixture
def truncated(where: Where) -> tuple[Where, list[str]]:
    """Three sets 1, 2 and 3 hours old; the newest one's manifest cut in half."""
    ids = hours_ago(where.repo, 1, 2, 3)
    truncate_manifest(where.repo, "redis", ids[0])
    return where, ids


# --- the repository API --------------------------------------------------------------------------------


def test_a_truncated_manifest_is_one_damaged_set(truncated: tuple[Where, list[str]]) -> None:
    where, (newest, second, oldest) = truncated
    repo = where.repo
    assert [s.id for s in repo.sets()] == [second, oldest]
    [damaged] = repo.damaged()
    assert (damaged.id, damaged.source, damaged.location, damaged.manifest) == (newest, "redis", where.kind, None)
    assert damaged.reason.startswith(TRUNCATED)
    assert damaged.path == f"{repo.url}/redis/{newest}"
    assert damaged.created is not None and abs((damaged.created - (NOW - timedelta(hours=1))).total_seconds()) < 3


def test_latest_skips_a_damaged_set_and_says_so(truncated: tuple[Where, list[str]],
                                                caplog: pytest.LogCaptureFixture) -> None:
    where, (newest, second, _) = truncated
    with caplog.at_level(logging.WARNING, logger="bdr.repository"):
        assert where.repo.get("latest").id == second
    assert [d.id for d in where.repo.skipped] == [newest]
    assert f"skipped {newest} (damaged: {TRUNCATED}" in caplog.text
    with pytest.raises(BackupNotFound):
        where.repo.get("latest", "qdrant")


def test_asking_for_a_damaged_set_by_id_or_prefix_names_the_reason_and_verify(
        truncated: tuple[Where, list[str]]) -> None:
    where, (newest, _, _) = truncated
    for ref in (newest, newest[:-2]):
        with pytest.raises(DamagedBackup) as raised:
            where.repo.get(ref)
        message = raised.value.message
        assert raised.value.exit_code == 6
        assert f"backup {newest} is damaged ({TRUNCATED}" in message
        assert f"run `bdr verify {newest}`" in message
    assert where.repo.find(newest).id == newest  # what bdr verify asks for


def test_an_edited_manifest_is_damaged_by_its_digest(where: Where) -> None:
    [edited, good] = hours_ago(where.repo, 1, 2)
    edit_manifest_by_hand(where.repo, "redis", edited,
                          lambda d: d["facts"].update(keyspace={"0": {"keys": 999, "expires": 0}}))
    assert [s.id for s in where.repo.sets()] == [good]
    [damaged] = where.repo.damaged()
    assert damaged.reason == "manifest digest mismatch: edited or corrupt"
    assert damaged.manifest is not None and damaged.manifest.facts["keyspace"]["0"]["keys"] == 999


def test_a_manifest_copied_into_another_set_is_damaged(where: Where) -> None:
    [one, other] = hours_ago(where.repo, 1, 2)
    where.repo.storage.put_bytes(f"redis/{other}/{MANIFEST_NAME}",
                                 where.repo.storage.read_bytes(f"redis/{one}/{MANIFEST_NAME}"))
    assert [s.id for s in where.repo.sets()] == [one]
    [damaged] = where.repo.damaged()
    assert (damaged.id, damaged.reason) == (other, f"manifest names set {one!r} of redis: copied or moved by hand")


def test_a_set_whose_manifest_was_deleted_by_hand_is_left_alone_and_listed(where: Where) -> None:
    [kept, hand] = hours_ago(where.repo, 1, 2)
    where.repo.storage.delete(f"redis/{hand}/{MANIFEST_NAME}")
    with where.repo.lock("backup redis"):  # what the next backup does first
        pass
    assert where.exists("redis", hand, "dump.rdb")
    assert [s.id for s in where.repo.sets()] == [kept]
    [damaged] = where.repo.damaged()
    path = f"{where.repo.url}/redis/{hand}"
    assert damaged.reason == (f"no manifest: not left by a crashed bdr run; bdr leaves it alone; delete {path} "
                              "yourself if it is not needed")
    with pytest.raises(DamagedBackup, match="no manifest: not left by a crashed bdr run"):
        where.repo.get(hand)
    listed = {row["id"]: row for row in json.loads(where.run("list", "--json").stdout)}
    assert listed[hand]["damaged"] == damaged.reason and listed[kept]["damaged"] is None


def test_only_source_directories_are_scanned(where: Where) -> None:
    [good] = hours_ago(where.repo, 1)
    storage = where.repo.storage
    storage.put_bytes("journal/production.json", b'{"step": "replace"}')
    storage.put_bytes("journal/done/redis-x.json", b"{}")
    storage.put_bytes("notes/readme.txt", b"not a set")
    with where.repo.lock("backup redis"):
        pass
    assert [s.id for s in where.repo.sets()] == [good] and where.repo.damaged() == []
    assert storage.read_bytes("journal/production.json") == b'{"step": "replace"}'
    assert storage.read_bytes("notes/readme.txt") == b"not a set"


def test_a_set_directory_without_manifest_is_not_taken_for_a_legacy_directory(tmp_path: Path) -> None:
    """``bdr restore redis <repo>/redis/<id>``: the old scripts' plain directories restore without checks."""
    repo = Repository.open(tmp_path / "repo")
    [hand] = hours_ago(repo, 1)
    (tmp_path / "repo" / "redis" / hand / MANIFEST_NAME).unlink()
    config = load_config(None)
    with pytest.raises(DamagedBackup, match="no manifest"):
        resolve_input(config, str(tmp_path / "repo" / "redis" / hand), "redis")


# --- the commands ---------------------------------------------------------------------------------------


def test_list_shows_the_damaged_set_as_a_row_with_its_reason(truncated: tuple[Where, list[str]]) -> None:
    where, (newest, second, oldest) = truncated
    listed = where.run("list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [r["id"] for r in rows] == [newest, second, oldest]
    assert rows[0]["damaged"].startswith(TRUNCATED) and rows[0]["location"] == where.kind
    assert rows[1]["damaged"] is None and rows[1]["holds"] == "-"
    shown = where.run("list")
    assert shown.exit_code == 0, shown.output
    row = next(line for line in shown.stdout.splitlines() if newest in line)
    assert "DAMAGED" in row and "unreadable manifest" in row
    assert f"warning: {newest} is DAMAGED: {TRUNCATED}" in shown.stderr
    assert "bdr will not restore, sweep or prune it" in shown.stderr


def test_prune_never_deletes_a_damaged_set_and_warns(truncated: tuple[Where, list[str]]) -> None:
    where, (newest, second, oldest) = truncated
    dry = where.run("prune", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"warning: not pruning {newest}: it is damaged ({TRUNCATED}" in dry.stderr
    assert f"bdr never deletes a damaged set: check it with `bdr verify {newest}`" in dry.stderr
    done = where.run("prune", "--json")
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["deleted"] == [oldest]  # keep-last 1 keeps the newest *good* set
    assert [d["id"] for d in result["damaged"]] == [newest]
    assert where.exists("redis", newest, MANIFEST_NAME)
    assert [s.id for s in where.repo.sets()] == [second]


def test_backup_keep_n_prunes_around_a_damaged_set(truncated: tuple[Where, list[str]],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    where, (newest, _, oldest) = truncated
    with caplog.at_level(logging.WARNING, logger="bdr.repository.retention"):
        deleted = keep_last(where.repo, "redis", "production", 1)
    assert deleted == [oldest]
    assert f"not pruning damaged backup set {newest} ({TRUNCATED}" in caplog.text
    assert where.exists("redis", newest) and [d.id for d in where.repo.damaged()] == [newest]


def test_status_works_and_names_the_damaged_set(truncated: tuple[Where, list[str]]) -> None:
    where, (newest, second, _) = truncated
    result = where.run("status", "redis", "--json", repo_args=False)
    assert result.exit_code == 0, result.output  # the newest *good* set is fresh
    report = json.loads(result.stdout)
    group = report["sources"][0]
    assert group["newest"]["id"] == second
    view = next(v for v in report["repositories"] if v["location"] == where.kind)
    assert [d["id"] for d in view["damaged"]] == [newest]
    assert any(p.startswith(f"damaged set {newest} in {where.repo.url}: {TRUNCATED}") for p in report["problems"])
    text = subprocess.run([sys.executable, "-m", "bdr.cli.main", "--config", str(where.config), "status", "redis"],
                          capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    assert text.returncode == 0, text.stderr
    assert f"WARNING bdr.monitoring.status: damaged backup set {newest} in {where.repo.url}: {TRUNCATED}" in text.stderr


def test_verify_of_a_damaged_set_reports_why(truncated: tuple[Where, list[str]]) -> None:
    where, (newest, _, _) = truncated
    result = where.run("verify", newest, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["checks"][0]["name"] == "manifest" and report["checks"][0]["detail"].startswith(TRUNCATED)
    assert not where.exists("redis", newest, "verify.json")  # nothing is written into a damaged set


def _row(rows: list[dict[str, Any]], set_id: str) -> dict[str, Any]:
    return next(r for r in rows if r["id"] == set_id)


def test_an_edited_set_fails_verify_on_its_manifest_digest(where: Where) -> None:
    [edited] = hours_ago(where.repo, 1)
    edit_manifest_by_hand(where.repo, "redis", edited, lambda d: d.update(tags=["keep-forever"]))
    result = where.run("verify", edited, "--json")
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["manifest digest"] == {"name": "manifest digest", "ok": False,
                                         "detail": "manifest digest mismatch: edited or corrupt"}
    assert checks["stored objects"]["ok"] is True  # the data is fine: only the manifest was touched
    assert _row(json.loads(where.run("list", "--json").stdout), edited)["damaged"] == checks["manifest digest"][
        "detail"]
