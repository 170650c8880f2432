"""``bdr drill --live``: the monthly restore test of real backups, on Redis started the ordinary way.

Production and test Redis are started as an operator starts them (``redis-server redis.conf``
from a shell, :mod:`tests.operators`), Qdrant is the embedded engine, the configuration a
directory with ``.env``. One set of backups is taken once; each test restores a copy of that
repository with its own bdr.yaml through the real CLI, and every test proves production
untouched: the same pid, every key byte for byte (DUMP), the same points and files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bdr import api
from bdr.cli.main import cli
from bdr.config import load_config
from bdr.drill.workload import load_qdrant_workload, load_redis_workload
from bdr.engines.qdrant.client import connect, target_of
from bdr.repository import Repository
from tests.operators import OperatorRedis, Operators
from tests.s3_fixtures import S3Bucket

CONFIG_FILES = {
    "docker-compose.yml": "services:\n  redis: {image: 'redis:7-alpine'}\n",
    "redis.conf": "appendonly yes\n",
    "monitoring/prometheus.yml": "scrape_configs: []\n",
    ".env": "OPENAI_API_KEY=sk-not-a-real-key\nREDIS_PASSWORD=not-a-real-password\n",
}


@dataclass
class Site:
    """The operator's system: production and test Redis, embedded Qdrant, config files, one repository of sets."""

    root: Path
    production: OperatorRedis
    test: OperatorRedis
    base: dict[str, Any]

    def settings(self, tmp: Path, **changes: Any) -> Path:
        """A bdr.yaml in ``tmp`` over a copy of the repository; ``changes`` replace top-level sections."""
        repository = tmp / "backups"
        shutil.copytree(self.root / "backups", repository)
        doc = {**json.loads(json.dumps(self.base)), "repository": str(repository)}
        for key, value in changes.items():
            if value is None:
                doc.pop(key, None)
            else:
                doc[key] = value
        path = tmp / "bdr.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    def production_state(self) -> dict[str, Any]:
        client = self.production.client()
        keys = sorted(client.scan_iter(count=1000))
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
        config = load_config(self.root / "base.yaml")
        with connect(target_of(config, "production")) as qdrant:
            points = {c.name: qdrant.count(c.name, exact=True).count for c in qdrant.get_collections().collections}
        files = {str(p.relative_to(self.root / "cfg")): hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in sorted((self.root / "cfg").rglob("*")) if p.is_file()}
        return {"pid": self.production.pid(), "run_id": client.info("server")["run_id"],
                "dump": dict(zip(keys, pipe.execute(), strict=True)), "points": points, "files": files}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("live-site")
    operators = Operators()
    try:
        production, test = operators.start("shell"), operators.start("shell")
        load_redis_workload(production.client(), users=40, sessions=80, caches=40, conversations=4)
        production.client().set("test_key", "the old runbook's GET test_key")
        cfg = root / "cfg"
        for name, text in CONFIG_FILES.items():
            (cfg / name).parent.mkdir(parents=True, exist_ok=True)
            (cfg / name).write_text(text)
        (cfg / ".env").chmod(0o600)
        key = root / "backup.key"
        key.write_text("5e" * 32 + "\n")
        key.chmod(0o600)
        base: dict[str, Any] = {
            "repository": str(root / "backups"),
            "redis": {"production": {"url": production.url, "log_file": str(root / "production.log")},
                      "test": {"url": test.url, "log_file": str(root / "test.log")}},
            "qdrant": {"production": {"path": str(root / "qdrant")}},
            "files": {"root": str(cfg), "paths": ["docker-compose.yml", "redis.conf", "monitoring/"],
                      "secrets": [".env"]},
            "encryption": {"key_file": str(key)},
            "owners": {"redis": "platform-team", "qdrant": "ml-platform", "config": "sre-oncall"},
            "drill": {
                "redis": {"checks": [{"key_exists": "test_key"}, {"min_dbsize": 100}]},
                "qdrant": {"checks": [{"min_points": {"collection": "documents", "count": 40}}]},
                "config": {"checks": [{"file_parses": "docker-compose.yml"},
                                      {"file_parses": {"path": ".env", "format": "env"}}]},
            },
        }
        (root / "base.yaml").write_text(yaml.safe_dump(base))
        config = load_config(root / "base.yaml")
        with connect(target_of(config, "production"), create=True) as client:
            load_qdrant_workload(client, documents=60)
        for source in ("redis", "qdrant", "config"):
            api.backup(config, source)
        yield Site(root, production, test, base)
    finally:
        operators.close()


