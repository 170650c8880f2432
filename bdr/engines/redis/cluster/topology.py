"""The shape of a Redis Cluster as its nodes report it: shards, their slot ranges, masters and replicas.

An instance of bdr.yaml is a cluster when its server reports ``cluster_enabled:1``
(``INFO cluster``); its url names one node (any), and bdr finds the others. The topology
is read with ``CLUSTER SHARDS`` from Redis 7.2 on, else parsed from ``CLUSTER NODES`` (7.0
and 7.1, whose CLUSTER SHARDS lists a master's replicas only as far as gossip has told the
node asked; Redis 6; a server that refuses CLUSTER SHARDS): both give, per shard, the slot
ranges, the master and its replicas with their addresses, node ids and health. A node the
asked node does not know as a replica yet is asked itself (``INFO replication``).

A shard's *index* is its place in slot order (the shard holding slot 0 is shard 0), the
one name of a shard that survives a rebuilt cluster: node ids change when a cluster is
created again, slot ranges need not. Two topologies have the same **layout** when their
shards hold exactly the same slot ranges: a cluster set restores file by file only into
a cluster of the same layout (each shard's RDB into the master of the same slots), any
other target gets a key-level copy routed by slot.

Every node gets a :class:`~bdr.config.RedisInstance` of its own, made from the instance
of bdr.yaml (same credentials, TLS and runtime kind, its own address): the single-node
code (snapshot, file restore, checks) works on it unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from bdr.clients import redis_client, redis_errors
from bdr.config import RedisInstance
from bdr.errors import NotACluster
from bdr.repository.manifest import Manifest

logger = logging.getLogger(__name__)

SLOTS = 16384
SlotRange = tuple[int, int]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def cluster_enabled(instance: RedisInstance, timeout: float = 5.0) -> bool:
    """Whether the server of ``instance`` reports ``cluster_enabled:1`` (False when it does not answer)."""
    try:
        info = redis_client(instance, timeout=timeout, retries=0).info("cluster")
    except redis.RedisError:
        return False
    return int(info.get("cluster_enabled", 0)) == 1


@dataclass(frozen=True, slots=True)
class Node:
    """One node of the cluster, as the cluster describes it."""

    id: str
    host: str
    port: int
    role: str
    """``master`` or ``replica``."""
    health: str = "online"
    """``online``, ``failed`` or ``loading`` (CLUSTER SHARDS' words; CLUSTER NODES' flags translated)."""
    offset: int = 0
    """Replication offset the cluster last saw."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def to_facts(self) -> dict[str, Any]:
        return {"id": self.id, "address": self.address, "role": self.role}


@dataclass(frozen=True, slots=True)
class Shard:
    """A master and its replicas, and the slots they serve."""

    index: int
    slots: tuple[SlotRange, ...]
    master: Node
    replicas: tuple[Node, ...] = ()

    @property
    def nodes(self) -> tuple[Node, ...]:
        return (self.master, *self.replicas)

    @property
    def slot_count(self) -> int:
        return sum(high - low + 1 for low, high in self.slots)

    def describe(self) -> str:
        return f"shard {self.index} (slots {format_slots(self.slots)}, master {self.master.address})"


@dataclass(frozen=True, slots=True)
class Topology:
    """Every shard that serves slots, in slot order; nodes that serve none are kept apart."""

    shards: tuple[Shard, ...]
    spare: tuple[Node, ...] = ()
    """Masters without slots (a node added and not given any yet)."""
    source: str = "CLUSTER SHARDS"
    """Which command it was read with."""

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(n for s in self.shards for n in s.nodes) + self.spare

    @property
    def layout(self) -> tuple[tuple[SlotRange, ...], ...]:
        return tuple(s.slots for s in self.shards)

    @property
    def slots_served(self) -> int:
        return sum(s.slot_count for s in self.shards)

    def failed(self) -> list[Node]:
        return [n for n in self.nodes if n.health == "failed"]

    def same_layout(self, layout: Iterable[Iterable[Sequence[int]]]) -> bool:
        """Whether ``layout`` (slot ranges per shard, as a manifest records them) is this one's."""
        theirs = sorted(tuple((int(r[0]), int(r[1])) for r in ranges) for ranges in layout)
        return theirs == sorted(self.layout)

    def describe(self) -> str:
        replicas = sum(len(s.replicas) for s in self.shards)
        return f"{len(self.shards)} shard(s), {len(self.shards)} master(s) and {replicas} replica(s)"


