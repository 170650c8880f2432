"""Runbook: "Scenario 3: Accidental Data Deletion" (selective restore).

Symptoms: someone deleted ``user:*`` keys, dropped a Qdrant collection, or deleted the points
of one tenant.
Recovery: restore only what was lost, into the live instance, without touching the rest:

- ``bdr restore redis latest --keys 'user:*' --conflict skip``
- ``bdr restore qdrant latest --collection memories``
- ``bdr restore qdrant latest --collection documents --filter '{"must": [...]}' --conflict skip``

The drill proves the lost data is back and everything else is unchanged byte for byte.
"""

from __future__ import annotations

import pytest

from bdr import api
from drills.recorder import Drill
from drills.stack import Stack

pytestmark = pytest.mark.drill("accidental_deletion", title="Accidental deletion: selective restore")

ACME = {"must": [{"key": "tenant", "match": {"value": "acme"}}]}


@pytest.mark.drill("accidental_deletion", title="Accidental deletion: user:* keys in Redis", case="redis_keys",
                   sources=("redis",),
                   objectives=("rto redis_local_restore",))
def test_deleted_redis_keys(stack: Stack, drill: Drill) -> None:
    with drill.step("scheduled backup") as step:
        outcome = api.backup(stack.config, "redis")
        step.detail = outcome.manifest.id
    client = stack.redis.client()
    users = stack.redis_dump("user:*")
    others = stack.redis_dump(exclude="user:*")

    drill.fault(f"DEL of {len(users)} user:* keys by mistake")
    deleted = client.delete(*users)
    with drill.step("detected") as step:
        assert not list(client.scan_iter(match="user:*", count=1000))
        step.detail = f"{deleted} keys gone"
    with drill.step("restore", "bdr restore redis latest --keys 'user:*' --conflict skip") as step:
        result = api.restore(stack.config, "redis", "latest", keys="user:*", conflict="skip")
        step.detail = ", ".join(f"{k}: {v}" for k, v in result.counts.items())
    with drill.step("verify") as step:
        assert stack.redis_dump("user:*") == users
        assert stack.redis_dump(exclude="user:*") == others
        step.detail = f"{len(users)} user keys back; {len(others)} other keys unchanged byte for byte"
    drill.verified()

    drill.rto("redis_local_restore", note="selective restore")
    drill.evidence.update(backup_id=outcome.manifest.id, counts=result.counts, restored_keys=len(users),
                          untouched_keys=len(others))
    drill.assert_targets()


@pytest.mark.drill("accidental_deletion", title="Accidental deletion: a Qdrant collection dropped",
                   case="qdrant_collection", sources=("qdrant",),
                   objectives=("rto qdrant_restore",))
def test_dropped_qdrant_collection(stack: Stack, drill: Drill) -> None:
    with drill.step("scheduled backup") as step:
        outcome = api.backup(stack.config, "qdrant")
        step.detail = outcome.manifest.id
    memories = stack.qdrant_points("memories")
    documents = stack.qdrant_points("documents")

    drill.fault("collection 'memories' deleted by mistake")
    with api.qdrant_client(stack.config) as client:
        client.delete_collection("memories")
    with drill.step("detected") as step:
        assert stack.qdrant_points("memories") == {}
        step.detail = "collection missing"
    with drill.step("restore", "bdr restore qdrant latest --collection memories") as step:
        result = api.restore(stack.config, "qdrant", "latest", collection="memories")
        step.detail = ", ".join(f"{k}: {v}" for k, v in result.counts.items())
    with drill.step("verify") as step:
        assert stack.qdrant_points("memories") == memories
        assert stack.qdrant_points("documents") == documents
        step.detail = f"{len(memories)} points back; 'documents' ({len(documents)} points) unchanged"
    drill.verified()

    drill.rto("qdrant_restore", note="selective restore of one collection's points")
    drill.evidence.update(backup_id=outcome.manifest.id, counts=result.counts)
    drill.assert_targets()


@pytest.mark.drill("accidental_deletion", title="Accidental deletion: one tenant's points", case="tenant_points",
                   sources=("qdrant",),
                   objectives=("rto qdrant_restore",))
def test_deleted_points_matching_a_filter(stack: Stack, drill: Drill) -> None:
    from qdrant_client import models

    with drill.step("scheduled backup") as step:
        outcome = api.backup(stack.config, "qdrant")
        step.detail = outcome.manifest.id
    before = stack.qdrant_points("documents")
    acme = {k: v for k, v in before.items() if v[0]["tenant"] == "acme"}  # type: ignore[index]

    drill.fault(f"{len(acme)} points of tenant 'acme' deleted by mistake")
    with api.qdrant_client(stack.config) as client:
        selector = models.FilterSelector(filter=models.Filter.model_validate(ACME))
        client.delete("documents", points_selector=selector, wait=True)
    with drill.step("detected") as step:
        assert len(stack.qdrant_points("documents")) == len(before) - len(acme)
        step.detail = f"{len(acme)} points gone"
    with drill.step("restore", "bdr restore qdrant latest --collection documents --filter ... --conflict skip") as step:
        result = api.restore(stack.config, "qdrant", "latest",
                             collection="documents", filter=ACME, conflict="skip")
        step.detail = ", ".join(f"{k}: {v}" for k, v in result.counts.items())
    with drill.step("verify") as step:
        assert stack.qdrant_points("documents") == before
        step.detail = f"{len(acme)} points back; the other {len(before) - len(acme)} unchanged"
    drill.verified()

    drill.rto("qdrant_restore", note="selective restore of one collection's points")
    drill.evidence.update(backup_id=outcome.manifest.id, counts=result.counts)
    drill.assert_targets()
