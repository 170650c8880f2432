"""Every source of the catalogue has its part in the live drill, and the parts the drill needs of its kind."""

from __future__ import annotations

import pytest

from bdr.drill.production import ProductionState
from bdr.drill.profiles import PROFILES, compare, profile
from bdr.registry import UnknownEntry
from bdr.sources import all_sources


@pytest.mark.parametrize("entry", all_sources(), ids=lambda s: s.name)
def test_each_source_has_a_profile_of_its_kind(entry: object) -> None:
    from bdr.sources import Source

    assert isinstance(entry, Source)
    found = profile(entry.name)
    assert found.example_check.split(":")[0] in _checks_of(entry.name)
    if entry.live:  # a datastore: restored into a target and proven there
        assert found.target is not None and found.proofs is not None and not found.observed_in
    else:  # monitoring: restored into scratch space only
        assert found.target is None and found.proofs is None and found.observed_in
    assert entry.rto_target and entry.data_types


def _checks_of(source: str) -> set[str]:
    from bdr.drill.settings import CHECK_SOURCES

    return {kind for kind, owner in CHECK_SOURCES.items() if owner == source}


def test_an_unknown_source_has_no_profile() -> None:
    with pytest.raises(UnknownEntry, match=r"unknown drill profile 'postgres'; one of redis, qdrant, config"):
        profile("postgres")
    assert sorted(PROFILES.names()) == sorted(s.name for s in all_sources())


def test_the_evidence_keeps_only_the_fields_of_the_source() -> None:
    state = ProductionState("qdrant", "production", "embedded", "t", counts={"documents": 3})
    assert set(state.to_dict(profile("qdrant").state_fields)) == {"source", "instance", "address", "at", "counts"}
    redis = ProductionState("redis", "production", "redis://127.0.0.1:1/0", "t", pid=7, run_id="r", uptime_seconds=5)
    assert {"run_id", "uptime_seconds", "expired", "evicted"} <= set(redis.to_dict(profile("redis").state_fields))
    assert "files" not in redis.to_dict(profile("redis").state_fields)


def test_a_comparison_names_what_moved() -> None:
    before = ProductionState("grafana", "production", "grafana.db", "t", counts={"home": 1, "ops": 1})
    assert compare(before, before).ok
    gone = compare(before, ProductionState("grafana", "production", "grafana.db", "t", counts={"home": 1}))
    assert not gone.ok and "dashboard(s) gone: ops" in gone.detail
