"""The alert rules and the metrics text, checked by Prometheus' own promtool.

``promtool check rules`` validates the rule file ``bdr alerts`` writes; ``promtool test
rules`` feeds series to every alert and checks that it fires when it must (with its labels
and rendered annotations) and stays quiet when it must not; ``promtool check metrics``
lints the exposition text. promtool ships in Debian's ``prometheus`` package
(``apt-get install prometheus``, as scripts/setup.sh does).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bdr.cli.main import cli
from bdr.config import Config, parse_config
from bdr.errors import ServiceUnavailable
from bdr.monitoring.metrics import DrillMetrics, Objective, ObjectiveResult, exposition, record_drill, record_failure
from bdr.repository import Repository, Verification
from bdr.repository.manifest import to_iso
from tests.backup_sets import make_manifest, store_set

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: install Debian's prometheus package (apt-get install prometheus), which ships it",
)

WHO_REDIS = "redis/production"


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=120, cwd=cwd,
                          check=False)


def write_rules(tmp_path: Path, policy: dict[str, Any]) -> Path:
    config_file = tmp_path / "bdr.yaml"
    config_file.write_text(yaml.safe_dump(policy))
    rules = tmp_path / "rules.yml"
    result = CliRunner().invoke(cli, ["--config", str(config_file), "alerts", "--output", str(rules)])
    assert result.exit_code == 0, result.output
    return rules


def test_the_rules_pass_promtool_check(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, {"max_backup_age": {"qdrant": "26h", "redis/sessions": "2h"},
                                   "max_verify_age": {"config": "30d"}})
    checked = promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 15 rules found" in checked.stdout  # 4 of them BackupNeverReported, one per expected group


def too_old(who: str, age: str, limit: str) -> dict[str, str]:
    return {
        "summary": f"{who}: the newest backup is older than {limit}",
        "description": f"The newest good backup of {who} finished {age} ago; the policy allows {limit}. Check the "
                       "backup job (cron, logs) and run `bdr status`.",
    }


def never_reported(who: str, limit: str) -> dict[str, str]:
    return {
        "summary": f"{who}: no backup has reported for {limit}",
        "description": f"Prometheus has no backup_last_success_timestamp of {who}: its backup job never ran, or "
                       "node_exporter no longer reads bdr's metrics textfile. Check the timer (`systemctl "
                       "list-timers 'bdr-*'`) or cron job, metrics_textfile in bdr.yaml and node_exporter's "
                       "--collector.textfile.directory.",
    }


def alert(labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    return {"exp_labels": labels, "exp_annotations": annotations}


def group_labels(source: str, instance: str, **extra: str) -> dict[str, str]:
    return {"source": source, "instance": instance, **extra}


def test_every_alert_fires_when_it_must_and_only_then(tmp_path: Path) -> None:
    write_rules(tmp_path, {"max_backup_age": {"qdrant": "26h"}})
    series = [
        # BackupTooOld: redis succeeded at t=0 (limit 24h), config at 1h (24h), qdrant at 0 with its own 26h
        ('backup_last_success_timestamp{source="redis",instance="production"}', "0x400"),
        ('backup_last_success_timestamp{source="config",instance="config"}', "3600x400"),
        ('backup_last_success_timestamp{source="qdrant",instance="production"}', "0x400"),
    ]
    tests: list[dict[str, Any]] = [{
        "interval": "5m",
        "input_series": [{"series": s, "values": v} for s, v in series],
        "alert_rule_test": [
            {"eval_time": "23h", "alertname": "BackupTooOld", "exp_alerts": []},
            {"eval_time": "24h30m", "alertname": "BackupTooOld", "exp_alerts": [
                alert(group_labels("redis", "production", severity="critical", policy="max_backup_age.default"),
                      too_old(WHO_REDIS, "1d 0h 30m 0s", "24h")),
            ]},
            {"eval_time": "26h30m", "alertname": "BackupTooOld", "exp_alerts": [
                alert(group_labels("config", "config", severity="critical", policy="max_backup_age.default"),
                      too_old("config/config", "1d 1h 30m 0s", "24h")),
                alert(group_labels("qdrant", "production", severity="critical", policy="max_backup_age.qdrant"),
                      too_old("qdrant/production", "1d 2h 30m 0s", "26h")),
                alert(group_labels("redis", "production", severity="critical", policy="max_backup_age.default"),
                      too_old(WHO_REDIS, "1d 2h 30m 0s", "24h")),
            ]},
        ],
    }, {
        "interval": "1m",
        "input_series": [
            # BackupFailed: redis failed after its last success, qdrant failed before it
            {"series": 'backup_last_success_timestamp{source="redis",instance="production"}', "values": "1000x30"},
            {"series": 'backup_last_failure_timestamp{source="redis",instance="production"}', "values": "2000x30"},
            {"series": 'backup_last_success_timestamp{source="qdrant",instance="production"}', "values": "3000x30"},
            {"series": 'backup_last_failure_timestamp{source="qdrant",instance="production"}', "values": "2000x30"},
            # verification: redis verified at 0 (stale after 7d), then a verify failed; qdrant fine
            {"series": 'backup_last_verify_timestamp{source="redis",instance="production"}', "values": "0x30"},
            {"series": 'backup_last_verify_failure_timestamp{source="redis",instance="production"}',
             "values": "500x30"},
            {"series": 'backup_last_verify_timestamp{source="qdrant",instance="production"}', "values": "900x30"},
            {"series": 'backup_last_verify_failure_timestamp{source="qdrant",instance="production"}',
             "values": "100x30"},
            # repository and drill
            {"series": 'backup_repository_up{repository="s3://bucket/bdr",location="s3"}', "values": "0x30"},
            {"series": 'backup_repository_up{repository="/backups",location="local"}', "values": "1x30"},
            {"series": 'drill_target_met{scenario="complete_data_loss",objective="rpo",name="sessions"}',
             "values": "0x30"},
            {"series": 'drill_target_met{scenario="complete_data_loss",objective="rto",name="full_system_restore"}',
             "values": "1x30"},
            # a restore of redis was killed (bdr status exits 13 on it); qdrant's restores are fine
            {"series": 'backup_restore_interrupted{source="redis",instance="production"}', "values": "1x30"},
            {"series": 'backup_restore_interrupted{source="qdrant",instance="production"}', "values": "0x30"},
        ],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "BackupFailed", "exp_alerts": [alert(
                group_labels("redis", "production", severity="critical"),
                {"summary": f"{WHO_REDIS}: the last backup failed",
                 "description": f"The last `bdr backup` of {WHO_REDIS} failed after its last success; see the job's "
                                "log and run it again by hand."})]},
            {"eval_time": "5m", "alertname": "BackupVerificationFailed", "exp_alerts": [alert(
                group_labels("redis", "production", severity="critical"),
                {"summary": f"{WHO_REDIS}: the last verification failed",
                 "description": f"The last `bdr verify` of a backup of {WHO_REDIS} found a problem; run `bdr list` "
                                "to see which set, and take a new backup."})]},
            {"eval_time": "5m", "alertname": "BackupVerificationStale", "exp_alerts": []},
            {"eval_time": "10m", "alertname": "BackupRepositoryUnreachable", "exp_alerts": []},  # for: 15m
            {"eval_time": "20m", "alertname": "BackupRepositoryUnreachable", "exp_alerts": [alert(
                {"repository": "s3://bucket/bdr", "location": "s3", "severity": "warning"},
                {"summary": "backup repository s3://bucket/bdr cannot be read",
                 "description": "bdr could not list s3://bucket/bdr (s3): check the mount, the credentials or the "
                                "network."})]},
            {"eval_time": "1m", "alertname": "RestoreInterrupted", "exp_alerts": [alert(
                group_labels("redis", "production", severity="critical"),
                {"summary": f"{WHO_REDIS}: a restore was interrupted",
                 "description": f"A `bdr restore` of {WHO_REDIS} was killed before it finished: the instance may be "
                                "down or half restored. Run `bdr status`, then `bdr restore redis --resume --target "
                                "production` (finish) or `--abort` (roll back)."})]},
            {"eval_time": "1m", "alertname": "DrillTargetBreached", "exp_alerts": [alert(
                {"scenario": "complete_data_loss", "objective": "rpo", "name": "sessions", "severity": "warning"},
                {"summary": "drill complete_data_loss missed its rpo objective sessions",
                 "description": "The last run of drill complete_data_loss did not meet the rpo target for sessions; "
                                "see the drill report."})]},
        ],
    }, {
        "interval": "1h",
        "input_series": [
            {"series": 'backup_last_verify_timestamp{source="redis",instance="production"}', "values": "0x200"},
            {"series": 'backup_last_verify_timestamp{source="qdrant",instance="production"}', "values": "432000x200"},
        ],
        "alert_rule_test": [
            {"eval_time": "7d", "alertname": "BackupVerificationStale", "exp_alerts": []},
            {"eval_time": "8d", "alertname": "BackupVerificationStale", "exp_alerts": [alert(
                group_labels("redis", "production", severity="warning", policy="max_verify_age.default"),
                {"summary": f"{WHO_REDIS}: no successful verification within 7d",
                 "description": f"The last successful `bdr verify` of {WHO_REDIS} was 8d 0h 0m 0s ago; the policy "
                                "asks for one every 7d. Run `bdr verify latest --restore-test`."})]},
        ],
    }, {
        "interval": "1h",
        "input_series": [  # the redis job reports; qdrant's and config's never did (no series at all)
            {"series": 'backup_last_success_timestamp{source="redis",instance="production"}', "values": "0+3600x40"},
        ],
        "alert_rule_test": [
            {"eval_time": "23h", "alertname": "BackupNeverReported", "exp_alerts": []},  # for: max_backup_age
            {"eval_time": "25h", "alertname": "BackupNeverReported", "exp_alerts": [
                alert(group_labels("config", "config", severity="critical"), never_reported("config/config", "24h")),
            ]},
            {"eval_time": "27h", "alertname": "BackupNeverReported", "exp_alerts": [  # qdrant has 26h of its own
                alert(group_labels("config", "config", severity="critical"), never_reported("config/config", "24h")),
                alert(group_labels("qdrant", "production", severity="critical"),
                      never_reported("qdrant/production", "26h")),
            ]},
        ],
    }, {
        "interval": "5m",
        "input_series": [
            {"series": 'backup_321_ok{source="redis",instance="production"}', "values": "0x40"},
            {"series": 'backup_321_ok{source="qdrant",instance="production"}', "values": "1x40"},
        ],
        "alert_rule_test": [
            {"eval_time": "30m", "alertname": "BackupThreeTwoOneBroken", "exp_alerts": []},  # for: 1h
            {"eval_time": "1h10m", "alertname": "BackupThreeTwoOneBroken", "exp_alerts": [alert(
                group_labels("redis", "production", severity="warning"),
                {"summary": f"{WHO_REDIS}: the 3-2-1 rule does not hold",
                 "description": f"{WHO_REDIS} lacks 3 fresh copies (with the live data) on 2 media with 1 off-site; "
                                "run `bdr status` to see which copy is missing or stale."})]},
        ],
    }]
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    tested = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_exposition_passes_promtool_check_metrics(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    now = datetime.now(UTC)
    store_set(repo, make_manifest(now - timedelta(hours=1)),
              Verification(at=to_iso(now), ok=True, restore_test=True))
    store_set(repo, make_manifest(now - timedelta(hours=2), "qdrant"))
    config = dataclasses.replace(Config(), repository=str(tmp_path / "repo"),
                                 metrics_textfile=str(tmp_path / "bdr.prom"))
    record_failure(config, "config", "config", ServiceUnavailable(service="S3", address="x", detail='a "quoted"\nb'))
    record_drill(config, [DrillMetrics("complete_data_loss", now, (
        ObjectiveResult(Objective.RTO, "full_system_restore", 1800, 12.5),
        ObjectiveResult(Objective.RPO, "sessions", 3600, None),
    ))])
    text = exposition(config)
    assert text == (tmp_path / "bdr.prom").read_text()
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_bundled_template_passes_promtool_check() -> None:
    template = Path(__file__).resolve().parents[2] / "bdr" / "data" / "alerts.yml"
    checked = promtool("check", "rules", str(template))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert parse_config({}).max_backup_age == {"default": 86400.0}
