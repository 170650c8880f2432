"""The ``drill:`` and ``owners:`` sections of bdr.yaml, the application checks' parsers, and the proof that
production was only read: every mistake one line naming the key; every judgement on made-up states."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from bdr.config import parse_config
from bdr.drill.checks import parse_problem
from bdr.drill.production import ProductionState
from bdr.drill.profiles import compare
from bdr.errors import ConfigError

REDIS = {"production": {"url": "redis://127.0.0.1:6379/0"}, "test": {"url": "redis://127.0.0.1:6380/0"}}


def test_the_defaults_and_the_example_file() -> None:
    config = parse_config({})
    assert config.drill.evidence_keep == 365 * 86400 and config.drill.remediation_due == 14 * 86400
    assert config.drill.signing_key is None and config.drill.schedule == "0 6 1 * *" and config.owners == {}
    assert config.targets.rto["qdrant_restore"] == 900 and config.targets.rto["config_restore"] == 300
    example = yaml.safe_load(resources.files("bdr").joinpath("data/bdr.example.yaml").read_text())
    parsed = parse_config(example)
    assert [c.kind for c in parsed.drill.source("redis").checks] == ["key_exists", "min_dbsize"]
    assert parsed.drill.source("config").checks[1].format == "env" and parsed.owners["qdrant"] == "ml-platform"


def test_checks_of_every_kind() -> None:
    config = parse_config({"redis": REDIS, "drill": {
        "redis": {"target": "test", "checks": [{"key_exists": {"key": "k", "db": 2}}, {"min_dbsize": {"count": 5,
                                                                                                      "db": 1}}]},
        "qdrant": {"checks": [{"collection_exists": "documents"}, {"min_points": {"collection": "d", "count": 3}}]},
        "config": {"target": "/var/tmp/restore", "checks": [{"file_exists": "nginx.conf"},
                                                            {"file_parses": "settings.toml"}]},
        "evidence_keep": "2y", "remediation_due": "7d", "signing_key": "/etc/bdr/drill.key"}})
    redis = config.drill.source("redis")
    assert redis.target == "test" and redis.checks[0].db == 2 and not redis.checks[1].all_dbs
    assert [c.describe() for c in config.drill.source("qdrant").checks] == [
        "collection 'documents' exists", "collection 'd' holds at least 3 points"]
    assert config.drill.source("config").checks[1].format == "toml"
    assert config.drill.evidence_keep == 2 * 365 * 86400 and config.drill.remediation_due == 7 * 86400


@pytest.mark.parametrize(("data", "expected"), [
    ({"drill": {"redis": {"target": "production"}}}, "drill.redis.target: 'production' is production"),
    ({"drill": {"redis": {"target": "staging"}}}, "drill.redis.target: no redis instance named 'staging'"),
    ({"drill": {"qdrant": {"checks": [{"key_exists": "x"}]}}},
     "drill.qdrant.checks[0]: key_exists is a redis check, not a qdrant one"),
    ({"drill": {"redis": {"checks": [{"exists": "x"}]}}}, "drill.redis.checks[0]: unknown check 'exists'"),
    ({"drill": {"redis": {"checks": [{"min_dbsize": -1}]}}}, "drill.redis.checks[0].min_dbsize must be a whole"),
    ({"drill": {"qdrant": {"checks": [{"min_points": 10}]}}}, "drill.qdrant.checks[0].min_points needs a collection"),
    ({"drill": {"config": {"checks": [{"file_parses": "redis.conf"}]}}}, "cannot tell how to parse 'redis.conf'"),
    ({"drill": {"config": {"checks": [{"file_parses": {"path": "a.yml", "format": "xml"}}]}}},
     "file_parses.format must be one of yaml, json, toml, env"),
    ({"drill": {"config": {"checks": [{"file_exists": "../etc/passwd"}]}}}, "must be relative to files.root"),
    ({"drill": {"config": {"target": "."}}}, "drill.config.target is files.root"),
    ({"drill": {"evidence_keep": "soon"}}, "drill.evidence_keep: not a duration"),
    ({"drill": {"schedule": "monthly"}}, "drill.schedule must be a cron expression of 5 fields"),
    ({"drill": {"redis": {"colour": "red"}}}, "unknown key(s) in drill.redis: colour"),
    ({"drill": {"tests": {}}}, "unknown key(s) in drill: tests"),
    ({"owners": {"metrics": "x"}}, "owners.metrics: unknown source"),
    ({"owners": {"redis": " "}}, "owners.redis must name a person or team"),
])
def test_a_mistake_is_one_line_naming_the_key(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"redis": REDIS, **data})
    assert expected in raised.value.message and "\n" not in raised.value.message


@pytest.mark.parametrize(("text", "fmt", "problem"), [
    ("a: 1\nb: [2, 3]\n", "yaml", ""),
    ("a: [1, 2\n", "yaml", "at line 2, column 1"),
    ('{"a": 1}', "json", ""),
    ('{"a": 1,}', "json", "at line 1, column 9"),
    ('a = 1\n[b]\nc = "x"\n', "toml", ""),
    ("a = \n", "toml", "Invalid value"),
    ("# comment\nexport A=1\nB=two words\n\n", "env", ""),
    ("A=1\nthis is not it\n", "env", "line 2 is not NAME=value"),
])
def test_file_parses_names_the_position_never_the_content(text: str, fmt: str, problem: str) -> None:
    found = parse_problem(text, fmt)
    assert (problem in found) if problem else found == ""
    assert "this is not it" not in found


def _redis(pid: int = 812, run_id: str = "r1", uptime: int = 100, keys: int = 50, expired: int = 0) -> ProductionState:
    return ProductionState("redis", "production", "redis://127.0.0.1:6379/0", "t", pid=pid, run_id=run_id,
                           uptime_seconds=uptime, counts={"db0": keys}, expired=expired)


def test_production_untouched_means_the_same_process_and_counts_only_grown() -> None:
    assert compare(_redis(), _redis(uptime=104)).ok
    assert "only grown (+5" in compare(_redis(), _redis(uptime=104, keys=55)).detail
    assert compare(_redis(), _redis(uptime=104, keys=47, expired=3)).ok  # Redis expired them itself
    fell = compare(_redis(), _redis(uptime=104, keys=45, expired=3))
    assert not fell.ok and "5 fewer keys" in fell.detail
    restarted = compare(_redis(), _redis(pid=900, run_id="r2", uptime=2))
    assert not restarted.ok and "it was restarted" in restarted.detail
    unreadable = compare(_redis(), ProductionState("redis", "production", "", "t", error="connection refused"))
    assert unreadable.skipped and not unreadable.ok and "not proven untouched" in unreadable.detail
    before = ProductionState("qdrant", "production", "embedded", "t", counts={"documents": 10, "memories": 5})
    assert compare(before, ProductionState("qdrant", "production", "embedded", "t",
                                           counts={"documents": 12, "memories": 5})).ok
    gone = compare(before, ProductionState("qdrant", "production", "embedded", "t", counts={"documents": 10}))
    assert not gone.ok and "collection(s) gone: memories" in gone.detail
    files = ProductionState("config", "config", "/srv", "t", files={"a.yml": "1", ".env": "secret: size 3"})
    assert compare(files, files).ok
    changed = ProductionState("config", "config", "/srv", "t", files={"a.yml": "2", ".env": "secret: size 3"})
    edited = compare(files, changed)
    assert not edited.ok and "a.yml" in edited.detail


def test_evidence_has_its_own_retention_and_never_counts_as_a_set(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from bdr.repository import Repository, evidence

    repo = Repository.open(tmp_path / "backups")
    now = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    for run_id in ("drill-live-20251101T060000Z", "drill-live-20261101T060000Z", "drill-20261201T060000Z"):
        evidence.store(repo, run_id, {"report.json": b"{}", "report.html": b"<html></html>"}, now)
    assert next(r.run_id for r in evidence.runs(repo)) == "drill-live-20251101T060000Z"
    assert all(r.complete for r in evidence.runs(repo))
    assert evidence.prune(repo, 365 * 86400.0, now) == ["drill-live-20251101T060000Z"]
    assert [r.run_id for r in evidence.runs(repo)] == ["drill-live-20261101T060000Z", "drill-20261201T060000Z"]
    index = json.loads(repo.storage.read_bytes("evidence/drill-20261201T060000Z/index.json"))
    assert index["files"]["report.json"]["size"] == 2 and len(index["files"]["report.json"]["sha256"]) == 64
    catalog = repo.catalog()
    assert catalog.sets == () and catalog.damaged == () and catalog.unfinished == ()
