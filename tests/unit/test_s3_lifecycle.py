"""The lifecycle policy derived from bdr.yaml, and how drift from it is found (pure: no bucket)."""

from __future__ import annotations

from typing import Any

import pytest

from bdr.config import RemoteSettings
from bdr.storage.lifecycle import (
    ABORT_UPLOADS_AFTER_DAYS,
    LifecyclePolicy,
    RuleShape,
    Tier,
    compare,
    foreign_overlaps,
    merged,
    object_tier,
    parse_restore_header,
    set_of,
)


def by_id(rules: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["ID"]: r for r in rules}


@pytest.mark.parametrize(
    ("key", "tier"),
    [
        ("redis/redis-20250101T000000Z-abc123/manifest.json", Tier.INDEX),
        ("redis/redis-20250101T000000Z-abc123/verify.json", Tier.INDEX),
        ("redis/redis-20250101T000000Z-abc123/dump.rdb", Tier.DATA),
        ("redis/redis-20250101T000000Z-abc123/appendonlydir/appendonly.aof.1.incr.aof", Tier.DATA),
        ("locks/repository.lock", None),
        ("locks/read-x-1-ab.json", None),
    ],
)
def test_object_tiers(key: str, tier: Tier | None) -> None:
    assert object_tier(key) is tier


def test_set_of_a_key() -> None:
    assert set_of("qdrant/qdrant-20250101T000000Z-abc123/data.tar.zst") == "qdrant-20250101T000000Z-abc123"


def test_default_policy_archives_after_90_days_and_expires_index_before_data() -> None:
    rules = by_id(LifecyclePolicy.from_settings(RemoteSettings(), "/prod/").rules())
    assert set(rules) == {"bdr:prod:archive", "bdr:prod:expire-index", "bdr:prod:expire-data",
                          "bdr:prod:abort-uploads"}
    data_filter = {"And": {"Prefix": "prod/", "Tags": [{"Key": "bdr-tier", "Value": "data"}]}}
    assert rules["bdr:prod:archive"]["Filter"] == data_filter
    assert rules["bdr:prod:archive"]["Transitions"] == [{"Days": 90, "StorageClass": "GLACIER"}]
    assert rules["bdr:prod:expire-index"]["Expiration"] == {"Days": 365}
    assert rules["bdr:prod:expire-data"]["Expiration"] == {"Days": 366}
    assert rules["bdr:prod:abort-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": RemoteSettings().abort_uploads_after_days}
    assert rules["bdr:prod:abort-uploads"]["Filter"] == {"Prefix": "prod/"}  # every upload of the repository


