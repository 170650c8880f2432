"""Properties of retention that must hold for any repository, any policy and any clock."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bdr.config import RETENTION_LOCATIONS, RetentionRule
from bdr.repository import BackupSet
from bdr.repository.retention import RetentionPolicy, decide, is_good, is_safety
from tests.backup_sets import make_set

NOW = datetime(2026, 1, 24, 2, 5, tzinfo=UTC)
GROUPS = [("redis", "production"), ("redis", "test"), ("qdrant", "production")]


@st.composite
def backup_sets(draw: st.DrawFn) -> list[BackupSet]:
    location = draw(st.sampled_from(RETENTION_LOCATIONS))
    count = draw(st.integers(min_value=0, max_value=40))
    sets = []
    for n in range(count):
        source, instance = draw(st.sampled_from(GROUPS))
        minutes = draw(st.integers(min_value=-120, max_value=400 * 24 * 60))  # a little clock skew too
        verified = draw(st.sampled_from([None, None, True, False]))
        safety = draw(st.integers(min_value=0, max_value=5)) == 0
        sets.append(make_set(NOW - timedelta(minutes=minutes), source, instance, location=location,
                             verified=verified, tags=("safety",) if safety else (), ident=f"{source}-{n:03d}"))
    return sets


rules = st.builds(
    RetentionRule,
    kind=st.sampled_from(["hourly", "daily", "weekly", "monthly", "yearly", "last", "within"]),
    keep=st.sampled_from([0.0, 3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0, 365 * 86400.0]),
    locations=st.sampled_from([("local",), ("s3",), ("local", "s3")]),
    count=st.one_of(st.none(), st.integers(min_value=1, max_value=5)),
).filter(lambda r: (r.kind != "last" or r.count is not None) and (r.kind != "within" or r.keep > 0))
policies = st.builds(RetentionPolicy, rules=st.lists(rules, max_size=4).map(tuple),
                     safety_keep=st.sampled_from([86400.0, 7 * 86400.0]))
moments = st.integers(min_value=0, max_value=60 * 24 * 60).map(lambda m: NOW + timedelta(minutes=m))

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def newest(sets: Sequence[BackupSet]) -> BackupSet | None:
    return max(sets, key=lambda s: (s.created, s.id), default=None)


@SETTINGS
@given(backup_sets(), policies, moments, st.data())
def test_invariants_are_never_deleted(sets: list[BackupSet], policy: RetentionPolicy, now: datetime,
                                      data: st.DataObject) -> None:
    being_read = set(data.draw(st.lists(st.sampled_from([s.id for s in sets]), max_size=3))) if sets else set()
    decisions = {d.id: d for d in decide(sets, policy, now, being_read=being_read)}
    for source, instance in GROUPS:
        group = [s for s in sets if (s.source, s.manifest.instance) == (source, instance) and not is_safety(s)]
        good = newest([s for s in group if is_good(s)])
        if good is not None:
            assert decisions[good.id].keep and "newest good set" in decisions[good.id].reasons
        verified = newest([s for s in group if s.verified])
        if verified is not None:
            assert decisions[verified.id].keep
    for set_id in being_read:
        assert "being read by a restore" in decisions[set_id].reasons


@SETTINGS
@given(backup_sets(), policies, moments)
def test_one_decision_per_set_and_every_kept_set_has_a_reason(sets: list[BackupSet], policy: RetentionPolicy,
                                                              now: datetime) -> None:
    decisions = decide(sets, policy, now)
    assert sorted(d.id for d in decisions) == sorted(s.id for s in sets)
    for decision in decisions:
        assert bool(decision.reasons) == decision.keep
        assert decision.keep or decision.note


@SETTINGS
@given(backup_sets(), policies, moments, st.randoms(use_true_random=False))
def test_the_decision_does_not_depend_on_listing_order(sets: list[BackupSet], policy: RetentionPolicy,
                                                       now: datetime, rnd: random.Random) -> None:
    shuffled = list(sets)
    rnd.shuffle(shuffled)
    assert decide(shuffled, policy, now) == decide(sets, policy, now)


@SETTINGS
@given(backup_sets(), policies, moments)
def test_pruning_what_was_kept_deletes_nothing(sets: list[BackupSet], policy: RetentionPolicy, now: datetime) -> None:
    kept = [d.backup for d in decide(sets, policy, now) if d.keep]
    again = decide(kept, policy, now)
    assert all(d.keep for d in again)
    assert {d.id: d.reasons for d in again} == {d.id: d.reasons for d in decide(sets, policy, now) if d.keep}


@SETTINGS
@given(backup_sets(), policies, moments)
def test_a_longer_window_never_keeps_less(sets: list[BackupSet], policy: RetentionPolicy, now: datetime) -> None:
    longer = RetentionPolicy(tuple(RetentionRule(r.kind, r.keep * 2, r.locations, r.count) for r in policy.rules),
                             policy.safety_keep * 2)
    kept = {d.id for d in decide(sets, policy, now) if d.keep}
    assert kept <= {d.id for d in decide(sets, longer, now) if d.keep}