def format_slots(ranges: Iterable[Sequence[int]]) -> str:
    return ",".join(f"{r[0]}-{r[1]}" if r[0] != r[1] else str(r[0]) for r in ranges)


def merge_ranges(slots: Iterable[Sequence[int]]) -> tuple[SlotRange, ...]:
    """Slot ranges sorted and joined where they touch (``[[0, 10], [11, 20]]`` -> ``((0, 20),)``)."""
    out: list[list[int]] = []
    for low, high in sorted((int(r[0]), int(r[1])) for r in slots):
        if out and low <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], high)
        else:
            out.append([low, high])
    return tuple((low, high) for low, high in out)


# --- reading it -------------------------------------------------------------------------------------


def _pairs(flat: Any) -> dict[str, Any]:
    """A RESP2 flat list ``[k1, v1, k2, v2 ...]`` (or a dict redis-py made of it) as a dict with str keys."""
    if isinstance(flat, Mapping):
        return {_text(k): v for k, v in flat.items()}
    items = list(flat)
    return {_text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def _shards_reply(reply: Any) -> list[tuple[tuple[SlotRange, ...], list[Node]]]:
    out = []
    for raw in reply:
        shard = _pairs(raw)
        flat = [int(x) for x in shard.get("slots") or []]
        slots = merge_ranges((flat[i], flat[i + 1]) for i in range(0, len(flat) - 1, 2))
        nodes = []
        for raw_node in shard.get("nodes") or []:
            node = _pairs(raw_node)
            host = _text(node.get("ip") or node.get("endpoint") or node.get("hostname") or "")
            port = int(node.get("port") or node.get("tls-port") or 0)
            nodes.append(Node(_text(node["id"]), host, port, _text(node.get("role", "master")),
                              _text(node.get("health", "online")), int(node.get("replication-offset") or 0)))
        out.append((slots, nodes))
    return out


NODES_FAILED = ("fail", "noaddr", "handshake")


def _nodes_reply(text: str) -> list[tuple[tuple[SlotRange, ...], list[Node]]]:
    """``CLUSTER NODES``: ``<id> <ip:port@cport[,host]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...``."""
    masters: dict[str, tuple[list[SlotRange], list[Node]]] = {}
    replicas: list[tuple[str, Node]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        node_id, address, flags = parts[0], parts[1].split("@", 1)[0], set(parts[2].split(","))
        host, _, port = address.rpartition(":")
        health = "failed" if flags & set(NODES_FAILED) or (parts[7] != "connected" and "myself" not in flags) \
            else "online"
        if "master" in flags:
            ranges: list[SlotRange] = []
            for spec in parts[8:]:
                if spec.startswith("["):
                    continue  # a slot being migrated or imported: not served here yet
                low, _, high = spec.partition("-")
                ranges.append((int(low), int(high or low)))
            masters[node_id] = (ranges, [Node(node_id, host, int(port or 0), "master", health)])
        elif "slave" in flags:
            replicas.append((parts[3], Node(node_id, host, int(port or 0), "replica", health)))
    orphans = []
    for master_id, node in replicas:
        if master_id in masters:
            masters[master_id][1].append(node)
        else:  # its master is not known here yet: the node itself will say (see _completed)
            orphans.append(((), [node]))
    return [(merge_ranges(ranges), nodes) for ranges, nodes in masters.values()] + orphans


def _topology(groups: list[tuple[tuple[SlotRange, ...], list[Node]]], source: str) -> Topology:
    shards: list[Shard] = []
    spare: list[Node] = []
    for slots, nodes in groups:
        masters = [n for n in nodes if n.role == "master"]
        if not slots:
            spare.extend(nodes)  # a node without slots, or a replica whose master this node does not know yet
            continue
        if not masters:
            continue  # a shard whose master is gone and no replica took over: its slots are not served
        master = next((m for m in masters if m.health != "failed"), masters[0])
        others = tuple(n for n in nodes if n is not master)
        shards.append(Shard(0, slots, master, tuple(dataclasses.replace(n, role="replica") for n in others)))
    shards.sort(key=lambda s: s.slots[0][0])
    return Topology(tuple(dataclasses.replace(s, index=i) for i, s in enumerate(shards)), tuple(spare), source)


SHARDS_SINCE = (7, 2)
"""``CLUSTER SHARDS`` groups nodes by shard id from 7.2 on; in 7.0 and 7.1 it lists a master's replicas as far as
gossip told the node asked, so bdr reads ``CLUSTER NODES`` there (and on Redis 6, which has no CLUSTER SHARDS)."""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


def discover(instance: RedisInstance) -> Topology:
    """The cluster's topology from the node ``instance`` names (see the module docstring), each replica's own
    word on its master included."""
    client = redis_client(instance, timeout=10.0)
    with redis_errors(instance, "describe its cluster"):
        info = client.info("cluster")
        if int(info.get("cluster_enabled", 0)) != 1:
            raise NotACluster(name=instance.name, url=instance.url, detail="its INFO says cluster_enabled:0")
        version = _version(str(client.info("server").get("redis_version", "0")))
        if version < SHARDS_SINCE:
            return nodes_topology(instance)
        try:
            reply = client.execute_command("CLUSTER", "SHARDS")
        except redis.ResponseError as exc:  # renamed or refused: CLUSTER NODES says the same
            logger.info("Redis %s: CLUSTER SHARDS refused (%s); reading CLUSTER NODES", instance.name, exc)
            return nodes_topology(instance)
    return _completed(instance, shards_topology_of(reply))


def shards_topology_of(reply: Any) -> Topology:
    return _topology(_shards_reply(reply), "CLUSTER SHARDS")


def shards_topology(instance: RedisInstance) -> Topology:
    """The topology from ``CLUSTER SHARDS`` whatever the version (completed by the replicas' own word)."""
    with redis_errors(instance, "describe its cluster"):
        reply = redis_client(instance, timeout=10.0).execute_command("CLUSTER", "SHARDS")
    return _completed(instance, shards_topology_of(reply))


def nodes_topology(instance: RedisInstance) -> Topology:
    """The topology from ``CLUSTER NODES`` (what Redis 6 and 7.0 offer reliably), completed the same way."""
    with redis_errors(instance, "describe its cluster"):
        text = _text(redis_client(instance, timeout=10.0).execute_command("CLUSTER", "NODES"))
    return _completed(instance, _topology(_nodes_reply(text), "CLUSTER NODES"))


def _completed(seed: RedisInstance, topology: Topology) -> Topology:
    """Replicas the asked node does not know as such yet (gossip lags): each spare node says whose replica it is."""
    if not topology.spare:
        return topology
    by_address = {s.master.address: s for s in topology.shards}
    spare: list[Node] = []
    extra: dict[int, list[Node]] = {}
    for node in topology.spare:
        try:
            repl = redis_client(node_instance(seed, node), timeout=5.0, retries=0).info("replication")
        except redis.RedisError:
            spare.append(node)
            continue
        master = f"{repl.get('master_host')}:{repl.get('master_port')}"
        if repl.get("role") == "slave" and master in by_address:
            extra.setdefault(by_address[master].index, []).append(dataclasses.replace(node, role="replica"))
        else:
            spare.append(node)
    shards = tuple(dataclasses.replace(s, replicas=(*s.replicas, *extra.get(s.index, ()))) for s in topology.shards)
    return Topology(shards, tuple(spare), topology.source)


# --- one instance per node ---------------------------------------------------------------------------


def node_url(seed: RedisInstance, node: Node) -> str:
    scheme = "rediss" if seed.url.startswith("rediss://") else "redis"
    host = f"[{node.host}]" if ":" in node.host else node.host
    return f"{scheme}://{host}:{node.port}/0"


def node_instance(seed: RedisInstance, node: Node, name: str | None = None) -> RedisInstance:
    """The bdr.yaml entry of one node: the cluster's credentials, TLS and runtime kind, the node's address.

    What only fits the seed node (its data_dir, config file, start arguments, log file,
    container) is left out: each node's own is read from the node itself.
    """
    return dataclasses.replace(
        seed, name=name or f"{seed.name}@{node.address}", url=node_url(seed, node), data_dir=None,
        config_file=None, start_args=(), log_file=None, container=None, volume=None, container_dir=None,
    )


@dataclass(slots=True)
class NodeInstances:
    """The instances of every node of a topology, by node id."""

    seed: RedisInstance
    topology: Topology
    by_id: dict[str, RedisInstance] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node in self.topology.nodes:
            self.by_id[node.id] = node_instance(self.seed, node)

    def __getitem__(self, node: Node) -> RedisInstance:
        return self.by_id[node.id]


def is_cluster_set(manifest: Manifest | None) -> bool:
    """Whether a set is a cluster set (the parent over one member set per shard)."""
    return manifest is not None and isinstance(manifest.facts.get("cluster"), dict) and bool(manifest.children)