def test_uploads_of_killed_runs_are_aborted_after_a_day_by_default() -> None:
    rule = by_id(LifecyclePolicy(prefix="prod").rules())["bdr:prod:abort-uploads"]
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": ABORT_UPLOADS_AFTER_DAYS}
    assert ABORT_UPLOADS_AFTER_DAYS == 1
    three = by_id(LifecyclePolicy.from_settings(RemoteSettings(abort_uploads_after_days=3), "prod").rules())
    assert three["bdr:prod:abort-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 3}


def test_bdr_yaml_defaults_to_the_one_day_abort_rule() -> None:
    assert RemoteSettings().abort_uploads_after_days == ABORT_UPLOADS_AFTER_DAYS


def test_a_missing_or_changed_abort_rule_is_drift() -> None:
    policy = LifecyclePolicy(prefix="prod")
    rules = policy.rules()
    without = [r for r in rules if r["ID"] != "bdr:prod:abort-uploads"]
    assert compare(without, policy) == [
        "rule bdr:prod:abort-uploads is missing: enabled, prefix 'prod/': abort uploads after 1 days"]
    slower = [dict(r, AbortIncompleteMultipartUpload={"DaysAfterInitiation": 30})
              if r["ID"] == "bdr:prod:abort-uploads" else r for r in rules]
    [difference] = compare(slower, policy)
    assert difference.startswith("rule bdr:prod:abort-uploads differs: bucket has enabled, prefix 'prod/': "
                                 "abort uploads after 30 days; policy wants")
    assert merged(without, policy) == rules  # apply puts it back with the others


def test_whole_bucket_repository_filters_by_tag_only() -> None:
    rules = by_id(LifecyclePolicy.from_settings(RemoteSettings(), "").rules())
    assert rules["bdr::archive"]["Filter"] == {"Tag": {"Key": "bdr-tier", "Value": "data"}}
    assert rules["bdr::abort-uploads"]["Filter"] == {"Prefix": ""}


def test_disabled_archive_and_expiry_leave_only_the_upload_rule() -> None:
    settings = RemoteSettings(archive_after_days=None, expire_after_days=None)
    assert list(by_id(LifecyclePolicy.from_settings(settings, "p").rules())) == ["bdr:p:abort-uploads"]


def test_the_same_rule_spelled_differently_matches() -> None:
    policy = LifecyclePolicy(prefix="p")
    respelled = []
    for rule in policy.rules():
        rule = dict(rule)
        rule.pop("Status")
        rule["Status"] = "Enabled"  # key order differs
        if "Transitions" in rule:
            rule["Transitions"] = [{"StorageClass": "GLACIER", "Days": 90}]
        respelled.append(rule)
    assert compare(respelled, policy) == []


def test_compare_names_each_difference() -> None:
    policy = LifecyclePolicy(prefix="p")
    rules = by_id(policy.rules())
    rules["bdr:p:archive"] = {**rules["bdr:p:archive"], "Status": "Disabled"}
    del rules["bdr:p:expire-data"]
    rules["bdr:p:old-thing"] = {"ID": "bdr:p:old-thing", "Status": "Enabled", "Filter": {"Prefix": "p/"},
                                "Expiration": {"Days": 3}}
    rules["unrelated"] = {"ID": "unrelated", "Status": "Enabled", "Filter": {"Prefix": "x/"},
                          "Expiration": {"Days": 1}}
    differences = compare(list(rules.values()), policy)
    assert len(differences) == 3
    assert differences[0].startswith("rule bdr:p:archive differs: bucket has disabled")
    assert differences[1].startswith("rule bdr:p:expire-data is missing")
    assert differences[2].startswith("rule bdr:p:old-thing is in the bucket but not in the policy")


def test_rules_of_a_prefix_that_merely_starts_alike_are_not_ours() -> None:
    policy = LifecyclePolicy(prefix="p")
    other = LifecyclePolicy(prefix="p2").rules()
    assert compare(other + policy.rules(), policy) == []
    assert merged(other, policy) == other + policy.rules()


def test_merge_replaces_only_our_rules() -> None:
    policy = LifecyclePolicy(prefix="p", archive_after_days=30)
    stale = LifecyclePolicy(prefix="p").rules()
    foreign = {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 9}}
    result = merged([foreign, *stale], policy)
    assert result[0] == foreign
    assert result[1:] == policy.rules()


def test_foreign_rules_that_touch_the_backups_are_flagged() -> None:
    policy = LifecyclePolicy(prefix="prod/redis")
    rules: list[dict[str, Any]] = [
        {"ID": "all", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 7}},
        {"ID": "prod-ia", "Status": "Enabled", "Filter": {"Prefix": "prod/"},
         "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}]},
        {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 7}},
        {"ID": "off", "Status": "Disabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}},
        {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
    ]
    warnings = foreign_overlaps(rules, policy)
    assert [w.split()[1] for w in warnings] == ["all", "prod-ia"]


def test_legacy_top_level_prefix_is_understood() -> None:
    shape = RuleShape.of({"ID": "x", "Status": "Enabled", "Prefix": "old/", "Expiration": {"Days": 5}})
    assert shape.prefix == "old/" and shape.expiration_days == 5


def test_very_long_prefix_gives_a_valid_rule_id() -> None:
    policy = LifecyclePolicy(prefix="a/" * 200)
    assert all(len(r["ID"]) <= 255 for r in policy.rules())
    assert policy.owns(policy.rules()[0])


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, (None, None)),
        ('ongoing-request="true"', (True, None)),
        ('ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"',
         (False, "Fri, 21 Dec 2012 00:00:00 GMT")),
    ],
)
def test_restore_header(header: str | None, expected: tuple[bool | None, str | None]) -> None:
    assert parse_restore_header(header) == expected