def live(config: Path, tmp: Path, *extra: str) -> tuple[int, str, str, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["--config", str(config), "drill", "--live", "--reports", str(tmp / "reports"),
                                      "--operator", "Dana (on call)", *extra])
    found = sorted((tmp / "reports").glob("drill-live-*.json"))
    report = json.loads(found[-1].read_text()) if found else {}
    return result.exit_code, result.stdout, result.stderr, report


def _by_key(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in report["results"]}


@pytest.fixture
def untouched(site: Site) -> Iterator[None]:
    """Production as it was before the test, afterwards: pid, every key by DUMP, points, files."""
    before = site.production_state()
    yield
    after = site.production_state()
    assert after["pid"] == before["pid"] and after["run_id"] == before["run_id"], "production was restarted"
    assert after["dump"] == before["dump"], "production's keys changed"
    assert after["points"] == before["points"] and after["files"] == before["files"]


def test_good_backups_pass_and_the_report_is_live_evidence(site: Site, tmp_path: Path, untouched: None) -> None:
    code, out, err, report = live(site.settings(tmp_path), tmp_path)
    assert code == 0, out + err
    assert report["scope"]["kind"] == "live" and report["all_targets_met"] is True
    assert report["operator"] == "Dana (on call)"
    results = _by_key(report)
    assert set(results) == {"live_config", "live_redis", "live_qdrant", "live_system"}
    redis = results["live_redis"]
    checks = {(c["kind"], c["name"]): c for c in redis["checks"]}
    assert checks[("rto", "redis_local_restore")]["met"] and set(checks[("rto", "redis_local_restore")]["phases"]) \
        == {"detect", "restore", "verify"}
    assert 0 <= checks[("rpo", "sessions")]["achieved_seconds"] < 600
    verifications = {(v["kind"], v["name"]): v for v in redis["verifications"]}
    assert verifications[("content", "full content digest (bdr-rdb-1) of the restored server")]["ok"]
    assert verifications[("application", "key 'test_key' exists (db 0)")]["ok"]
    assert "same process" in verifications[("production", "redis/production untouched")]["detail"]
    assert redis["evidence"]["production"]["before"]["pid"] == site.production.pid()
    assert {v["name"] for v in results["live_qdrant"]["verifications"] if v["kind"] == "content"} == \
        {"documents: points", "memories: points"}
    assert results["live_qdrant"]["evidence"]["restore_target"]["temporary"] is True  # no qdrant.test in bdr.yaml
    assert results["live_redis"]["evidence"]["restore_target"]["name"] == "test"
    assert [c["name"] for c in results["live_system"]["checks"]] == ["full_system_restore"]
    coverage = {c["objective"]: c for c in report["coverage"]}
    assert not coverage["rpo metrics"]["tested"] and "Prometheus" in coverage["rpo metrics"]["note"]
    assert coverage["rto qdrant_restore"]["tested_by"] == [{"scenario": "live_qdrant", "verdict": "met"}]
    assert report["remediation"] == []
    html = " ".join((tmp_path / "reports" / f"{report['run_id']}.html").read_text().split())
    assert "LIVE" in html and "Production: only read" in html and "Not signed off yet" in html
    evidence = Repository.open(tmp_path / "backups").storage
    assert evidence.exists(f"evidence/{report['run_id']}/index.json")
    assert "stored as evidence" in out
    assert api.list_sets(load_config(tmp_path / "bdr.yaml"), "redis"), "the sets are still listed beside evidence/"


def test_an_impossible_target_is_a_breach_into_a_temporary_redis(site: Site, tmp_path: Path, untouched: None) -> None:
    redis = {"production": site.base["redis"]["production"]}  # no test instance: a temporary redis-server
    targets = {"rto": {"redis_local_restore": 0.0001}}
    code, _, err, report = live(site.settings(tmp_path, redis=redis, targets=targets), tmp_path,
                                  "--source", "redis")
    assert code == 1
    assert err.startswith("bdr: error: BREACH: RTO redis_local_restore breached") and err.count("\n") == 1
    result = _by_key(report)["live_redis"]
    assert result["evidence"]["restore_target"]["temporary"] is True
    assert result["verifications"] and all(v["ok"] for v in result["verifications"] if not v["skipped"])
    item = next(i for i in report["remediation"] if i["id"] == "live_redis: RTO redis_local_restore")
    assert item["owner"] == "platform-team" and item["status"] == "open" and item["due"] > report["started_at"][:10]


