"""Grafana: grafana.db backed up consistently while written, refused when corrupt, restored, verified.

The database is a real SQLite grafana.db with Grafana's tables (tests/grafana_fixtures.py);
the service is a stand-in process driven by the ``command`` runtime (not Grafana: none can
be installed here). The HTTP path runs only against a real Grafana named by GRAFANA_URL.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from bdr import api
from bdr.config import Config
from bdr.crypto import generate_key_file, load_cipher
from bdr.engines.grafana.restore import OLD_SUFFIX
from bdr.errors import GrafanaDbCorrupt, GrafanaSetMismatch, RestoreRolledBack, UsageError
from bdr.repository import Repository, extract_set
from bdr.repository.manifest import MANIFEST_NAME, Manifest
from bdr.runtime.process import RedisProcess
from tests.grafana_fixtures import (
    DASHBOARDS,
    DS_PASSWORD,
    DS_SECURE,
    INI_SECRET,
    PROVISIONED_SECRET,
    grafana_config,
    grafana_tree,
    heartbeats,
    standin_commands,
)


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "backup.key"
    generate_key_file(path)
    return path


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    return grafana_tree(tmp_path / "host")


@pytest.fixture
def config(tmp_path: Path, paths: dict[str, Path], key: Path) -> Config:
    return grafana_config(tmp_path, paths, key)


def _run(config: Config, verb: str) -> int:
    argv = config.grafana_instance().commands[verb]
    return subprocess.run(argv, check=False, timeout=30).returncode


@pytest.fixture
def standin(config: Config) -> object:
    """The stand-in service running over grafana.db; stopped at the end whatever the test did."""
    assert _run(config, "start") == 0
    yield None
    _run(config, "stop")


def _uids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT uid FROM dashboard WHERE is_folder = 0")}


def _heartbeat(db: Path) -> float:
    return max(heartbeats(db).values(), default=0.0)


def test_backup_while_a_writer_commits_holds_every_row_committed_before_it(tmp_path: Path, paths: dict[str, Path],
                                                                          key: Path) -> None:
    writer = dataclasses.replace(grafana_config(tmp_path, paths, key),
                                 grafana={"production": dataclasses.replace(
                                     grafana_config(tmp_path, paths, key).grafana_instance(),
                                     commands=standin_commands(tmp_path, paths["db"], mode="dashboards"))})
    assert _run(writer, "start") == 0
    try:
        deadline = time.monotonic() + 20
        while len(_uids(paths["db"])) < len(DASHBOARDS) + 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        committed = _uids(paths["db"])  # read by another connection: all committed before the backup begins
        outcome = api.backup(writer, "grafana")
        after = _uids(paths["db"])
    finally:
        _run(writer, "stop")
    assert len(after) > len(committed), "the writer did not keep writing during the backup"
    repo = Repository.open(tmp_path / "repo")
    copy = tmp_path / "extracted"
    extract_set(repo, repo.get(outcome.manifest.id), copy, load_cipher(writer.encryption))
    with sqlite3.connect(copy / "grafana.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    in_copy = _uids(copy / "grafana.db")
    assert committed <= in_copy <= after
    facts = outcome.manifest.facts
    assert facts["dashboard_count"] == len(in_copy)
    assert sorted(d["uid"] for d in facts["dashboards"]) == sorted(in_copy)


def test_facts_name_what_grafana_holds_and_no_secret_leaves_the_encrypted_object(tmp_path: Path,
                                                                                 config: Config) -> None:
    outcome = api.backup(config, "grafana")
    facts = outcome.manifest.facts
    assert facts["dashboard_count"] == len(DASHBOARDS)
    by_uid = {d["uid"]: d for d in facts["dashboards"]}
    assert by_uid["agents-overview"] == {"uid": "agents-overview", "title": "Agents overview", "folder": "agents",
                                         "version": 1, "org_id": 1}
    assert by_uid["home"]["folder"] == ""
    assert [f["uid"] for f in facts["folders"]] == ["agents", "ops"]
    assert facts["datasources"] == ["Prometheus", "Redis sessions"]
    assert facts["alert_rule_count"] == 3 and facts["migrations"] == 5
    assert facts["integrity"] == "ok" and facts["exports"] is None
    assert sorted(facts["conf_files"]) == ["conf/grafana.ini", "conf/provisioning/dashboards/bdr.yaml",
                                           "conf/provisioning/datasources/prometheus.yaml"]
    stored = b"".join(p.read_bytes() for p in (tmp_path / "repo").rglob("*") if p.is_file())
    for secret in (DS_PASSWORD, DS_SECURE, INI_SECRET, PROVISIONED_SECRET, "timeseries"):
        assert secret.encode() not in stored, secret  # the db (panels too) and config only in the encrypted object
    assert all(f.secret and not f.sha256 for f in outcome.manifest.files)


def test_a_corrupt_database_is_refused_and_nothing_is_stored(tmp_path: Path, config: Config,
                                                             paths: dict[str, Path]) -> None:
    db = paths["db"]
    with sqlite3.connect(db) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'UQE_dashboard_org_id_uid'").fetchone()[0]
    data = bytearray(db.read_bytes())
    start = (root - 1) * page
    data[start + 8: start + 64] = b"\xff" * 56  # the cell pointers of the index on dashboard uids scrambled
    db.write_bytes(bytes(data))
    with pytest.raises(GrafanaDbCorrupt, match="not a sound Grafana database"):
        api.backup(config, "grafana")
    db.write_bytes(b"this is not a database at all " * 200)
    with pytest.raises(GrafanaDbCorrupt):
        api.backup(config, "grafana")
    assert not list((tmp_path / "repo").glob("grafana/*/manifest.json"))


def test_restore_after_loss_stops_swaps_starts_and_verifies(tmp_path: Path, config: Config,
                                                           paths: dict[str, Path], standin: object) -> None:
    db = paths["db"]
    taken = api.backup(config, "grafana").manifest
    db.unlink()  # the volume is lost; the stand-in still holds the unlinked file open
    result = api.restore(config, "grafana", "latest")
    assert result.ok, result.to_dict()
    steps = {s.name: s for s in result.steps}
    assert str(steps["safety backup"].status) == "skipped" and result.safety_id is None
    assert steps["stop"].detail.startswith("Grafana stopped") and steps["start"].detail.startswith("Grafana ready")
    assert {c.name for c in result.checks if c.ok and not c.skipped} == {"integrity_check", "inventory"}
    assert _uids(db) == {d["uid"] for d in taken.facts["dashboards"]}
    assert _run(config, "status") == 0  # running again, and writing into the restored database
    beat = _heartbeat(db)
    deadline = time.monotonic() + 10
    while _heartbeat(db) <= beat and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _heartbeat(db) > beat

    # a restore over a live database: a safety set first, and the old file gone once the set holds it
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM dashboard WHERE uid = 'redis-health'")
    again = api.restore(config, "grafana", taken.id)
    assert again.ok and again.safety_id is not None
    assert "redis-health" in _uids(db)
    assert not db.with_name(db.name + OLD_SUFFIX).exists()
    safety = api.verify(config, again.safety_id)
    assert safety.ok and "redis-health" not in {d["uid"] for d in
                                                Repository.open(tmp_path / "repo").get(again.safety_id)
                                                .manifest.facts["dashboards"]}

    # over a corrupt live database (the service down with it): no safety set can be taken, so its file is kept
    # beside, and said so
    assert _run(config, "stop") == 0
    db.write_bytes(b"garbage, not a database " * 100)
    third = api.restore(config, "grafana", taken.id)
    assert third.ok and third.safety_id is None
    kept = db.with_name(db.name + OLD_SUFFIX)
    assert kept.read_bytes().startswith(b"garbage") and str(kept) in third.steps[-1].detail
    assert _uids(db) == {d["uid"] for d in taken.facts["dashboards"]}
    # the next restore keeps the database live now, not that older kept file (which is moved aside, not lost)
    fourth = api.restore(config, "grafana", taken.id)
    assert fourth.ok and fourth.safety_id is not None and not kept.exists()
    assert [p.read_bytes()[:7] for p in db.parent.glob(f"{db.name}{OLD_SUFFIX}-*")] == [b"garbage"]


def test_a_failed_verify_rolls_back_to_the_old_database_and_grafana_runs(config: Config, paths: dict[str, Path],
                                                                         standin: object,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    db = paths["db"]
    api.backup(config, "grafana")
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM dashboard WHERE uid = 'home'")
    before = _uids(db)
    monkeypatch.setenv("BDR_FAILPOINTS", "restore.verify:error")
    with pytest.raises(RestoreRolledBack):
        api.restore(config, "grafana", "latest")
    assert _uids(db) == before
    assert _run(config, "status") == 0
    assert not db.with_name(db.name + OLD_SUFFIX).exists()
    assert _run(config, "stop") == 0  # started again during the rollback, it still obeys SIGTERM


def test_dashboard_restore_needs_the_api_and_names_the_setting(config: Config) -> None:
    api.backup(config, "grafana")
    with pytest.raises(UsageError, match=r"grafana\.production\.url"):
        api.restore(config, "grafana", "latest", dashboard="home")
    with_url = dataclasses.replace(config, grafana={"production": dataclasses.replace(
        config.grafana_instance(), url="http://127.0.0.1:9")})
    with pytest.raises(UsageError, match="holds no dashboard export"):
        api.restore(with_url, "grafana", "latest", dashboard="home")


def test_verify_passes_and_catches_a_tampered_set(tmp_path: Path, config: Config) -> None:
    manifest = api.backup(config, "grafana").manifest
    report = api.verify(config, manifest.id, restore_test=True)
    assert report.ok, report.to_dict()
    names = {c.name for c in report.checks if c.ok and not c.skipped}
    assert {"integrity_check", "inventory", "config files", "restore test"} <= names

    set_dir = tmp_path / "repo" / "grafana" / manifest.id
    # facts that do not match the database, sealed again with the key: only the engine's check sees it
    data = json.loads((set_dir / MANIFEST_NAME).read_text())
    data["facts"]["dashboards"] = data["facts"]["dashboards"][1:]
    forged = Manifest.from_dict(data).seal(load_cipher(config.encryption))
    (set_dir / MANIFEST_NAME).write_bytes(forged.to_json())
    report = api.verify(config, manifest.id)
    failed = {c.name: c.detail for c in report.checks if not c.ok}
    assert not report.ok and "inventory" in failed and "not in the backup" in failed["inventory"]
    live = Path(config.grafana_instance().db_path)
    before = live.read_bytes()
    with pytest.raises(GrafanaSetMismatch, match=r"not in the backup.*nothing live was touched"):
        api.restore(config, "grafana", manifest.id)  # refused in the check step: nothing live touched
    assert live.read_bytes() == before

    stored = set_dir / "secrets.tar.zst"
    raw = bytearray(stored.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    stored.write_bytes(bytes(raw))
    report = api.verify(config, manifest.id)
    assert not report.ok and any(c.name == "stored objects" and not c.ok for c in report.checks)


@pytest.mark.skipif(not os.environ.get("GRAFANA_URL"), reason="no Grafana server here (none can be installed): set "
                    "GRAFANA_URL and GRAFANA_TOKEN to run the HTTP export and --dashboard restore against one")
def test_http_export_and_single_dashboard_restore(tmp_path: Path, key: Path) -> None:  # pragma: no cover
    from bdr.config import GrafanaInstance
    from bdr.engines.grafana.api import GrafanaApi

    built = grafana_tree(tmp_path / "host")
    instance = GrafanaInstance(name="production", db_path=os.environ.get("GRAFANA_DB", str(built["db"])),
                               url=os.environ["GRAFANA_URL"], token_env="GRAFANA_TOKEN", runtime="command",
                               commands={"start": ("true",), "stop": ("true",)}, unit=None)
    config = dataclasses.replace(grafana_config(tmp_path, built, key), grafana={"production": instance})
    client = GrafanaApi.of(instance)
    uid = "bdr-test-dashboard"
    client.import_dashboard({"dashboard": {"uid": uid, "title": "bdr test", "panels": []}, "meta": {}}, "bdr test")
    outcome = api.backup(config, "grafana")
    assert uid in outcome.manifest.facts["exports"]
    client.delete_dashboard(uid)
    result = api.restore(config, "grafana", outcome.manifest.id, dashboard=uid)
    assert result.ok and client.dashboard(uid) is not None


def test_the_cli_backs_up_verifies_reports_status_and_refuses_misplaced_flags(tmp_path: Path, config: Config,
                                                                             key: Path) -> None:
    import yaml
    from click.testing import CliRunner, Result

    from bdr.cli.main import cli

    grafana = config.grafana_instance()
    policy = tmp_path / "bdr.yaml"
    policy.write_text(yaml.safe_dump({
        "repository": str(tmp_path / "repo"),
        "encryption": {"key_file": str(key), "key_env": None, "passphrase_env": None},
        "grafana": {"production": {"db_path": grafana.db_path, "config_file": grafana.config_file,
                                   "provisioning": grafana.provisioning, "runtime": "command", "unit": None,
                                   "token_env": None, "commands": {k: list(v) for k, v in grafana.commands.items()}}},
        "schedule": {"grafana": "0 3 * * *"},
    }))

    def bdr(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(policy), *args])

    backed = bdr("backup", "grafana", "--json")
    assert backed.exit_code == 0, backed.output
    assert json.loads(backed.stdout)["facts"]["dashboard_count"] == len(DASHBOARDS)
    verified = bdr("verify", "latest", "--source", "grafana", "--json")
    assert verified.exit_code == 0 and json.loads(verified.stdout)["ok"], verified.stdout
    status = bdr("status", "grafana", "--json")
    assert status.exit_code == 0, status.output
    groups = [g for g in json.loads(status.stdout)["sources"] if g["source"] == "grafana"]
    assert [(g["instance"], g["expected"], g["health"]) for g in groups] == [("production", True, "ok")]
    metrics = bdr("metrics", "show")
    assert metrics.exit_code == 0 and 'source="grafana"' in metrics.stdout, metrics.output
    pruned = bdr("prune", "--dry-run", "--json")
    assert pruned.exit_code == 0 and "grafana-" in pruned.stdout, pruned.output
    refused = bdr("restore", "grafana", "latest", "--dashboard", "home", "--yes")
    assert refused.exit_code == 2 and "grafana.production.url" in refused.stderr
    misplaced = bdr("restore", "redis", "latest", "--dashboard", "home", "--yes")
    assert misplaced.exit_code == 2 and "--dashboard is for bdr restore grafana" in misplaced.stderr


@pytest.mark.parametrize("action", ["abort", "resume"])
def test_a_restore_killed_after_the_swap_is_aborted_or_resumed_from_its_journal(
        tmp_path: Path, config: Config, paths: dict[str, Path], standin: object, action: str) -> None:
    import sys

    from bdr.errors import RestoreInterrupted

    db = paths["db"]
    taken = api.backup(config, "grafana").manifest
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM dashboard WHERE uid = 'home'")
    before = _uids(db)
    script = ("import sys; from bdr import api; from tests.grafana_fixtures import grafana_config; from pathlib import "
              "Path; t = Path(sys.argv[1]); c = grafana_config(t, {'db': Path(sys.argv[2]), 'ini': Path(sys.argv[3]), "
              "'provisioning': Path(sys.argv[4])}, Path(sys.argv[5])); api.restore(c, 'grafana', sys.argv[6])")
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(db), str(paths["ini"]),
                             str(paths["provisioning"]), str(tmp_path / "backup.key"), taken.id],
                            env={**os.environ, "BDR_FAILPOINTS": "restore.replace.after:kill"}, cwd=Path.cwd(),
                            capture_output=True, timeout=120, check=False)
    assert killed.returncode == -9, killed.stderr
    with pytest.raises(RestoreInterrupted):
        api.backup(config, "grafana")  # every command on the instance names --resume/--abort
    result = api.resume(config, "grafana", abort=action == "abort")
    assert result.ok, result.to_dict()
    assert _uids(db) == (before if action == "abort" else {d["uid"] for d in taken.facts["dashboards"]})
    assert _run(config, "status") == 0
    assert not db.with_name(db.name + OLD_SUFFIX).exists()  # put back (abort), or in the safety set (resume)


def test_backup_all_and_restore_all_hold_grafana(tmp_path: Path, config: Config, paths: dict[str, Path],
                                                 standin: object, redis_rdb: RedisProcess) -> None:
    from qdrant_client import QdrantClient

    from bdr.config import FilesSource, QdrantInstance
    from bdr.engines import engine_for
    from tests.fixtures import config_for

    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "nginx.conf").write_text("events {}\n")
    QdrantClient(path=str(tmp_path / "qdrant")).close()
    whole = dataclasses.replace(
        config_for(tmp_path, redis_rdb), files=FilesSource(root=str(tmp_path / "cfg"), paths=("nginx.conf",)),
        qdrant={"production": QdrantInstance(name="production", path=str(tmp_path / "qdrant"))},
        grafana=config.grafana, grafana_default="production", encryption=config.encryption)
    for source in ("config", "redis", "qdrant", "grafana"):  # imported here, not in backup_all's threads
        engine_for(source)
    taken = api.backup(whole, "all").manifest
    assert set(taken.facts["members"]) == {"config", "redis", "qdrant", "grafana"}
    paths["db"].unlink()
    restored = api.restore(whole, "all", taken.id)
    assert restored.ok, restored.to_dict()
    assert [s.name for s in restored.steps] == ["restore config", "restore redis", "restore qdrant", "restore grafana"]
    assert _uids(paths["db"]) == {uid for uid, _, _ in DASHBOARDS}
