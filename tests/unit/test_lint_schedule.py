"""Cron expressions, crontab files, and the longest gap between two backups."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from bdr.lint.schedule import CronError, cadence, parse_cron, parse_crontab

DATA = Path(__file__).parent.parent / "data" / "lint"
HOUR = 3600.0
DAY = 86400.0


def worst(*exprs: str) -> float:
    found = cadence([parse_cron(e) for e in exprs])
    assert found is not None
    return found.worst_gap


@pytest.mark.parametrize(
    ("expr", "gap"),
    [
        ("0 * * * *", HOUR),
        ("@hourly", HOUR),
        ("*/30 * * * *", 1800.0),
        ("*/7 * * * *", 60.0 * 7),            # ..., 49, 56, then 0 of the next hour
        ("*/45 * * * *", 60.0 * 45),          # :00 and :45 only
        ("0 2 * * *", DAY),
        ("@daily", DAY),
        ("15 */6 * * *", 6 * HOUR),
        ("0 9-17 * * *", 16 * HOUR),          # 17:00 -> 09:00
        ("0 2 * * 1-5", 3 * DAY),             # Friday 02:00 -> Monday 02:00
        ("0 2 * * mon-fri", 3 * DAY),
        ("0 2 * * 0", 7 * DAY),
        ("0 2 * * 7", 7 * DAY),               # 7 is Sunday too
        ("0 0 1 * 1", 7 * DAY),               # both day fields restricted: the 1st OR a Monday
        ("0 0 31 * *", 61 * DAY),             # Aug 31 -> Oct 31
        ("0 0 29 2 *", (366 + 3 * 365) * DAY),  # leap days only
        ("59/15 * * * *", HOUR),              # 59 only: no later minute in the step
        ("0-0 * * * *", HOUR),                # an equal range is its one value, not the whole cycle
        ("0 2 * * 6-7/1", 6 * DAY),           # Saturday and Sunday
    ],
)
def test_worst_case_intervals(expr: str, gap: float) -> None:
    assert worst(expr) == gap


def test_several_jobs_for_one_source_merge() -> None:
    assert worst("0 2 * * *", "0 * * * *") == HOUR
    assert worst("0 2 * * *", "0 14 * * *") == 12 * HOUR


def test_a_day_of_week_star_step_still_means_every_day() -> None:
    # cron treats a field starting with * as unrestricted for the day-of-month/day-of-week rule
    assert worst("0 0 1 * */1") == 30 * DAY + DAY  # only the 1st of each month: Jan 1 -> Feb 1 is 31 days


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 * * *", "has 4 fields"),
        ("61 * * * *", "minute 61 is out of range"),
        ("0 25 * * *", "hour 25 is out of range"),
        ("0 2 * * funday", "not a valid day of week"),
        ("*/0 * * * *", "bad step"),
        ("5-1 * * * *", "runs backwards"),
        ("@reboot", "only when the machine starts"),
    ],
)
def test_invalid_expressions(expr: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse_cron(expr)


@pytest.mark.parametrize(("expr", "first"), [
    ("0 2 * * 1-5", ["2024-01-05 02:00", "2024-01-08 02:00", "2024-01-09 02:00"]),    # Friday, then Monday
    ("0 0 13 * 5", ["2024-01-05 00:00", "2024-01-12 00:00", "2024-01-13 00:00"]),     # a Friday OR the 13th
    ("0 0 1 * */1", ["2024-02-01 00:00", "2024-03-01 00:00", "2024-04-01 00:00"]),    # */1 counts as *
    ("0 0 1 * 0-6", ["2024-01-05 00:00", "2024-01-06 00:00", "2024-01-07 00:00"]),    # 0-6 does not: every day
    ("0 0 * * 1/2", ["2024-01-05 00:00", "2024-01-07 00:00", "2024-01-08 00:00"]),    # 1,3,5,7: Sunday too
    ("30 9 29 2 *", ["2024-02-29 09:30", "2028-02-29 09:30", "2032-02-29 09:30"]),
])
def test_next_runs_follow_cron_rules(expr: str, first: list[str]) -> None:
    runs = parse_cron(expr).next_runs(datetime(2024, 1, 4, 12, 0))
    assert [next(runs).strftime("%Y-%m-%d %H:%M") for _ in first] == first


def test_croniter_extensions_cron_would_refuse() -> None:
    for expr in ("0 0 L * *", "0 0 * * 1#2", "0 0 ? * *", "0 0 15W * *", "H * * * *", "0 0 * * * 2030"):
        with pytest.raises(CronError):
            parse_cron(expr)


def test_an_expression_that_never_runs_has_no_cadence() -> None:
    assert cadence([parse_cron("0 0 30 2 *")]) is None


def test_the_runbook_crontab() -> None:
    entries, problems = parse_crontab(DATA / "runbook" / "crontab")
    assert problems == []
    assert [(e.source, e.cron, e.line, e.program, e.keep_days, e.offsite) for e in entries] == [
        ("redis", "0 2 * * *", 6, "backup-redis.sh", 30, False),
        ("redis", "0 * * * *", 9, "backup-redis.sh", 7, False),
        ("redis", "0 3 * * *", 12, "backup-redis.sh", 30, True),
    ]


def test_bdr_jobs_system_crontab_macros_and_api_calls(tmp_path: Path) -> None:
    text = """\