def test_a_set_older_than_the_rpo_is_a_breach(site: Site, tmp_path: Path, untouched: None) -> None:
    time.sleep(1.1)  # the sets are now more than a second old
    code, _, err, report = live(site.settings(tmp_path, targets={"rpo": {"sessions": 1}}), tmp_path,
                                "--source", "redis")
    assert code == 1 and "RPO sessions breached" in err
    check = next(c for c in _by_key(report)["live_redis"]["checks"] if c["name"] == "sessions")
    assert check["achieved_seconds"] > 1 and not check["met"] and "snapshot" in check["note"]


def test_a_failed_application_check_is_a_breach(site: Site, tmp_path: Path, untouched: None) -> None:
    drill = {"redis": {"checks": [{"key_exists": "key_the_app_needs"}]},
             "config": {"checks": [{"file_parses": {"path": "redis.conf", "format": "json"}}]}}
    code, _, err, report = live(site.settings(tmp_path, drill=drill), tmp_path, "--source", "redis",
                                "--source", "config")
    assert code == 1 and "application check failed" in err
    results = _by_key(report)
    redis = next(v for v in results["live_redis"]["verifications"] if v["kind"] == "application")
    assert not redis["ok"] and "'key_the_app_needs' is missing" in redis["detail"]
    parsed = next(v for v in results["live_config"]["verifications"] if v["kind"] == "application")
    assert not parsed["ok"] and "does not parse as json" in parsed["detail"]
    assert "appendonly" not in parsed["detail"]  # a parse error names the position, never the content
    assert {i["owner"] for i in report["remediation"]} == {"platform-team", "sre-oncall"}


def test_a_corrupted_set_is_a_breach(site: Site, tmp_path: Path, untouched: None) -> None:
    config = site.settings(tmp_path)
    newest = api.list_sets(load_config(config), "redis")[0]
    rdb = tmp_path / "backups" / "redis" / newest.id / "dump.rdb"
    data = bytearray(rdb.read_bytes())
    data[len(data) // 2] ^= 0xFF
    rdb.write_bytes(bytes(data))
    code, _, err, report = live(config, tmp_path, "--source", "redis")
    assert code == 1 and "recovery failed" in err
    result = _by_key(report)["live_redis"]
    assert result["outcome"] == "failed" and "checksum" in result["failure"].lower()
    assert next(c for c in result["checks"] if c["kind"] == "rto")["achieved_seconds"] is None
    production = next(v for v in result["verifications"] if v["kind"] == "production")
    assert production["ok"], production


def test_a_test_target_that_is_production_is_refused(site: Site, tmp_path: Path) -> None:
    drill = {"redis": {"target": "production"}}
    code, out, err, _ = live(site.settings(tmp_path, drill=drill), tmp_path)
    assert code == 3 and out == ""
    assert "drill.redis.target: 'production' is production" in err and err.count("\n") == 1


@pytest.mark.s3
def test_from_off_site_the_download_is_timed_and_evidence_goes_there_too(site: Site, tmp_path: Path,
                                                                        s3_bucket: S3Bucket, untouched: None) -> None:
    remote = {"url": s3_bucket.url("offsite"), "endpoint_url": s3_bucket.server.endpoint, "region": "us-east-1",
              "part_size_mib": 5}
    config = site.settings(tmp_path, remote=remote)
    api.backup(load_config(config), "redis", remote=remote["url"])
    code, out, err, report = live(config, tmp_path, "--source", "redis", "--remote")
    assert code == 0, out + err
    result = _by_key(report)["live_redis"]
    assert result["evidence"]["backup"]["location"] == "s3" and result["evidence"]["backup"]["encrypted"]
    fetch = next(s for s in result["steps"] if s["name"] == "runbook: fetch")
    start = next(s for s in result["steps"] if s["name"] == "test start")
    assert fetch["offset"] >= start["offset"], "the download is on the RTO clock"
    assert "off-site" in next(c for c in result["checks"] if c["kind"] == "rto")["note"]
    assert f"evidence/{report['run_id']}/index.json" in " ".join(s3_bucket.keys("offsite/evidence"))
