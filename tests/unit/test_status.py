"""Freshness and the 3-2-1 rule, computed from repository views with a clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bdr.config import parse_config
from bdr.errors import CheckFailed
from bdr.monitoring.status import (
    Expectation,
    Health,
    RepositoryView,
    check,
    evaluate,
    expected_groups,
    fingerprint,
)
from bdr.repository import BackupSet
from tests.backup_sets import make_manifest, make_set

NOW = datetime(2026, 1, 24, 12, 0, tzinfo=UTC)
DAY = 86400.0
REDIS = Expectation("redis", "production", DAY)


def view(url: str, *sets: BackupSet, medium: str | None = None, error: str | None = None) -> RepositoryView:
    location = "s3" if url.startswith("s3://") else "local"
    return RepositoryView(url, location, medium or (f"s3:{url}" if location == "s3" else "disk:1"),
                          location == "s3", sets, error)


def ago(hours: float, location: str = "local", **kwargs: object) -> BackupSet:
    return make_set(NOW - timedelta(hours=hours), location=location, **kwargs)  # type: ignore[arg-type]


def test_local_and_offsite_fresh_backups_satisfy_3_2_1() -> None:
    report = evaluate([view("/backups", ago(1), ago(2)), view("s3://bucket/bdr", ago(10, "s3"))], [REDIS], NOW)
    group = report.group("redis", "production")
    assert group is not None and group.health is Health.OK
    assert group.newest is not None and group.newest.age_seconds == 3600
    assert (group.rule_321.copies, group.rule_321.media, group.rule_321.offsite) == (3, 2, 1)
    assert group.rule_321.ok and group.rule_321.reason == "3 copies (live data + local, s3) on 2 media, 1 off-site"
    assert [(c.location, c.age_seconds) for c in group.holdings] == [("local", 3600), ("s3", 36000)]
    assert dict(group.sets_by_location) == {"local": 2, "s3": 1}
    assert report.fresh and report.rule_321_ok
    check(report, require_321=True)


def test_two_directories_on_one_disk_are_one_medium_and_not_offsite() -> None:
    report = evaluate([view("/backups", ago(1)), view("/mnt/second", ago(1))], [REDIS], NOW)
    rule = report.sources[0].rule_321
    assert (rule.copies, rule.media, rule.offsite, rule.ok) == (3, 1, 0, False)
    assert rule.reason == "1 of 2 media (all backups on one file system); no off-site backup fresher than 24h"
    check(report)  # freshness holds: only --require-321 fails on this
    with pytest.raises(CheckFailed, match="3-2-1 rule broken: 1 of 2 media") as raised:
        check(report, require_321=True)
    assert raised.value.exit_code == 1


def test_a_second_disk_gives_two_media_but_still_no_offsite_copy() -> None:
    report = evaluate([view("/backups", ago(1)), view("/mnt/usb", ago(1), medium="disk:2")], [REDIS], NOW)
    rule = report.sources[0].rule_321
    assert (rule.media, rule.ok, rule.reason) == (2, False, "no off-site backup fresher than 24h")


def test_a_stale_offsite_copy_breaks_3_2_1_but_not_freshness() -> None:
    report = evaluate([view("/backups", ago(1)), view("s3://b", ago(30, "s3"))], [REDIS], NOW)
    group = report.sources[0]
    assert group.health is Health.OK
    assert not group.rule_321.ok
    assert group.rule_321.reason.startswith("2 of 3 copies (live data + 1 backup(s) fresher than 24h)")


def test_stale_and_missing_backups_fail_the_check_with_one_line() -> None:
    qdrant = Expectation("qdrant", "production", DAY)
    report = evaluate([view("/backups", ago(25))], [REDIS, qdrant], NOW)
    by = {(s.source, s.instance): s for s in report.sources}
    assert by["redis", "production"].health is Health.STALE
    assert by["qdrant", "production"].health is Health.MISSING
    assert not report.fresh
    assert report.problems == (
        "qdrant/production: no good backup in any repository",
        "redis/production: newest backup redis-20260123T110000Z-" + by["redis", "production"].newest.backup.id[-6:]  # type: ignore[union-attr]
        + " is 1d1h old, more than 24h",
    )
    with pytest.raises(CheckFailed) as raised:
        check(report)
    assert raised.value.message.startswith("qdrant/production: no good backup in any repository (and 1 more)")
    assert "\n" not in raised.value.message


def test_safety_and_failed_sets_are_not_backups_of_the_data() -> None:
    sets = (ago(1, tags=("safety",)), ago(2, verified=False), ago(30))
    group = evaluate([view("/backups", *sets)], [REDIS], NOW).sources[0]
    assert group.health is Health.STALE
    assert group.newest is not None and group.newest.backup.id == sets[2].id
    assert dict(group.sets_by_location) == {"local": 2}  # the failed set is listed, the safety set is not


def test_newest_verified_is_reported() -> None:
    sets = (ago(1), ago(5, verified=True, verified_at=NOW - timedelta(hours=4)), ago(9, verified=True))
    group = evaluate([view("/backups", *sets)], [REDIS], NOW).sources[0]
    assert group.newest_verified is not None and group.newest_verified.backup.id == sets[1].id


def test_the_same_backup_in_two_repositories_is_one_backup_with_two_copies() -> None:
    local = ago(2)
    same_id = BackupSet(local.manifest, "s3://b", "s3", None)
    same_data = make_set(NOW - timedelta(hours=3), location="s3", data=local.id.encode(), ident="redis-other")
    report = evaluate([view("/backups", local), view("s3://b", same_id), view("s3://c", same_data)], [REDIS], NOW)
    newest = report.sources[0].newest
    assert newest is not None and newest.copies == ("/backups", "s3://b", "s3://c")
    assert fingerprint(local.manifest) == fingerprint(same_data.manifest)


def test_system_sets_are_identified_by_their_members_not_by_empty_files() -> None:
    one = make_manifest(NOW, "all", "system", children=("redis-a", "qdrant-a"))
    other = make_manifest(NOW, "all", "system", children=("redis-b", "qdrant-b"), ident="all-other")
    one = type(one)(**{**one.to_dict(), "files": (), "objects": ()})
    other = type(other)(**{**other.to_dict(), "files": (), "objects": ()})
    assert fingerprint(one) != fingerprint(other)
    assert fingerprint(type(one)(**{**one.to_dict(), "children": ()})) is None


def test_groups_found_but_not_expected_are_shown_not_checked() -> None:
    report = evaluate([view("/backups", ago(1), ago(400, instance="test"))], [REDIS], NOW)
    test = report.group("redis", "test")
    assert test is not None and test.health is Health.UNCHECKED and not test.expected
    assert report.fresh
    check(report)


def test_an_unreadable_repository_is_reported_and_counts_for_nothing() -> None:
    views = [view("/backups", ago(1)), view("s3://b", error="S3 refused access to bucket b")]
    report = evaluate(views, [REDIS], NOW)
    rule = report.sources[0].rule_321
    assert not rule.ok and rule.reason.endswith("cannot read s3://b")
    assert "repository s3://b cannot be read: S3 refused access to bucket b" in report.problems


def test_only_restricts_the_report() -> None:
    views = [view("/backups", ago(1), ago(1, source="qdrant"))]
    report = evaluate(views, [REDIS], NOW, only=("redis", None))
    assert [s.source for s in report.sources] == ["redis"]


def test_future_sets_count_as_fresh() -> None:
    group = evaluate([view("/backups", ago(-0.5))], [REDIS], NOW).sources[0]
    assert group.health is Health.OK and group.newest is not None and group.newest.age_seconds == 0


def test_expected_groups_follow_the_schedule_and_max_backup_age() -> None:
    config = parse_config({"max_backup_age": {"qdrant": "26h", "redis/sessions": "2h"}})
    assert expected_groups(config) == [
        Expectation("redis", "production", DAY),
        Expectation("qdrant", "production", 26 * 3600.0),
        Expectation("config", "config", DAY),
        Expectation("redis", "sessions", 2 * 3600.0),
    ]
    assert expected_groups(config, "all") == [Expectation("all", "system", DAY)]
    assert expected_groups(config, "redis", "sessions") == [Expectation("redis", "sessions", 7200.0)]


def test_json_shape() -> None:
    report = evaluate([view("/backups", ago(1))], [REDIS], NOW)
    data = report.to_dict()
    assert data["ok"] is True and data["rule_321_ok"] is False
    assert data["repositories"] == [{"url": "/backups", "location": "local", "medium": "disk:1", "offsite": False,
                                     "sets": 1, "error": None}]
    source = data["sources"][0]
    assert source["health"] == "ok" and source["newest"]["age_seconds"] == 3600
    assert source["rule_321"] == {"ok": False, "copies": 2, "media": 1, "offsite": 0,
                                  "reason": "2 of 3 copies (live data + 1 backup(s) fresher than 24h); 1 of 2 media "
                                            "(all backups on one file system); no off-site backup fresher than 24h"}
