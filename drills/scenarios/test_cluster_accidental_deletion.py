"""Runbook: "Redis Cluster: accidental deletion across shards" (selective restore, RTO < 5 minutes).

Symptoms: someone deleted ``user:*`` through the cluster: the keys were spread over every shard.
Recovery: ``bdr restore redis latest --keys 'user:*' --conflict skip --dry-run``, then without
``--dry-run``: every shard's set is loaded into a temporary server, the matching keys are copied
into the master that serves their slot, TTLs kept, keys written since left alone.
The drill proves what was deleted is back on every shard and everything else is unchanged.
"""

from __future__ import annotations

import pytest

from bdr import api
from drills.cluster import ClusterStack, client_at
from drills.recorder import Drill

pytestmark = pytest.mark.drill("cluster_accidental_deletion", title="Redis Cluster: user:* deleted on every shard",
                               sources=("redis",), objectives=("rto redis_local_restore",))


def dump(stack: ClusterStack, pattern: str) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for port in stack.cluster.master_ports():
        client = client_at(port, timeout=60.0)
        keys = list(client.scan_iter(match=pattern, count=1000))
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
        out.update(zip(keys, pipe.execute(), strict=True))
    return out


def test_cluster_accidental_deletion(cluster_stack: ClusterStack, drill: Drill) -> None:
    cluster = cluster_stack.cluster
    with drill.step("scheduled backup", "bdr backup redis") as step:
        outcome = api.backup(cluster_stack.config, "redis")
        step.detail = outcome.manifest.id
    users = dump(cluster_stack, "user:*")
    others = {k: v for k, v in dump(cluster_stack, "*").items() if not k.startswith(b"user:")}
    shards = [p for p in cluster.master_ports() if any(client_at(p).scan_iter(match="user:*", count=100))]

    drill.fault(f"DEL of {len(users)} user:* keys through the cluster, on {len(shards)} shards")
    client = cluster.client()
    deleted = sum(int(client.delete(key)) for key in users)
    client.close()
    with drill.step("detected") as step:
        assert dump(cluster_stack, "user:*") == {}
        step.detail = f"{deleted} keys gone from {len(shards)} shards"
    with drill.step("dry run", "bdr restore redis latest --keys 'user:*' --conflict skip --dry-run") as step:
        dry = api.restore(cluster_stack.config, "redis", "latest", keys="user:*", conflict="skip",
                          dry_run=True)
        assert dry.counts["copied"] == len(users)
        step.detail = ", ".join(f"{k}: {v}" for k, v in dry.counts.items())
    with drill.step("restore", "bdr restore redis latest --keys 'user:*' --conflict skip") as step:
        result = api.restore(cluster_stack.config, "redis", "latest", keys="user:*",
                             conflict="skip")
        step.detail = ", ".join(f"{k}: {v}" for k, v in result.counts.items())
    with drill.step("verify") as step:
        assert result.ok, [c for c in result.checks if not c.ok]
        back = dump(cluster_stack, "user:*") == users
        untouched = {k: v for k, v in dump(cluster_stack, "*").items() if not k.startswith(b"user:")} == others
        drill.verification("content", "user:* keys", back, f"{len(users)} keys back on {len(shards)} shards, "
                           "byte for byte" if back else "the restored keys differ from before the deletion")
        drill.verification("content", "other keys", untouched, f"{len(others)} other keys unchanged byte for byte"
                           if untouched else "other keys changed")
        step.detail = f"{len(users)} user keys back on {len(shards)} shards; {len(others)} other keys unchanged"
    drill.verified()

    drill.rto("redis_local_restore", note="selective restore across the shards of a cluster")
    drill.evidence.update(backup_id=outcome.manifest.id, counts=result.counts, shards=len(shards),
                          restored_keys=len(users), untouched_keys=len(others))
    drill.assert_targets()
