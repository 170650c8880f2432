"""Bringing a lost node of a cluster back: ``bdr restore redis latest --node HOST:PORT``.

When a master is lost, Redis Cluster fails over to its replica: the shard keeps serving, but on
one copy. The node that was lost is replaced (its host rebuilt, its service started again on the
same address, empty) and must take its place again as a replica of its shard. Its data comes
from its shard's master, not from the backup: the master holds everything the backup holds and
everything written since (restoring the backup would roll the shard back), and Redis refuses to
make a node that holds keys a replica. The cluster set says which shard the address belonged to
(it records every shard's nodes with their ids), so bdr finds the shard even once the cluster
forgot the node, and the failed node to forget even where the cluster lists it without an
address (``:0``, ``noaddr``).

The steps, through the runbook (journaled, resumable, rolled back):

- ``check``: the node answers, is a cluster node, holds no key and serves no slot; every slot of
  the cluster is served (the failover is done); the shard is found (by the set, else the one
  with the fewest replicas) and its master is healthy;
- ``replace``: the node meets the master (``CLUSTER MEET``), becomes its replica (``CLUSTER
  REPLICATE``) and every other node forgets the failed node that had its address (``CLUSTER
  FORGET``);
- ``verify``: the node is linked to the master and synced, holds as many keys as the master, and
  the cluster is whole (``cluster_state:ok``, all slots, every replica in sync);
- ``rollback``: the node leaves the cluster again (``CLUSTER RESET HARD``; it held nothing) and
  the others forget it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from bdr.clients import redis_client, redis_errors
from bdr.config import Config, RedisInstance
from bdr.engines.base import Check, RestoreRequest, RestoreResult
from bdr.engines.redis.cluster.health import health_checks
from bdr.engines.redis.cluster.replica import ReplicaResync
from bdr.engines.redis.cluster.topology import SLOTS, Node, Topology, discover, node_instance, nodes_topology
from bdr.engines.runbook import StepOutcome
from bdr.engines.selection import RedisSelection
from bdr.errors import ServiceError, UsageError
from bdr.safety.journal import JournalEntry
from bdr.util.waiting import wait_for

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 30.0


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(detail=f"--node takes the lost node's address as HOST:PORT (e.g. 10.0.0.5:7001), got {text!r}")
    return host.strip("[]"), int(port)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(slots=True)
class NodeRejoin:
    """A lost node taking its place again as a replica of its shard (see the module docstring)."""

    config: Config
    request: RestoreRequest | None
    seed: RedisInstance
    result: RestoreResult
    address: str
    shard: int = -1
    master: dict[str, Any] = field(default_factory=dict)
    """The shard's master: id, host, port."""
    failed: list[str] = field(default_factory=list)
    """Ids of failed nodes the cluster still lists with this address (forgotten once the node is back)."""
    node_id: str = ""
    source: str = "redis"
    stops_service: bool = False

    @property
    def instance(self) -> str:
        return self.seed.name

    @property
    def node(self) -> RedisInstance:
        host, port = parse_address(self.address)
        return node_instance(self.seed, Node("", host, port, "replica"), f"{self.seed.name}@{self.address}")

    def _master(self) -> RedisInstance:
        node = Node(str(self.master["id"]), str(self.master["host"]), int(self.master["port"]), "master")
        return node_instance(self.seed, node)

    @classmethod
    def new(cls, request: RestoreRequest, address: str) -> NodeRejoin:
        """The rejoin of the node at ``address`` (``--node HOST:PORT``)."""
        seed = request.config.redis_instance(request.target)
        parse_address(address)
        ref = request.backup.id if request.backup else "-"
        result = RestoreResult(source="redis", ref=ref, target=seed.name, steps=request.log.steps,
                               dry_run=request.dry_run)
        return cls(request.config, request, seed, result, address)

    @classmethod
    def resumed(cls, request: RestoreRequest, entry: JournalEntry, result: RestoreResult) -> NodeRejoin:
        state = entry.state
        name = str(state["instance"])
        seed = request.config.redis[name] if name in request.config.redis else \
            RedisInstance(name=name, url=str(state["url"]))
        return cls(request.config, request, seed, result, str(state["address"]), int(state["shard"]),
                   dict(state["master"]), list(state["failed"]), str(state.get("node_id", "")))

    def state(self) -> dict[str, Any]:
        return {"mode": "cluster-node", "instance": self.seed.name, "url": self.seed.url, "address": self.address,
                "selection": RedisSelection(node=self.address).to_state(), "shard": self.shard, "master": self.master,
                "failed": self.failed, "node_id": self.node_id}

    # --- steps ---------------------------------------------------------------------------------

    def fetch(self) -> StepOutcome:
        return StepOutcome("no files: the node's data comes from its shard's master; the set names its shard")

    def check(self) -> StepOutcome:
        node = self.node
        with redis_errors(node, "be checked"):
            client = redis_client(node, timeout=10.0)
            info = client.info("cluster")
            if int(info.get("cluster_enabled", 0)) != 1:
                raise ServiceError(detail=f"{self.address} is not a cluster node (cluster_enabled:0): start it with "
                                   "its cluster configuration (cluster-enabled yes)")
            self.node_id = _text(client.execute_command("CLUSTER", "MYID"))
            keys = int(client.dbsize())
        topology = discover(self.seed)
        if topology.slots_served != SLOTS:
            raise ServiceError(detail=f"Redis cluster {self.instance} serves {topology.slots_served} of {SLOTS} slots: "
                               "its shard has no master (no failover happened); restore the cluster instead "
                               f"(bdr restore redis latest --target {self.instance})")
        mine = next((s for s in topology.shards for n in s.nodes if n.id == self.node_id and n.health != "failed"),
                    None)
        if keys and mine is None:
            raise ServiceError(detail=f"{self.address} holds {keys} keys: a node that joins a shard must be empty "
                               "(Redis refuses to make it a replica); empty its data directory and start it again")
        shard = mine or self._shard_of(topology)
        self.shard = shard.index
        self.master = {"id": shard.master.id, "host": shard.master.host, "port": shard.master.port}
        recorded = self._recorded_ids()
        self.failed = sorted({n.id for n in _all_nodes(self.seed) if n.id != self.node_id and n.health == "failed"
                              and (n.address == self.address or n.id in recorded or n.port == 0)})
        how = "already its replica" if mine is not None else "joins as its replica"
        return StepOutcome(f"{self.address} (node {self.node_id[:8]}, empty) {how}: {shard.describe()}"
                           + (f"; failed node(s) {', '.join(i[:8] for i in self.failed)} of that address will be "
                              "forgotten" if self.failed else ""))

    def _recorded_ids(self) -> set[str]:
        """Node ids the set recorded at this address (the lost node, whatever address the cluster shows now)."""
        ids: set[str] = set()
        if self.request is not None and self.request.backup is not None:
            for recorded in (self.request.backup.manifest.facts.get("cluster") or {}).get("shards", []):
                for node in (recorded["master"], recorded["snapshot_node"], *recorded.get("replicas", [])):
                    if node["address"] == self.address:
                        ids.add(str(node["id"]))
        return ids

    def _shard_of(self, topology: Topology) -> Any:
        """The shard the set says the address belonged to; else the one with the fewest replicas."""
        if self.request is not None and self.request.backup is not None:
            for recorded in (self.request.backup.manifest.facts.get("cluster") or {}).get("shards", []):
                addresses = {recorded["master"]["address"], recorded["snapshot_node"]["address"],
                             *(r["address"] for r in recorded.get("replicas", []))}
                if self.address in addresses:
                    slots = tuple((int(r[0]), int(r[1])) for r in recorded["slots"])
                    for shard in topology.shards:
                        if shard.slots == slots:
                            return shard
        return min(topology.shards, key=lambda s: len([r for r in s.replicas if r.health != "failed"]))

    def dry_run(self) -> list[Check]:
        return [Check("dry run", True, f"would make {self.address} a replica of shard {self.shard}'s master "
                      f"{self.master.get('host')}:{self.master.get('port')} (dry run, nothing changed)")]

    def safety_backup(self) -> tuple[str | None, StepOutcome]:
        return None, StepOutcome("nothing to protect: the node is empty", skipped=True)

    def stop(self) -> StepOutcome:
        return StepOutcome(skipped=True)

    start = stop

    def replace(self) -> StepOutcome:
        node, master = self.node, self._master()
        client = redis_client(node, timeout=10.0)
        with redis_errors(node, "join the cluster"):
            client.execute_command("CLUSTER", "MEET", str(self.master["host"]), int(self.master["port"]))

            def known() -> bool:
                with contextlib.suppress(redis.RedisError):
                    nodes = _text(redis_client(master, timeout=5.0, retries=0).execute_command("CLUSTER", "NODES"))
                    return any(line.startswith(self.node_id) and "handshake" not in line
                               for line in nodes.splitlines())
                return False

            if not wait_for(known, JOIN_TIMEOUT, 0.05):
                raise ServiceError(detail=f"the master of shard {self.shard} did not get to know {self.address} "
                                   f"within {JOIN_TIMEOUT:.0f}s (is its cluster bus port reachable?)")
            deadline = time.monotonic() + JOIN_TIMEOUT
            while True:
                try:
                    client.execute_command("CLUSTER", "REPLICATE", str(self.master["id"]))
                    break
                except redis.ResponseError as exc:
                    if "Unknown node" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)  # it has not heard of the master through gossip yet
        forgotten = self._forget(self.failed)
        return StepOutcome(f"{self.address} is a replica of {self.master['host']}:{self.master['port']}"
                           + (f"; {forgotten} node(s) forgot the failed node" if forgotten else ""))

    def _forget(self, ids: list[str]) -> int:
        done = 0
        for other in _all_nodes(self.seed):
            if other.health == "failed" or other.id in ids or other.id == self.node_id:
                continue
            client = redis_client(node_instance(self.seed, other), timeout=5.0, retries=0)
            for node_id in ids:
                with contextlib.suppress(redis.RedisError):  # unknown there already, or its own master
                    client.execute_command("CLUSTER", "FORGET", node_id)
                    done += 1
        return done

    def verify(self) -> list[Check]:
        checks = [Check(f"shard {self.shard}: {c.name}", c.ok, c.detail, c.skipped)
                  for c in ReplicaResync.verify_sync(self.node, self._master(), max(60.0, self.seed.save_timeout))]
        checks += health_checks(self.seed)
        lonely: list[str] = []
        topology = discover(self.seed)

        def every_shard_has_a_replica() -> bool:  # the node asked learns of the new replica through gossip
            nonlocal lonely, topology
            topology = discover(self.seed)
            lonely = [s.describe() for s in topology.shards if not [r for r in s.replicas if r.health != "failed"]]
            return not lonely

        wait_for(every_shard_has_a_replica, JOIN_TIMEOUT, 0.1)
        checks.append(Check("every shard has a replica", not lonely, "; ".join(lonely) or
                            f"each of the {len(topology.shards)} shards has a live replica again"))
        self.result.facts.update(node=self.address, shard=self.shard, master=self.master, forgotten=self.failed)
        return checks

    def rollback(self, safety_id: str | None) -> StepOutcome:
        node = self.node
        with contextlib.suppress(redis.RedisError):
            redis_client(node, timeout=10.0).execute_command("CLUSTER", "RESET", "HARD")
        if self.node_id:
            self._forget([self.node_id])
        return StepOutcome(f"{self.address} left the cluster again (it held nothing)")

    def finish(self) -> StepOutcome:
        return StepOutcome("nothing to clean up")

    def discard(self) -> None:
        return None


def _all_nodes(seed: RedisInstance) -> tuple[Node, ...]:
    """Every node the seed lists, failed ones included (``CLUSTER NODES``)."""
    return nodes_topology(seed).nodes
