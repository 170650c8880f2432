"""Runbook: "Redis Cluster: total loss" (every node and its data gone; RTO < 5 minutes).

Symptoms: every node of the cluster is down and its data directory is gone (the hosts rebuilt).
Recovery: recreate the nodes empty and create the cluster again as it was made
(``redis-cli --cluster create ... --cluster-replicas 1``: the same number of masters gets the
same slot ranges), then ``bdr restore redis latest``: each shard's set into the master of its
slots (safety set, stop, swap, start, verify), the replicas resync from their masters, and the
cluster's health is checked (``cluster_state:ok``, all 16384 slots, per-shard key counts and
content sample). The drill proves every shard comes back as it was backed up, and measures the
data lost (the age of the newest cluster set).
"""

from __future__ import annotations

import pytest

from bdr import api
from bdr.util.durations import format_duration
from drills.cluster import ClusterStack
from drills.recorder import Drill
from drills.stack import wipe

pytestmark = pytest.mark.drill("cluster_total_loss", title="Redis Cluster: every node lost",
                               sources=("redis",), objectives=("rto redis_local_restore", "rpo sessions", "rpo rbac"))


def test_cluster_total_loss(cluster_stack: ClusterStack, drill: Drill) -> None:
    cluster = cluster_stack.cluster
    writer = cluster_stack.start_writer()
    with drill.step("scheduled backup", "bdr backup redis") as step, writer.paused():
        outcome = api.backup(cluster_stack.config, "redis")
        before = cluster_stack.fingerprint()
        step.detail = f"{outcome.manifest.id}: {outcome.manifest.facts['summary']}; skew " \
                         f"{outcome.manifest.facts['skew_seconds']:.3f}s"
    writer.wait_for_acks(count=len(writer.acknowledged("sessions", 1e12)) + 5)

    fault = drill.fault(f"all {len(cluster.ports)} nodes killed and their data directories deleted")
    writer.stop()
    for port in cluster.ports:
        cluster.kill(port)
        wipe(cluster.data_dir(port))
    with drill.step("detected") as step:
        assert not any(cluster.answers(p) for p in cluster.ports)
        step.detail = "no node answers; every data directory empty"
    with drill.step("cluster recreated", "start the nodes; redis-cli --cluster create ... --cluster-replicas 1") \
            as step:
        for port in cluster.ports:
            cluster.spawn(port)
        cluster.create()
        step.detail = f"{len(cluster.master_ports())} empty masters with the same slot ranges, 3 replicas"
    with drill.step("restore", "bdr restore redis latest") as step:
        result = api.restore(cluster_stack.config, "redis", "latest")
        step.detail = ", ".join(f"{s.name} {format_duration(s.seconds)}" for s in result.steps)
    with drill.step("verify") as step:
        assert result.ok, [c for c in result.checks if not c.ok]
        for check in result.checks:
            drill.verification("restore", check.name, check.ok, check.detail, check.skipped)
        step.detail = drill.fingerprints(before, cluster_stack.fingerprint())
    drill.verified()

    drill.rto("redis_local_restore", note="a whole cluster: file restore of every shard")
    for data_type in ("sessions", "rbac"):
        drill.rpo(data_type, writer.newest_surviving(data_type, fault), note="newest cluster set")
    drill.evidence.update(backup_id=outcome.manifest.id, shards=outcome.manifest.facts["cluster"]["shards"],
                          skew_seconds=outcome.manifest.facts["skew_seconds"], safety_id=result.safety_id,
                          restore_steps=[s.to_dict() for s in result.steps])
    drill.assert_targets()