SHELL=/bin/sh
CRON_TZ=UTC
*/15 * * * * root cd /srv/app && /srv/app/.venv/bin/bdr --config /etc/bdr.yaml backup redis --keep 96 >/dev/null
@daily backup /usr/bin/python3 -m bdr.cli.main backup all --remote s3://bucket/prod
30 1 * * * curl -s -X POST http://localhost:6333/collections/documents/snapshots
0 4 * * * /usr/bin/find /tmp -mtime +7 -delete
0 5 * * * bdr backup redis --compress % mail -s done ops
"""
    entries, problems = parse_crontab(tmp_path / "backups.crontab", text)
    assert problems == []
    assert [(e.source, e.cron, e.line, e.program, e.keep_sets, e.offsite) for e in entries] == [
        ("redis", "*/15 * * * *", 3, "bdr backup redis", 96, False),
        ("redis", "@daily", 4, "bdr backup all", None, True),
        ("qdrant", "@daily", 4, "bdr backup all", None, True),
        ("config", "@daily", 4, "bdr backup all", None, True),
        ("qdrant", "30 1 * * *", 5, "Qdrant snapshot API", None, False),
        ("redis", "0 5 * * *", 7, "bdr backup redis", None, False),
    ]


def test_a_broken_backup_line_is_a_problem_with_its_line(tmp_path: Path) -> None:
    text = "0 * * * * echo hi\n0 */2 * * mon-sun7 bdr backup redis\n"
    entries, problems = parse_crontab(tmp_path / "x.crontab", text)
    assert entries == []
    assert [(p.line, "not a valid day of week" in p.detail) for p in problems] == [(2, True)]


# --- systemd timers ----------------------------------------------------------------------------


def timer_gap(*specs: str) -> float:
    from bdr.lint.systemd import parse_calendar

    found = cadence([parse_calendar(s) for s in specs])
    assert found is not None
    return found.worst_gap


@pytest.mark.parametrize(
    ("specs", "gap"),
    [
        (("hourly",), HOUR),
        (("daily",), DAY),
        (("*:0/15",), 900.0),
        (("*-*-* *:00,30:00",), 1800.0),
        (("Mon..Fri 02:00",), 3 * DAY),             # Friday to Monday
        (("Mon,Tue,Wed,Thu,Fri *-*-* 02:00:00", "Sat,Sun 06:00"), DAY + 4 * HOUR),
        (("*-*-01 04:00:00",), 31 * DAY),
        (("weekly",), 7 * DAY),
        (("*-*-* 01..05:05/10:00",), 19 * HOUR + 10 * 60),   # 05:55 to 01:05 the next day
    ],
)
def test_timer_calendars(specs: tuple[str, ...], gap: float) -> None:
    assert timer_gap(*specs) == gap


@pytest.mark.parametrize(("spec", "message"), [
    ("2025-*-* 02:00", "bound to a year"),
    ("*-*~01 02:00", "not supported"),
    ("Mon 25:00", "hour 25 is out of range"),
    ("daily Europe/Berlin", "time zone"),
])
def test_calendars_bdr_lint_cannot_judge(spec: str, message: str) -> None:
    from bdr.lint.systemd import parse_calendar

    with pytest.raises(CronError, match=message):
        parse_calendar(spec)


def test_a_timer_is_read_with_the_service_it_starts(tmp_path: Path) -> None:
    from bdr.lint.systemd import read_timer

    (tmp_path / "nightly.timer").write_text("[Timer]\n# every night\nOnCalendar=\nOnCalendar=*-*-* 02:00\n"
                                            "OnCalendar=Sat 12:00\nUnit=backup-job.service\n")
    (tmp_path / "backup-job.service").write_text(
        "[Service]\nType=oneshot\nExecStart=-/usr/local/bin/bdr --config /etc/bdr/bdr.yaml \\\n"
        "    backup redis --keep 30\nExecStart=/usr/local/bin/bdr backup qdrant --remote s3://b/p\n")
    found, problems = read_timer(tmp_path / "nightly.timer")
    assert problems == [] and found is not None
    assert found.persistent is False and found.line == 4
    assert [(b.source, b.keep_sets, b.offsite, b.program) for b in found.backups] == [
        ("redis", 30, False, "bdr backup redis"), ("qdrant", None, True, "bdr backup qdrant")]
    assert all(len(b.exprs) == 2 for b in found.backups)


def test_a_timer_without_its_service_or_schedule_is_a_problem(tmp_path: Path) -> None:
    from bdr.lint.systemd import read_timer

    (tmp_path / "lonely.timer").write_text("[Timer]\nOnCalendar=daily\n")
    assert read_timer(tmp_path / "lonely.timer")[1][0].detail.startswith("its service lonely.service is not next")
    (tmp_path / "never.timer").write_text("[Timer]\nPersistent=true\n")
    (tmp_path / "never.service").write_text("[Service]\nExecStart=/usr/bin/bdr backup config\n")
    found, problems = read_timer(tmp_path / "never.timer")
    assert found is None and "no OnCalendar=" in problems[0].detail
    (tmp_path / "other.timer").write_text("[Timer]\nOnCalendar=daily\n")
    (tmp_path / "other.service").write_text("[Service]\nExecStart=/usr/bin/logrotate /etc/logrotate.conf\n")
    assert read_timer(tmp_path / "other.timer") == (None, [])
