"""Alert rules derived from the policy (promtool runs them in tests/integration/test_alerts_promtool.py)."""

from __future__ import annotations

from importlib import resources

from bdr.config import Config, parse_config
from bdr.monitoring.alerts import alert_rules, render_rules


def rules_of(config: Config) -> list[dict[str, object]]:
    groups = alert_rules(config)["groups"]
    assert [g["name"] for g in groups] == ["bdr-backups"]
    rules: list[dict[str, object]] = groups[0]["rules"]
    return rules


def test_the_default_policy_gives_the_runbooks_alert() -> None:
    rules = rules_of(Config())
    assert [r["alert"] for r in rules] == [
        "BackupTooOld", *["BackupNeverReported"] * 3, "BackupFailed", "BackupVerificationStale",
        "BackupVerificationFailed", "BackupThreeTwoOneBroken", "BackupRepositoryUnreachable", "RestoreInterrupted",
        "DrillTargetBreached",
    ]
    assert rules[0]["expr"] == "time() - backup_last_success_timestamp > 86400"
    assert rules[5]["expr"] == "time() - backup_last_verify_timestamp > 604800"


def test_a_job_that_never_reported_is_an_absent_series_of_every_scheduled_instance() -> None:
    config = parse_config({"redis": {"production": {}, "cache": {"url": "redis://127.0.0.1:6390/0"},
                                     "test": {"url": "redis://127.0.0.1:6380/0", "backup": False}},
                           "schedule": {"redis": "*/30 * * * *"}, "max_backup_age": {"redis/cache": "2h"}})
    absent = [r for r in rules_of(config) if r["alert"] == "BackupNeverReported"]
    assert [(r["expr"], r["for"]) for r in absent] == [
        ('absent(backup_last_success_timestamp{source="redis",instance="production"})', "24h"),
        ('absent(backup_last_success_timestamp{source="redis",instance="cache"})', "2h"),
    ]
    assert absent[1]["labels"] == {"severity": "critical", "source": "redis", "instance": "cache"}


def test_each_group_is_judged_by_exactly_one_threshold() -> None:
    config = parse_config({"max_backup_age": {"default": "12h", "qdrant": "26h", "redis/sessions": "2h"}})
    too_old = [r for r in rules_of(config) if r["alert"] == "BackupTooOld"]
    assert [(r["labels"], r["expr"]) for r in too_old] == [
        ({"severity": "critical", "policy": "max_backup_age.default"},
         "(time() - backup_last_success_timestamp > 43200) "
         'unless on(source, instance) backup_last_success_timestamp{source="qdrant"} '
         'unless on(source, instance) backup_last_success_timestamp{source="redis",instance="sessions"}'),
        ({"severity": "critical", "policy": "max_backup_age.qdrant"},
         'time() - backup_last_success_timestamp{source="qdrant"} > 93600'),
        ({"severity": "critical", "policy": "max_backup_age.redis/sessions"},
         'time() - backup_last_success_timestamp{source="redis",instance="sessions"} > 7200'),
    ]


def test_a_source_rule_leaves_out_its_instance_overrides() -> None:
    config = parse_config({"max_backup_age": {"redis": "2h", "redis/archive": "7d"}})
    exprs = [r["expr"] for r in rules_of(config) if r["alert"] == "BackupTooOld"]
    assert exprs[1] == ('(time() - backup_last_success_timestamp{source="redis"} > 7200) unless on(source, instance) '
                        'backup_last_success_timestamp{source="redis",instance="archive"}')


def test_the_bundled_template_is_the_default_policy_rendered() -> None:
    """bdr/data/alerts.yml ships with the package; regenerate it with `bdr alerts -o bdr/data/alerts.yml`."""
    bundled = resources.files("bdr").joinpath("data/alerts.yml").read_text()
    assert bundled == render_rules(Config())
