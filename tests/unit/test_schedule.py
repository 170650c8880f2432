"""The schedule of bdr.yaml as jobs, systemd calendars and unit text (no systemd needed here)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from bdr.config import parse_config
from bdr.errors import ConfigError
from bdr.lint.schedule import parse_cron
from bdr.lint.systemd import parse_calendar
from bdr.monitoring.status import expected_groups
from bdr.schedule.calendar import on_calendar
from bdr.schedule.jobs import backup_groups, jobs_for
from bdr.schedule.systemd import Invocation, exec_line, lock_span, service_unit, timer_unit

REDIS = {"production": {}, "cache": {"url": "redis://127.0.0.1:6390/0"},
         "test": {"url": "redis://127.0.0.1:6380/0", "backup": False}}


def config(schedule: dict[str, object], **more: object):  # type: ignore[no-untyped-def]
    return parse_config({"redis": REDIS, "remote": {"url": "s3://bucket/bdr"}, "schedule": schedule, **more})


def test_a_source_entry_backs_up_every_instance_but_restore_targets_and_own_entries() -> None:
    jobs = jobs_for(config({"redis": "*/30 * * * *", "redis/cache": "0 * * * *", "config": "0 2 * * *"}))
    assert [(j.unit, j.cron, j.args) for j in jobs] == [
        ("bdr-backup-redis-production", "*/30 * * * *", ("backup", "redis", "--instance", "production")),
        ("bdr-backup-redis-cache", "0 * * * *", ("backup", "redis", "--instance", "cache")),
        ("bdr-backup-config", "0 2 * * *", ("backup", "config")),
    ]
    assert [(j.source, j.instance) for j in jobs] == [("redis", "production"), ("redis", "cache"),
                                                       ("config", "config")]


def test_offsite_prune_verify_and_drill_jobs() -> None:
    jobs = jobs_for(config({"redis": "*/30 * * * *", "offsite": "0 3 * * *", "prune": "30 4 * * *",
                            "verify": {"cron": "0 5 * * *", "restore_test": True}, "drill": "0 6 1 * *"}))
    by_unit = {j.unit: j for j in jobs}
    assert by_unit["bdr-offsite-all"].args == ("backup", "all", "--also-remote", "s3://bucket/bdr")  # no local all
    assert by_unit["bdr-offsite-all"].offsite
    assert by_unit["bdr-prune"].args == ("prune",)
    assert by_unit["bdr-drill"].args == ("drill", "--live")
    verify = [j for j in jobs if j.kind == "verify"]
    assert [j.args for j in verify] == [
        ("verify", "latest", "--source", "redis", "--instance", "production", "--restore-test"),
        ("verify", "latest", "--source", "redis", "--instance", "cache", "--restore-test"),
        ("verify", "latest", "--source", "all", "--restore-test"),
    ]
    assert all(j.wait_lock is None for j in verify)  # verify takes no lock
    assert jobs_for(config({"drill": "0 6 1 * *"}), live_drill=False)[0].args == ("drill",)


def test_lock_wait_defaults_to_the_time_until_the_next_run_at_most_an_hour() -> None:
    jobs = jobs_for(config({"redis": "*/10 * * * *", "config": "0 2 * * *",
                            "prune": {"cron": "30 4 * * *", "wait_lock": "5m"}}))
    assert [(j.unit, j.wait_lock) for j in jobs] == [
        ("bdr-backup-redis-production", 600.0), ("bdr-backup-redis-cache", 600.0), ("bdr-backup-config", 3600.0),
        ("bdr-prune", 300.0)]
    assert [lock_span(s) for s in (600.0, 3600.0, 90.0)] == ["10m", "1h", "90s"]


@pytest.mark.parametrize(("schedule", "message"), [
    ({"rediss": "0 * * * *"}, "schedule.rediss: bdr does not know this job"),
    ({"redis/nope": "0 * * * *"}, "schedule.redis/nope: no redis instance 'nope' (known: production, cache, test)"),
    ({"redis/test": "0 * * * *"}, "schedule.redis/test: redis.test says backup: false"),
    ({"redis": "61 * * * *"}, "schedule.redis: minute 61 is out of range 0-59"),
])
def test_a_job_bdr_cannot_run_is_a_config_error_naming_the_entry(schedule: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        jobs_for(config(schedule))
    assert message in caught.value.message
    assert caught.value.exit_code == 3
    assert jobs_for(config(schedule), strict=False) == []  # what bdr status needs: no exception


def test_offsite_needs_a_remote() -> None:
    with pytest.raises(ConfigError, match=r"schedule\.offsite sends backups off-site: set remote\.url"):
        jobs_for(parse_config({"schedule": {"offsite": "0 3 * * *"}}))
    job = jobs_for(parse_config({"schedule": {"offsite/redis": {"cron": "0 3 * * *",
                                                                "remote": "s3://other/x", "compress": True}}}))[0]
    assert job.args == ("backup", "redis", "--instance", "production", "--compress", "--also-remote", "s3://other/x")


@pytest.mark.parametrize(("entry", "message"), [
    ({"cron": "0 * * * *", "every": "1h"}, "unknown key(s) in schedule.redis: every"),
    ({"cron": "0 * * * *", "restore_test": True}, "schedule.redis.restore_test is for verify entries"),
    ({"cron": "0 * * * *", "wait_lock": "soon"}, "schedule.redis.wait_lock: not a duration: 'soon'"),
    ({"cron": "0 * * * *", "remote": "s3://b/p"}, "schedule.redis.remote is for offsite entries"),
    ({"wait_lock": "5m"}, "schedule.redis needs a cron expression"),
])
def test_bad_schedule_options_are_refused_when_the_file_loads(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"schedule": {"redis": entry}})
    assert message in caught.value.message


def test_status_expects_every_scheduled_instance() -> None:
    cfg = config({"redis": "*/30 * * * *", "offsite": "0 3 * * *", "prune": "0 4 * * *"},
                 max_backup_age={"qdrant/archive": "7d"})
    assert backup_groups(cfg) == [("redis", "production"), ("redis", "cache"), ("all", "system")]
    assert [(e.source, e.instance) for e in expected_groups(cfg)] == [
        ("redis", "production"), ("redis", "cache"), ("all", "system"), ("qdrant", "archive")]
    assert [(e.source, e.instance) for e in expected_groups(cfg, "redis", "test")] == [("redis", "test")]


@pytest.mark.parametrize("cron", [
    "*/30 * * * *", "0 */12 * * *", "0 2 * * *", "5-59/10 1-5 * * *", "0 2 1,15 * 1-5", "0 2 * * 1-5",
    "@monthly", "17 3 */2 * *", "0 0 * 2 0", "0 4 1 * *", "@hourly", "0 0 29 2 *", "15 14 1 * 7",
])
def test_the_calendar_fires_on_exactly_the_minutes_cron_does(cron: str) -> None:
    expr = parse_cron(cron)
    lines = [parse_calendar(spec) for spec in on_calendar(cron)]
    day = date(2024, 1, 1)
    for _ in range(4 * 366):  # four years: leap days, every weekday of every date
        cron_minutes = set(expr.day_minutes) if expr.runs_on(day) else set()
        timer_minutes = {m for line in lines if line.runs_on(day) for m in line.day_minutes}
        assert cron_minutes == timer_minutes, (cron, day)
        day += timedelta(days=1)


def test_unit_text(tmp_path: Path) -> None:
    cfg = config({"redis": "*/30 * * * *"}, metrics_textfile=str(tmp_path / "bdr.prom"))
    job = jobs_for(cfg)[0]
    how = Invocation(bdr=("/usr/local/bin/bdr",), config=Path("/etc/bdr/my policy.yaml"), workdir=Path("/etc/bdr"),
                     metrics=True, user="bdr")
    service = service_unit(job, how, "/etc/bdr/bdr.yaml").text
    assert service.splitlines()[0] == "# generated by `bdr schedule`"
    assert "Type=oneshot\n" in service and "User=bdr\n" in service
    assert ('ExecStart=/usr/local/bin/bdr --config "/etc/bdr/my policy.yaml" --wait-lock 30m backup redis '
            "--instance production\n") in service
    assert 'ExecStopPost=/usr/local/bin/bdr --config "/etc/bdr/my policy.yaml" metrics write\n' in service
    assert "EnvironmentFile=-/etc/bdr/bdr.env" in service
    timer = timer_unit(job, "/etc/bdr/bdr.yaml").text
    assert "OnCalendar=*-*-* *:00,30:00\nPersistent=true\nUnit=bdr-backup-redis-production.service\n" in timer
    assert "WantedBy=timers.target" in timer
    assert exec_line(["a%b", "$HOME", 'say "hi"']) == 'a%%b $$HOME "say \\"hi\\""'
