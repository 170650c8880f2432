"""The policy checks: backup schedules against each RPO, retention against the written table."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from bdr.lint.runner import LintOptions, LintReport, run_lint

DATA = Path(__file__).parent.parent / "data" / "lint"


def project(tmp_path: Path, fixture: str = "clean", **changes: Any) -> Path:
    """A copy of a fixture directory, with top-level bdr.yaml sections replaced (None deletes one)."""
    for item in (DATA / fixture).iterdir():
        shutil.copy(item, tmp_path / item.name)
    if not changes:
        return tmp_path
    policy = tmp_path / "bdr.yaml"
    data = yaml.safe_load(policy.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    policy.write_text(yaml.safe_dump(data, sort_keys=False))
    return tmp_path


def lint(cwd: Path, **options: Any) -> LintReport:
    return run_lint(LintOptions(**options), cwd=cwd)


def rules(report: LintReport) -> list[str]:
    return [f.rule for f in report.findings]


def test_the_clean_policy_has_no_findings(tmp_path: Path) -> None:
    report = lint(project(tmp_path))
    assert report.findings == ()
    assert not report.failed()
    windows = {(e.data_type, str(e.event)): e.seconds for e in report.exposures}
    assert windows == {
        ("sessions", "crash"): 2.0, ("rbac", "crash"): 2.0,
        ("sessions", "total loss"): 600 + 120.0, ("rbac", "total loss"): 720.0,
        ("vectors", "total loss"): 6 * 3600 + 600.0,
    }


def test_the_runbook_schedule_cannot_meet_its_own_rpo(tmp_path: Path) -> None:
    report = lint(project(tmp_path, "runbook"))
    losses = {f.facts["source"]: f for f in report.findings if f.rule == "BDR-B001"}
    # the crontab found next to bdr.yaml is what runs; its hourly line is the one to change
    assert (losses["redis"].path.name, losses["redis"].line) == ("crontab", 9)
    assert (losses["qdrant"].path.name, losses["qdrant"].line) == ("bdr.yaml", 16)
    redis = losses["redis"]
    # hourly backups plus the estimated 5 minutes a backup takes: 1h 5m > the 1h sessions RPO
    assert redis.facts["window_seconds"] == 3600 + 300
    assert redis.facts["backup_duration_measured"] is False
    assert redis.message == ("backup-redis.sh `0 * * * *`: a total loss loses up to 1h 5m of Redis data, more than "
                             "the RPO of sessions (1h)")
    assert "estimated" in redis.impact
    assert "*/30 * * * *" in redis.fix
    assert losses["qdrant"].facts["window_seconds"] == 86400 + 300
    assert report.failed()


def test_bdr_yaml_schedule_without_a_crontab(tmp_path: Path) -> None:
    cwd = project(tmp_path, "runbook")
    (cwd / "crontab").rename(cwd / "jobs.txt")
    report = lint(cwd)
    redis = next(f for f in report.findings if f.rule == "BDR-B001" and f.facts["source"] == "redis")
    assert (redis.path.name, redis.line) == ("bdr.yaml", 15)
    assert "schedule.redis in bdr.yaml `0 * * * *`" in redis.message
    named = lint(cwd, crontabs=(Path("jobs.txt"),))
    redis = next(f for f in named.findings if f.rule == "BDR-B001" and f.facts["source"] == "redis")
    assert (redis.path.name, redis.line) == ("jobs.txt", 9)


def test_a_crontab_that_disagrees_with_bdr_yaml(tmp_path: Path) -> None:
    cwd = project(tmp_path)
    (cwd / "backups.crontab").write_text("0 2 * * * /srv/app/.venv/bin/bdr backup redis\n")
    report = lint(cwd)
    assert "BDR-B004" in rules(report)
    loss = next(f for f in report.findings if f.rule == "BDR-B001")
    assert (loss.path.name, loss.line) == ("backups.crontab", 1)
    assert loss.facts["interval_seconds"] == 86400


def test_backup_duration_option_and_setting(tmp_path: Path) -> None:
    cwd = project(tmp_path, schedule={"redis": "*/25 * * * *", "qdrant": "0 */6 * * *", "config": "0 */6 * * *"})
    assert rules(lint(cwd)) == []  # 25m + 2m (lint.backup_duration.redis) fits the 30m RPO
    report = lint(cwd, backup_durations={"redis": 6 * 60.0})
    loss = next(f for f in report.findings if f.rule == "BDR-B001")
    assert loss.facts["window_seconds"] == 25 * 60 + 6 * 60
    assert "given with --backup-duration" in loss.impact


def test_a_backup_slower_than_the_rpo(tmp_path: Path) -> None:
    report = lint(project(tmp_path), backup_durations={"redis": 45 * 60.0})
    loss = next(f for f in report.findings if f.rule == "BDR-B001")
    assert "make the backup faster" in loss.fix


@pytest.mark.parametrize(
    ("schedule", "rule", "key"),
    [
        ({"redis": "*/10 * * *", "qdrant": "0 */6 * * *", "config": "0 */6 * * *"}, "BDR-B003", "  redis:"),
        ({"rediss": "*/10 * * * *", "redis": "*/10 * * * *", "qdrant": "0 */6 * * *"}, "BDR-B005", "  rediss:"),
        ({"redis": "*/10 * * * *", "config": "0 */6 * * *"}, "BDR-B002", "schedule:"),
    ],
)
def test_schedule_mistakes(tmp_path: Path, schedule: dict[str, str], rule: str, key: str) -> None:
    cwd = project(tmp_path, schedule=schedule)
    report = lint(cwd)
    assert rule in rules(report)
    finding = next(f for f in report.findings if f.rule == rule)
    assert finding.path.name == "bdr.yaml" and finding.line is not None
    assert (cwd / "bdr.yaml").read_text().splitlines()[finding.line - 1].startswith(key)


def test_no_qdrant_schedule_names_the_vectors(tmp_path: Path) -> None:
    report = lint(project(tmp_path, schedule={"redis": "*/10 * * * *", "config": "0 */6 * * *"}))
    missing = next(f for f in report.findings if f.rule == "BDR-B002")
    assert "qdrant, which holds vectors" in missing.message
    assert "qdrant:" in missing.fix


def test_schedule_all_covers_every_source(tmp_path: Path) -> None:
    report = lint(project(tmp_path, schedule={"all": "*/10 * * * *"}))
    assert rules(report) == []


def test_freshness_alert_after_the_rpo(tmp_path: Path) -> None:
    report = lint(project(tmp_path, max_backup_age={"default": "24h"}))
    late = [f for f in report.findings if f.rule == "BDR-B006"]
    assert len(late) == 1
    assert "max_backup_age.default is 1d, longer than the RPO of sessions, rbac (30m)" in late[0].message
    assert "above the backup window of 12m" in late[0].fix


@pytest.mark.parametrize(
    ("retention", "rule", "words"),
    [
        ({"hourly": {"keep": "2d", "locations": ["local"]}, "daily": {"keep": "30d", "locations": ["local", "s3"]},
          "weekly": {"keep": "90d", "locations": ["s3"]}, "monthly": {"keep": "1y", "locations": ["s3"]}},
         "BDR-P001", "retention.hourly keeps 2d; the table says 7d"),
        ({"hourly": {"keep": "7d", "locations": ["local"]}, "daily": {"keep": "30d", "locations": ["local", "s3"]},
          "weekly": {"keep": "90d", "locations": ["s3"]}},
         "BDR-P002", "retention has no monthly rule"),
        ({"hourly": {"keep": "7d", "locations": ["local"]}, "daily": {"keep": "60d", "locations": ["local"]},
          "weekly": {"keep": "90d", "locations": ["s3"]}, "monthly": {"keep": "2y", "locations": ["s3"]}},
         "BDR-P003", "the table also says s3"),
    ],
)
def test_retention_against_the_table(tmp_path: Path, retention: dict[str, Any], rule: str, words: str) -> None:
    report = lint(project(tmp_path, retention=retention))
    assert rules(report) == [rule]
    assert words in report.findings[0].message
    assert report.findings[0].line is not None


def test_a_count_that_cuts_the_window_short(tmp_path: Path) -> None:
    retention = {"hourly": {"keep": "7d", "locations": ["local"]},
                 "daily": {"keep": "30d", "locations": ["local", "s3"], "count": 10},
                 "weekly": {"keep": "90d", "locations": ["s3"]}, "monthly": {"keep": "1y", "locations": ["s3"]}}
    report = lint(project(tmp_path, retention=retention))
    assert rules(report) == ["BDR-P001"]
    assert "retention.daily keeps 10 daily sets (10d); the table says 30d" in report.findings[0].message


def test_no_offsite_repository(tmp_path: Path) -> None:
    report = lint(project(tmp_path, remote=None))
    assert rules(report) == ["BDR-P004"]
    cwd = tmp_path / "with-cron"
    cwd.mkdir()
    project(cwd, remote=None)
    (cwd / "backups.crontab").write_text("*/10 * * * * bdr backup all --remote s3://bucket/prod\n")
    assert "BDR-P004" not in rules(lint(cwd))


def test_keep_in_a_cron_job_against_the_table(tmp_path: Path) -> None:
    cwd = project(tmp_path)
    (cwd / "backups.crontab").write_text(
        "*/10 * * * * bdr backup redis --keep 7\n"
        "0 */6 * * * bdr backup qdrant --keep 200\n"
        "0 */6 * * * bdr backup config\n"
    )
    report = lint(cwd)
    keep = [f for f in report.findings if f.rule == "BDR-P005"]
    assert [(f.line, f.facts["history_seconds"]) for f in keep] == [(1, 7 * 600.0)]
    assert "--keep 7 keeps the 7 newest hourly sets" in keep[0].message
    assert "--keep 1008" in keep[0].fix


def test_an_invalid_policy_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    cwd = project(tmp_path)
    (cwd / "bdr.yaml").write_text("repository: ./backups\ntargets:\n  rpo: {sessions: soon}\n")
    report = lint(cwd)
    assert rules(report)[0] == "BDR-P000"
    assert "targets.rpo.sessions: not a duration" in report.findings[0].message
    assert report.findings[0].line == 3


def test_invalid_yaml_points_at_the_line(tmp_path: Path) -> None:
    cwd = project(tmp_path)
    (cwd / "bdr.yaml").write_text("repository: ./backups\nschedule:\n  redis: [\n")
    finding = next(f for f in lint(cwd).findings if f.rule == "BDR-P000")
    assert finding.line == 4  # where the YAML parser gave up: the end of the file
    assert "invalid YAML at line 4" in finding.message


def test_ignore_from_the_policy_and_the_command_line(tmp_path: Path) -> None:
    cwd = project(tmp_path, remote=None, lint={"ignore": ["BDR-P004"], "backup_duration": {"redis": "2m"}})
    assert rules(lint(cwd)) == []
    cwd2 = tmp_path / "b"
    cwd2.mkdir()
    project(cwd2, remote=None)
    assert rules(lint(cwd2, ignore=("BDR-P004", "BDR-X999"))) == []
    assert any("BDR-X999" in n for n in lint(cwd2, ignore=("BDR-X999",)).notes)


def test_without_a_policy_the_schedule_is_unknown(tmp_path: Path) -> None:
    shutil.copy(DATA / "clean" / "redis.conf", tmp_path / "redis.conf")
    report = lint(tmp_path)
    assert report.findings == ()
    assert report.policy == "embedded defaults"
    assert any("no backup schedule known" in n for n in report.notes)


def test_a_test_instance_config_is_not_held_to_production_targets(tmp_path: Path) -> None:
    cwd = project(tmp_path)
    (cwd / "test").mkdir()
    (cwd / "test" / "redis.conf").write_text("appendonly no\nsave \"\"\n")
    policy = yaml.safe_load((cwd / "bdr.yaml").read_text())
    policy["redis"]["test"] = {"url": "redis://127.0.0.1:6380/0", "config_file": "./test/redis.conf"}
    (cwd / "bdr.yaml").write_text(yaml.safe_dump(policy))
    assert rules(lint(cwd)) == []
    # the same file as the production config is held to the targets
    policy["redis"]["production"]["config_file"] = "./test/redis.conf"
    policy["redis"]["default"] = "test"
    (cwd / "bdr.yaml").write_text(yaml.safe_dump(policy))
    assert "BDR-R001" not in rules(lint(cwd))  # 10-minute backups bound a crash without persistence


def test_a_scheduled_instance_must_exist_for_every_source_with_instances(tmp_path: Path) -> None:
    """``prometheus/main`` passes when bdr.yaml has that Prometheus; ``redis/cache`` without such a Redis does not."""
    base = yaml.safe_load((DATA / "clean" / "bdr.yaml").read_text())
    schedule = {**base.get("schedule", {}), "prometheus/main": "0 3 * * *", "redis/cache": "0 * * * *"}
    cwd = project(tmp_path, schedule=schedule, prometheus={"main": {"url": "http://127.0.0.1:9"}})
    unknown = [f for f in lint(cwd).findings if f.rule == "BDR-B005"]
    assert [f.message.split(":")[0] for f in unknown] == ["schedule.redis/cache"]
    assert "no redis instance 'cache' in bdr.yaml" in unknown[0].message
