"""Cron expressions, crontab files, and the longest gap between two backups."""

from __future__ import annotations

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
