"""Is the cluster whole? ``cluster_state:ok``, every slot served, every node where it should be.

After a restore (and before one, to refuse a broken cluster), every node is asked:
``CLUSTER INFO`` must say ``cluster_state:ok`` and ``cluster_slots_ok:16384`` on each of
them (they agree), each shard's master must be the one serving its slots, and each
replica must be linked to it and done syncing. Nodes need a moment after a restart to
find each other (gossip, a second or so), so :func:`wait_healthy` polls until all of it
holds or the time is up, and then says what was still wrong.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis

from bdr.clients import redis_client
from bdr.config import RedisInstance
from bdr.engines.base import Check
from bdr.engines.redis.cluster.topology import SLOTS, Topology, discover, node_instance

POLL = 0.02
"""Between two looks. A restarted master says ``cluster_state:fail`` for 2 s after it loaded (Redis's
``CLUSTER_WRITABLE_DELAY``), which no restore can shorten; a short poll adds the least on top of it."""
DEFAULT_WAIT = 60.0


def cluster_info(instance: RedisInstance) -> dict[str, str]:
    """``CLUSTER INFO`` of one node as a dict (empty when it does not answer)."""
    try:
        raw = redis_client(instance, timeout=5.0, retries=0).execute_command("CLUSTER", "INFO")
    except redis.RedisError:
        return {}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


@dataclass(slots=True)
class Health:
    """What every node said, and what is wrong (nothing: healthy)."""

    problems: list[str] = field(default_factory=list)
    nodes: int = 0
    slots_ok: int = 0
    topology: Topology | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def health(seed: RedisInstance, replicas: bool = True) -> Health:
    """One look at the cluster through ``seed``: every node's view, and every replica's link."""
    found = Health()
    try:
        topology = discover(seed)
    except Exception as exc:
        found.problems.append(f"the topology cannot be read: {exc}")
        return found
    found.topology = topology
    found.nodes = len(topology.nodes)
    slots = []
    for node in topology.nodes:
        info = cluster_info(node_instance(seed, node))
        if not info:
            found.problems.append(f"node {node.address} does not answer")
            continue
        if info.get("cluster_state") != "ok":
            found.problems.append(f"node {node.address} says cluster_state:{info.get('cluster_state')}")
        slots.append(int(info.get("cluster_slots_ok", 0)))
        if node.health == "failed":
            found.problems.append(f"node {node.address} is marked failed")
    found.slots_ok = min(slots) if slots else 0
    if topology.slots_served != SLOTS:
        found.problems.append(f"{topology.slots_served} of {SLOTS} slots are served")
    if replicas:
        for shard in topology.shards:
            for replica in shard.replicas:
                link = replica_link(node_instance(seed, replica))
                if link:
                    found.problems.append(f"replica {replica.address} of shard {shard.index}: {link}")
    return found


def replica_link(instance: RedisInstance) -> str:
    """What is wrong with a replica's link to its master ("" when it is up and synced)."""
    try:
        info: dict[str, Any] = redis_client(instance, timeout=5.0, retries=0).info("replication")
    except redis.RedisError as exc:
        return f"does not answer ({exc})"
    if info.get("master_link_status") != "up":
        return "its link to the master is down"
    if int(info.get("master_sync_in_progress", 0)):
        return "still syncing"
    return ""


def wait_healthy(seed: RedisInstance, timeout: float = DEFAULT_WAIT, replicas: bool = True) -> Health:
    """Poll :func:`health` until the cluster is whole or ``timeout`` passes; the last look."""
    deadline = time.monotonic() + timeout
    while True:
        found = health(seed, replicas)
        if found.ok or time.monotonic() >= deadline:
            return found
        time.sleep(POLL)


def health_checks(seed: RedisInstance, timeout: float = DEFAULT_WAIT) -> list[Check]:
    """The checks a restore reports: cluster state and slots, as one check each."""
    found = wait_healthy(seed, timeout)
    state = not any("cluster_state" in p or "answer" in p or "failed" in p or "topology" in p for p in found.problems)
    checks = [
        Check("cluster state", state, f"cluster_state:ok on all {found.nodes} nodes" if state else
              "; ".join(p for p in found.problems if "slots" not in p and "replica" not in p) or "not ok"),
        Check("slots served", found.slots_ok == SLOTS and (found.topology is not None
                                                          and found.topology.slots_served == SLOTS),
              f"{found.slots_ok} of {SLOTS} slots ok"),
    ]
    links = [p for p in found.problems if p.startswith("replica ")]
    checks.append(Check("replicas in sync", not links, "; ".join(links) or "every replica linked to its master and "
                        "synced"))
    return checks
