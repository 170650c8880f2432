"""Runbook: "Redis Cluster: a master lost" (failover, then the lost node back; RTO < 5 minutes).

Symptoms: one master of the cluster is gone with its data (its host died); the cluster reports
the node ``fail`` and, within ``cluster-node-timeout``, its replica takes its slots over.
Recovery: Redis Cluster fails over by itself: the shard keeps serving, from one copy. Then the
lost node is brought back: its service started again on the same address, empty, and
``bdr restore redis latest --node HOST:PORT``: bdr finds its shard (the cluster set records every
shard's nodes), makes it a replica of the shard's new master, has the cluster forget the failed
node id, and checks that it synced and that the cluster is whole again (``cluster_state:ok``, all
slots, every shard with a live replica).
The drill measures the data lost in the failover (acknowledged writes the promoted replica did
not have) and the time until the cluster is whole again.
"""

from __future__ import annotations

import pytest

from bdr import api
from bdr.util.waiting import wait_for
from drills.cluster import ClusterStack, cluster_ok
from drills.recorder import Drill
from drills.stack import wipe

pytestmark = pytest.mark.drill("cluster_master_lost", title="Redis Cluster: a master and its data lost",
                               sources=("redis",), objectives=("rto redis_local_restore", "rpo sessions", "rpo rbac"))

FAILOVER_WAIT = 60.0


def test_cluster_master_lost(cluster_stack: ClusterStack, drill: Drill) -> None:
    cluster = cluster_stack.cluster
    writer = cluster_stack.start_writer()
    with drill.step("scheduled backup", "bdr backup redis") as step:
        outcome = api.backup(cluster_stack.config, "redis")
        step.detail = outcome.manifest.id
    writer.wait_for_acks(count=len(writer.acknowledged("sessions", 1e12)) + 5)
    seed = int(cluster_stack.config.redis["production"].url.rsplit(":", 1)[1].split("/")[0])
    lost = next(p for p in cluster.master_ports() if p != seed)  # bdr.yaml names another node
    (replica,) = cluster.replica_of(lost)
    keys_before = cluster.keys_total()

    fault = drill.fault(f"master 127.0.0.1:{lost} killed and its data directory deleted (nodes.conf too)")
    cluster.kill(lost)
    wipe(cluster.data_dir(lost))
    with drill.step("detected") as step:
        assert not cluster.answers(lost)
        step.detail = f"127.0.0.1:{lost} does not answer"
    with drill.step("failover", "Redis Cluster promotes the replica") as step:
        assert wait_for(lambda: cluster_ok(seed) and cluster.role(replica) == "master", FAILOVER_WAIT, 0.05)
        step.detail = f"replica 127.0.0.1:{replica} serves the shard's slots; cluster_state:ok"
    with drill.step("node replaced", "the lost node's service started again, empty, on its address") as step:
        cluster.spawn(lost, wipe=True)
        step.detail = f"127.0.0.1:{lost} up, empty, knows no cluster"
    with drill.step("restore", f"bdr restore redis latest --node 127.0.0.1:{lost}") as step:
        result = api.restore(cluster_stack.config, "redis", "latest", node=f"127.0.0.1:{lost}")
        step.detail = "; ".join(f"{s.name}: {s.detail}" for s in result.steps if s.detail)[:500]
    writer.stop()
    with drill.step("verify") as step:
        assert result.ok, [c for c in result.checks if not c.ok]
        for check in result.checks:
            drill.verification("restore", check.name, check.ok, check.detail, check.skipped)
        assert cluster.role(lost) == "slave" and cluster.replica_of(replica) == [lost]
        keys_after = cluster.keys_total()
        assert keys_after >= keys_before
        step.detail = (f"127.0.0.1:{lost} is the replica of 127.0.0.1:{replica} and holds its {keys_after} "
                          "keys; every shard has a replica again")
    drill.verified()

    drill.rto("redis_local_restore", note="failover by Redis Cluster, then the lost node back with bdr")
    for data_type in ("sessions", "rbac"):
        drill.rpo(data_type, writer.newest_surviving(data_type, fault), note="acknowledged writes lost in the failover")
    drill.evidence.update(backup_id=outcome.manifest.id, lost=f"127.0.0.1:{lost}", promoted=f"127.0.0.1:{replica}",
                          failover_writes_failed=writer.channels["sessions"].failures,
                          restore=result.facts)
    drill.assert_targets()
