"""Calendar retention over a simulated year: exactly what the written retention table says is kept.

The clock is passed in: a year of hourly backups (local) and of 02:00 dailies (S3) is
decided at one instant, and the test checks the counts per rule and the exact ids at the
edges of every window.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bdr.config import DEFAULT_RETENTION, RetentionRule, parse_config
from bdr.errors import ConfigError
from bdr.repository import BackupSet
from bdr.repository.retention import (
    Action,
    RetentionDecision,
    RetentionPolicy,
    decide,
    describe_rule,
)
from tests.backup_sets import make_set

NOW = datetime(2026, 1, 24, 2, 5, tzinfo=UTC)  # a Saturday, 5 minutes after the 02:00 backup
POLICY = RetentionPolicy(DEFAULT_RETENTION)


def hourly_year(location: str = "local") -> list[BackupSet]:
    """One set per hour for a year, each finished 30 s past the hour, the newest at 02:00:30 today."""
    newest = datetime(2026, 1, 24, 2, 0, 30, tzinfo=UTC)
    return [make_set(newest - timedelta(hours=h), location=location) for h in range(365 * 24)]


def daily_year(location: str = "s3") -> list[BackupSet]:
    """One set a day at 02:00:30 for a year (the daily off-site upload)."""
    newest = datetime(2026, 1, 24, 2, 0, 30, tzinfo=UTC)
    return [make_set(newest - timedelta(days=d), location=location) for d in range(365)]


def by_time(decisions: list[RetentionDecision]) -> dict[str, RetentionDecision]:
    return {d.backup.manifest.finished_at[:16]: d for d in decisions}


def rule_counts(decisions: list[RetentionDecision]) -> Counter[str]:
    return Counter(reason.split(" ", 1)[0] for d in decisions for reason in d.reasons)


def test_local_keeps_168_hourly_and_30_daily_sets() -> None:
    decisions = decide(hourly_year("local"), POLICY, NOW)
    counts = rule_counts(decisions)
    assert counts["hourly"] == 7 * 24
    assert counts["daily"] == 30
    assert "weekly" not in counts and "monthly" not in counts  # those rules are for s3 only
    kept = [d for d in decisions if d.keep]
    # 168 hourly + the 23:00 sets of the 22 days (Dec 26 .. Jan 16) before the hourly window
    assert len(kept) == 168 + 22

    at = by_time(decisions)
    assert at["2026-01-24T02:00"].reasons == (
        "newest good set", "hourly 2026-01-24 02:00 (newest of that hour)", "daily 2026-01-24 (newest of that day)",
    )
    assert at["2026-01-17T03:00"].keep  # oldest of the 168 hours
    assert not at["2026-01-17T02:00"].keep
    assert at["2026-01-16T23:00"].reasons == ("daily 2026-01-16 (newest of that day)",)
    assert not at["2026-01-16T22:00"].keep
    assert at["2025-12-26T23:00"].keep  # the 30th day, today included
    assert not at["2025-12-25T23:00"].keep
    assert at["2025-12-25T23:00"].note == "no rule keeps it"


def test_s3_keeps_30_daily_13_weekly_12_monthly_sets() -> None:
    decisions = decide(daily_year("s3"), POLICY, NOW)
    counts = rule_counts(decisions)
    assert counts["daily"] == 30
    assert counts["weekly"] == 13  # 90 days = 12.9 ISO weeks, rounded up
    assert counts["monthly"] == 12
    assert "hourly" not in counts
    at = by_time(decisions)
    # daily window: Dec 26 .. Jan 24
    assert at["2025-12-26T02:00"].reasons == ("daily 2025-12-26 (newest of that day)",)
    assert not at["2025-12-25T02:00"].keep
    # weekly: the newest set of the ISO week is its Sunday's; 13 weeks back from the week of Jan 19-25
    assert at["2025-11-02T02:00"].reasons == ("weekly 2025-W44 (newest of that ISO week)",)
    assert not at["2025-10-26T02:00"].keep
    assert "weekly 2026-W04 (newest of that ISO week)" in at["2026-01-24T02:00"].reasons
    # monthly: Feb 2025 .. Jan 2026, the newest (last) day of each month
    assert at["2025-02-28T02:00"].reasons == ("monthly 2025-02 (newest of that month)",)
    assert not at["2025-01-31T02:00"].keep
    assert at["2025-11-30T02:00"].reasons == (
        "weekly 2025-W48 (newest of that ISO week)", "monthly 2025-11 (newest of that month)",
    )
    # 30 dailies, 8 weeklies before the daily window, 9 month-ends before the weekly window
    assert sum(d.keep for d in decisions) == 30 + 8 + 9


def test_a_rule_applies_only_at_its_locations() -> None:
    sets = daily_year("local")
    counts = rule_counts(decide(sets, POLICY, NOW))
    assert set(counts) == {"newest", "hourly", "daily"}
    assert counts["hourly"] == 7  # one 02:00 set in each of the 7 days' hours it falls in


def test_empty_periods_use_up_the_window_but_the_newest_set_stays() -> None:
    """Backups stopped 40 days ago: the daily window moved on; only the newest good set remains."""
    stopped = NOW - timedelta(days=40)
    sets = [make_set(stopped - timedelta(days=d), location="local") for d in range(10)]
    decisions = decide(sets, POLICY, NOW)
    assert [d.reasons for d in decisions if d.keep] == [("newest good set",)]


def test_count_keeps_the_n_most_recent_periods_that_hold_a_set() -> None:
    """restic --keep-daily 3: days with sets, however long ago."""
    stopped = NOW - timedelta(days=40)
    sets = [make_set(stopped - timedelta(days=d, hours=h), location="local") for d in range(10) for h in (0, 1)]
    policy = RetentionPolicy((RetentionRule("daily", 0.0, ("local",), count=3),))
    kept = [d for d in decide(sets, policy, NOW) if d.keep]
    assert len(kept) == 3
    assert [d.backup.created for d in kept] == [stopped - timedelta(days=d) for d in range(3)]


def test_count_and_window_must_both_hold() -> None:
    sets = [make_set(NOW - timedelta(days=d), location="local") for d in range(20)]
    policy = RetentionPolicy((RetentionRule("daily", 5 * 86400.0, ("local",), count=10),))
    assert sum(d.keep for d in decide(sets, policy, NOW)) == 5
    policy = RetentionPolicy((RetentionRule("daily", 30 * 86400.0, ("local",), count=4),))
    assert sum(d.keep for d in decide(sets, policy, NOW)) == 4


def test_keep_last_and_within() -> None:
    sets = [make_set(NOW - timedelta(hours=h), location="local") for h in range(10)]
    decisions = decide(sets, RetentionPolicy.keep_last(3), NOW)
    assert [d.reasons for d in decisions if d.keep] == [("newest good set", "keep-last 3"), ("keep-last 3",),
                                                        ("keep-last 3",)]
    policy = RetentionPolicy((RetentionRule("within", 4.5 * 3600, ("local",)),))
    assert sum(d.keep for d in decide(sets, policy, NOW)) == 5


def test_yearly() -> None:
    sets = [make_set(datetime(year, 6, 1, tzinfo=UTC), location="s3") for year in range(2018, 2026)]
    policy = RetentionPolicy((RetentionRule("yearly", 3 * 365 * 86400.0, ("s3",)),))
    decisions = decide(sets, policy, NOW)
    assert [d.backup.created.year for d in decisions if d.keep] == [2025, 2024]  # years 2026, 2025, 2024
    policy = RetentionPolicy((RetentionRule("yearly", 0.0, ("s3",), count=3),))
    assert [d.backup.created.year for d in decide(sets, policy, NOW) if d.keep] == [2025, 2024, 2023]


def test_invariants_newest_good_newest_verified_being_read() -> None:
    sets = [make_set(NOW - timedelta(days=d), location="s3") for d in range(60, 70)]
    verified = make_set(NOW - timedelta(days=80), location="s3", verified=True, ident="redis-verified")
    read = make_set(NOW - timedelta(days=90), location="s3", ident="redis-read")
    failed = make_set(NOW - timedelta(days=1), location="s3", verified=False, ident="redis-failed")
    policy = RetentionPolicy((RetentionRule("daily", 7 * 86400.0, ("s3",)),))
    decisions = {d.id: d for d in decide([*sets, verified, read, failed], policy, NOW, being_read={"redis-read"})}
    assert decisions[sets[0].id].reasons == ("newest good set",)
    assert decisions["redis-verified"].reasons == ("newest verified set (verified 2025-11-05)",)
    assert decisions["redis-read"].reasons == ("being read by a restore",)
    assert decisions["redis-failed"].action is Action.DELETE  # inside the daily window, but known bad
    assert decisions["redis-failed"].note == "its last verification failed"
    assert sum(d.keep for d in decisions.values()) == 3


def test_safety_sets_have_their_own_rule_and_never_count_as_newest() -> None:
    regular = make_set(NOW - timedelta(days=20), location="local")
    young = make_set(NOW - timedelta(days=3), location="local", tags=("safety",))
    old = make_set(NOW - timedelta(days=8), location="local", tags=("safety",))
    decisions = {d.id: d for d in decide([regular, young, old], POLICY, NOW)}
    assert decisions[regular.id].reasons[0] == "newest good set"
    assert decisions[young.id].reasons == ("safety backup younger than 7d",)
    assert decisions[old.id].note == "safety backup older than 7d"
    assert not decisions[old.id].keep


def test_sets_are_grouped_per_source_and_instance() -> None:
    sets = [
        make_set(NOW - timedelta(days=50), "redis", "production", location="s3"),
        make_set(NOW - timedelta(days=51), "redis", "production", location="s3"),
        make_set(NOW - timedelta(days=52), "redis", "test", location="s3"),
        make_set(NOW - timedelta(days=53), "qdrant", "production", location="s3"),
    ]
    policy = RetentionPolicy((RetentionRule("daily", 7 * 86400.0, ("s3",)),))
    kept = {d.id: d.reasons for d in decide(sets, policy, NOW) if d.keep}
    assert set(kept) == {sets[0].id, sets[2].id, sets[3].id}


def test_a_kept_system_set_keeps_its_members() -> None:
    member = make_set(NOW - timedelta(days=100), "redis", location="local", ident="redis-member")
    newer = make_set(NOW - timedelta(days=1), "redis", location="local")
    parent = make_set(NOW - timedelta(days=100), "all", "system", location="local", children=("redis-member",),
                      ident="all-parent")
    decisions = {d.id: d for d in decide([member, newer, parent], POLICY, NOW)}
    assert decisions["all-parent"].reasons == ("newest good set",)
    assert decisions["redis-member"].reasons == ("member of system set all-parent",)
    newer_parent = make_set(NOW, "all", "system", location="local", ident="all-newer")
    decisions = {d.id: d for d in decide([member, newer, parent, newer_parent], POLICY, NOW)}
    assert not decisions["all-parent"].keep and not decisions["redis-member"].keep


def test_decisions_are_grouped_and_newest_first() -> None:
    sets = [make_set(NOW - timedelta(hours=h), src, location="local") for h in range(3) for src in ("redis", "config")]
    decisions = decide(sets, POLICY, NOW)
    assert [d.backup.source for d in decisions] == ["config"] * 3 + ["redis"] * 3
    assert [d.backup.created for d in decisions[:3]] == sorted((d.backup.created for d in decisions[:3]), reverse=True)


def test_the_same_set_twice_is_a_programming_error() -> None:
    one = make_set(NOW, location="local")
    with pytest.raises(ValueError, match="listed twice"):
        decide([one, one], POLICY, NOW)


def test_naive_now_is_taken_as_utc() -> None:
    sets = hourly_year("local")[:200]
    assert decide(sets, POLICY, NOW.replace(tzinfo=None)) == decide(sets, POLICY, NOW)


def test_rules_describe_themselves() -> None:
    assert [describe_rule(r) for r in DEFAULT_RETENTION] == [
        "hourly: newest set of each of the last 168 hours",
        "daily: newest set of each of the last 30 days",
        "weekly: newest set of each of the last 13 ISO weeks",
        "monthly: newest set of each of the last 12 months",
    ]
    assert describe_rule(RetentionRule("daily", 0.0, ("local",), count=7)) == \
        "daily: newest set of each day, at most 7 days that hold a set"


def test_policy_from_config() -> None:
    config = parse_config({"retention": {
        "daily": {"keep": "14d", "locations": ["local", "s3"]},
        "last": {"count": 3, "locations": ["local"]},
        "safety": {"keep": "3d"},
    }})
    policy = RetentionPolicy.from_config(config)
    assert [r.kind for r in policy.rules] == ["daily", "last"]
    assert policy.safety_keep == 3 * 86400
    assert policy.covers("s3") and [r.kind for r in policy.rules_at("s3")] == ["daily"]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"fortnightly": {"keep": "14d"}}, "unknown key(s) in retention: fortnightly"),
        ({"daily": {"keep": "soon"}}, "retention.daily.keep: not a duration"),
        ({"daily": {"keep": "7d", "locations": ["tape"]}},
         "retention.daily.locations[0]: unknown location 'tape' (known: local, s3)"),
        ({"daily": {"keep": "7d", "count": 0}}, "retention.daily.count must be at least 1, got 0"),
        ({"last": {"keep": "7d"}}, "retention.last needs count"),
        ({"daily": {}}, "retention.daily needs keep"),
        ({"daily": {"kep": "7d"}}, "unknown key(s) in retention.daily: kep"),
    ],
)
def test_retention_config_mistakes(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"retention": section})
    assert message in raised.value.message
