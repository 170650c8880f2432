"""The archive's alerts and metrics, checked by Prometheus' own promtool (as every other alert of bdr is)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bdr.cli.main import cli
from bdr.config import ArchiveSettings, Config
from bdr.monitoring.metrics import exposition
from bdr.util.host import process_start_time

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool not found: apt-get install prometheus")

SERIES = '{source="redis",instance="production"}'


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=120, cwd=cwd,
                          check=False)


def rules_for(tmp_path: Path, max_lag: str = "2m") -> Path:
    config_file = tmp_path / "bdr.yaml"
    config_file.write_text(yaml.safe_dump({"archive": {"redis": {"production": {"max_lag": max_lag}}}}))
    rules = tmp_path / "rules.yml"
    result = CliRunner().invoke(cli, ["--config", str(config_file), "alerts", "--output", str(rules)])
    assert result.exit_code == 0, result.output
    return rules


def test_the_archive_rules_pass_promtool_check_and_exist_only_when_something_is_archived(tmp_path: Path) -> None:
    rules = rules_for(tmp_path)
    checked = promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    names = [r["alert"] for r in yaml.safe_load(rules.read_text())["groups"][0]["rules"]]
    assert names.count("ArchiveLagging") == 1 and "ArchiveNeverReported" in names and "ArchiveNewBase" in names
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "bdr.yaml").write_text("{}\n")
    assert CliRunner().invoke(cli, ["--config", str(plain / "bdr.yaml"), "alerts", "--output",
                                    str(plain / "rules.yml")]).exit_code == 0
    assert "Archive" not in (plain / "rules.yml").read_text()


def alert(labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    return {"exp_labels": labels, "exp_annotations": annotations}


def test_the_archive_alerts_fire_when_they_must_and_only_then(tmp_path: Path) -> None:
    rules_for(tmp_path)
    lagging = {"summary": "redis/production: the archive lags more than 2m",
               "description": "The newest moment a point-in-time restore of redis/production reaches is 3m 0s old; "
                              "the policy allows 2m. A total loss now loses that much. Check the archiver "
                              "(`systemctl status bdr-archive-redis-production`, `bdr archive list`)."}
    tests: list[dict[str, Any]] = [{
        "interval": "1m",
        # the archive keeps up for 5 minutes (the timestamp follows the clock), then the archiver dies
        "input_series": [{"series": f"backup_archive_covered_timestamp{SERIES}", "values": "0+60x5 300x10"},
                         {"series": f"backup_archive_new_bases_total{SERIES}", "values": "0x5 1x10"}],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "ArchiveLagging", "exp_alerts": []},
            {"eval_time": "7m", "alertname": "ArchiveLagging", "exp_alerts": []},
            {"eval_time": "8m", "alertname": "ArchiveLagging", "exp_alerts": [alert(
                {"source": "redis", "instance": "production", "severity": "critical",
                 "policy": "archive.redis.production.max_lag"}, lagging)]},
            {"eval_time": "4m", "alertname": "ArchiveNewBase", "exp_alerts": []},
            {"eval_time": "7m", "alertname": "ArchiveNewBase", "exp_alerts": [alert(
                {"source": "redis", "instance": "production", "severity": "warning"},
                {"summary": "redis/production: the archiver took a new base",
                 "description": "The archiver of redis/production could not continue the replication stream (it "
                                "was away longer than the master's repl-backlog-size holds, or the master "
                                "restarted) and took a new base: the moments between are not recoverable to the "
                                "second. Raise repl-backlog-size, or keep the archiver running (`bdr archive list` "
                                "shows the gap)."})]},
        ],
    }, {
        "interval": "1m",
        "input_series": [],  # the archiver never reported
        "alert_rule_test": [
            {"eval_time": "1m", "alertname": "ArchiveNeverReported", "exp_alerts": []},
            {"eval_time": "3m", "alertname": "ArchiveNeverReported", "exp_alerts": [alert(
                {"source": "redis", "instance": "production", "severity": "critical"},
                {"summary": "redis/production: the archive has never reported",
                 "description": "Prometheus has no backup_archive_covered_timestamp of redis/production: the "
                                "archiver never ran, or node_exporter no longer reads bdr's metrics textfile. Start "
                                "it (`bdr schedule --install --enable` installs bdr-archive-redis-production) and "
                                "check metrics_textfile in bdr.yaml."})]},
        ],
    }]
    (tmp_path / "archive_test.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    tested = promtool("test", "rules", "archive_test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_archive_metrics_pass_promtool_check_metrics(tmp_path: Path) -> None:
    config = dataclasses.replace(Config(), repository=str(tmp_path / "repo"),
                                 archive={"production": ArchiveSettings("production")})
    spool = config.archive_spool("production")
    spool.mkdir(parents=True)
    (spool / "status.json").write_text(json.dumps({
        "pid": os.getpid(), "process_start": process_start_time(os.getpid()), "state": "streaming",
        "connected": True, "covered_until_us": 1_796_000_000_000_000, "lag_bytes": 1234, "new_bases": 2}))
    text = exposition(config)
    assert 'backup_archive_up{instance="production",source="redis"} 1' in text
    assert 'backup_archive_new_bases_total{instance="production",source="redis"} 2' in text
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
