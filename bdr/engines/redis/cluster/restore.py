"""Restoring a cluster set into a cluster of the same layout: file by file, the whole cluster or nothing.

The target's shards must hold exactly the slot ranges of the set's shards (node ids may
differ: a cluster created again with ``redis-cli --cluster create`` over as many masters
gets the same ranges). Each shard's **master** is restored with the single-node file
restore (:class:`~bdr.engines.redis.restore.FullRestore`: the member set fetched and
checked into its data directory, swapped in atomically, loaded with the node's own
configuration, verified against the member's key counts and content sample); each
**replica** is emptied and resyncs from its restored master
(:class:`~bdr.engines.redis.cluster.replica.ReplicaResync`). ``nodes.conf`` is never
touched: every node keeps its id, its role and its epoch.

The runbook's steps run over every node at once (one thread per node), in the order a
cluster needs so that no failover can start behind bdr's back:

- ``safety backup``: writes are held back on every master (``CLIENT PAUSE WRITE``) and
  the masters are snapshot as a cluster set tagged ``safety`` (from the masters, not the
  replicas, so each master's own files are its data at the stop); an empty cluster needs none;
- ``stop``: the replicas first, then the masters (a master stopped while its replica runs
  would be failed over);
- ``replace``: every node's files;
- ``start``: the masters, then the replicas;
- ``verify``: per shard the master's checks (keys loaded, key counts, content sample, AOF),
  each replica synced with its master's key count, then the cluster's health
  (``cluster_state:ok`` on every node, all 16384 slots served, every replica linked);
- a failure anywhere rolls **every** node back (replicas stopped first, the masters' previous
  files swapped back and started, then the replicas'), and the restore exits 10 (12 when the
  rollback fails too, the safety set named).

One journal entry (the cluster's instance) holds every node's state, so ``bdr restore redis
--resume`` / ``--abort`` finish or roll back the whole cluster after bdr was killed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from bdr.clients import redis_client
from bdr.config import Config, RedisInstance
from bdr.engines.base import BackupRequest, Check, Engine, RestoreRequest, RestoreResult, StepLog, safety_backup
from bdr.engines.redis.cluster.health import health, health_checks, wait_healthy
from bdr.engines.redis.cluster.replica import ReplicaResync
from bdr.engines.redis.cluster.topology import Node, Topology, node_instance
from bdr.engines.redis.pause import WritePause
from bdr.engines.redis.restore import FullRestore
from bdr.engines.runbook import StepOutcome
from bdr.engines.selection import EVERYTHING
from bdr.errors import BackupNotFound, ServiceError
from bdr.repository import BackupSet, Repository
from bdr.repository import SetWriter as _SetWriter
from bdr.safety.journal import JournalEntry

logger = logging.getLogger(__name__)

T = TypeVar("T")
HEALTH_WAIT = 60.0


class NodeEngine:
    """The single-node Redis engine for one node of a cluster (its backup is never a cluster backup)."""

    source = "redis"

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def backup(self, request: BackupRequest, writer: _SetWriter) -> None:
        self._engine.backup(dataclasses.replace(request, options={**request.options, "cluster-node": True}), writer)


def each(items: Sequence[T], action: Callable[[T], Any]) -> list[Any]:
    """``action`` on every item at once (a thread each); every result, or the first error once all are done."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix="bdr-cluster") as pool:
        futures = [pool.submit(action, item) for item in items]
        errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]


@dataclass(slots=True)
class Part:
    """One node of the restore: a master's file restore or a replica's resync."""

    shard: int
    role: str
    node: Node
    instance: RedisInstance
    member: str
    """The member set restored into this shard."""
    master: FullRestore | None = None
    replica: ReplicaResync | None = None

    @property
    def label(self) -> str:
        return f"shard {self.shard} {self.role} {self.node.address}"

    @property
    def inner(self) -> FullRestore | ReplicaResync:
        inner = self.master or self.replica
        assert inner is not None
        return inner

    def run(self, step: str) -> StepOutcome:
        """One of the steps both kinds have (``fetch``, ``check``, ``stop``, ``replace``, ``start``, ``finish``)."""
        outcome: StepOutcome = getattr(self.inner, step)()
        return outcome

    def to_state(self) -> dict[str, Any]:
        inner = self.master.state() if self.master else self.replica.state() if self.replica else {}
        return {"shard": self.shard, "role": self.role, "node": {"id": self.node.id, "host": self.node.host,
                "port": self.node.port}, "instance": self.instance.name, "member": self.member, "state": inner}


def _with_nodes(config: Config, instances: Sequence[RedisInstance]) -> Config:
    """bdr.yaml's configuration with an instance per node (what the single-node code looks instances up in)."""
    return dataclasses.replace(config, redis={**config.redis, **{i.name: i for i in instances}})


def members_by_slots(repo: Repository, parent: BackupSet) -> dict[tuple[tuple[int, int], ...], BackupSet]:
    """The member sets of a cluster set, by their shard's slot ranges."""
    out = {}
    for shard in parent.manifest.facts["cluster"]["shards"]:
        try:
            member = repo.get(str(shard["member"]), "redis")
        except BackupNotFound as exc:
            raise BackupNotFound(ref=f"{shard['member']} (shard {shard['index']} of cluster set {parent.id})",
                                 repo=repo.url) from exc
        out[tuple((int(r[0]), int(r[1])) for r in shard["slots"])] = member
    return out


@dataclass(slots=True)
class ClusterRestore:
    """A cluster set restored into a cluster of the same layout (see the module docstring)."""

    config: Config
    request: RestoreRequest
    seed: RedisInstance
    result: RestoreResult
    engine: Engine
    """The Redis engine: its safety backup of the whole cluster, and (as :class:`NodeEngine`) each node's."""
    parts: list[Part] = field(default_factory=list)
    pauses: list[WritePause] = field(default_factory=list)
    source: str = "redis"
    stops_service: bool = True

    @property
    def instance(self) -> str:
        return self.seed.name

    @property
    def masters(self) -> list[Part]:
        return [p for p in self.parts if p.master is not None]

    @property
    def replicas(self) -> list[Part]:
        return [p for p in self.parts if p.replica is not None]

    # --- building it -------------------------------------------------------------------------

    @classmethod
    def new(cls, engine: Engine, request: RestoreRequest, topology: Topology) -> ClusterRestore:
        assert request.backup is not None
        seed = request.config.redis_instance(request.target)
        members = members_by_slots(request.repository, request.backup)
        result = RestoreResult(source="redis", ref=request.backup.id, target=seed.name, steps=request.log.steps,
                               dry_run=request.dry_run)
        parts: list[Part] = []
        for shard in topology.shards:
            member = members[shard.slots]
            for node in shard.nodes:
                name = f"{seed.name}.shard-{shard.index}@{node.address}"
                parts.append(Part(shard.index, "master" if node is shard.master else "replica", node,
                                  node_instance(seed, node, name), member.id))
        config = _with_nodes(request.config, [p.instance for p in parts])
        restore = cls(config, request, seed, result, engine, parts)
        node_engine: Any = NodeEngine(engine)
        for part in parts:
            masters = [m for m in parts if m.shard == part.shard and m.role == "master"]
            if part.role == "master":
                part.master = FullRestore.new(node_engine, restore._child_request(part, members[
                    next(s.slots for s in topology.shards if s.index == part.shard)]))
            else:
                part.replica = ReplicaResync.new(part.instance, masters[0].instance)
        return restore

    def _child_request(self, part: Part, member: BackupSet | None) -> RestoreRequest:
        return dataclasses.replace(self.request, config=self.config, backup=member, target=part.instance.name,
                                   log=StepLog(), selection=EVERYTHING, legacy_path=None)

    @classmethod
    def resumed(cls, engine: Engine, request: RestoreRequest, entry: JournalEntry, result: RestoreResult
                ) -> ClusterRestore:
        state = entry.state
        config = request.config
        name = str(state["instance"])
        seed = config.redis[name] if name in config.redis else RedisInstance(name=name, url=str(state["url"]))
        parts: list[Part] = []
        for raw in state["parts"]:
            where = raw["node"]
            node = Node(str(where["id"]), str(where["host"]), int(where["port"]), str(raw["role"]))
            parts.append(Part(int(raw["shard"]), str(raw["role"]), node,
                              node_instance(seed, node, str(raw["instance"])), str(raw["member"])))
        config = _with_nodes(config, [p.instance for p in parts])
        restore = cls(config, request, seed, result, engine, parts)
        node_engine: Any = NodeEngine(engine)
        for part, raw in zip(parts, state["parts"], strict=True):
            inner = dict(raw["state"] or {})
            if part.role == "master":
                member = None
                try:
                    member = request.repository.get(part.member, "redis")
                except Exception as exc:
                    logger.warning("member set %s cannot be read now: %s", part.member, exc)
                child = restore._child_request(part, member)
                fake = dataclasses.replace(entry, instance=part.instance.name, ref=part.member, state=inner)
                part.master = FullRestore.resumed(node_engine, child, fake, RestoreResult(
                    "redis", part.member, part.instance.name, child.log.steps))
            else:
                master = next(m.instance for m in parts if m.shard == part.shard and m.role == "master")
                part.replica = ReplicaResync.from_state(part.instance, master, inner)
        return restore

    def state(self) -> dict[str, Any]:
        return {"mode": "cluster", "instance": self.seed.name, "url": self.seed.url,
                "parts": [p.to_state() for p in self.parts]}

    # --- steps ---------------------------------------------------------------------------------

    def fetch(self) -> StepOutcome:
        each(self.parts, lambda p: p.run("fetch"))
        return StepOutcome(f"{len(self.masters)} shard set(s) fetched into their masters' data directories; "
                           f"{len(self.replicas)} replica(s) will resync")

    def check(self) -> StepOutcome:
        found = health(self.seed, replicas=False)
        if found.problems:
            raise ServiceError(detail=f"Redis cluster {self.instance} is not whole ({'; '.join(found.problems[:3])}): "
                               "bring every node back (or remove it with redis-cli --cluster del-node) and run again")
        assert found.topology is not None
        now = {(s.index, n.id, n is s.master) for s in found.topology.shards for n in s.nodes}
        planned = {(p.shard, p.node.id, p.role == "master") for p in self.parts}
        if now != planned:
            raise ServiceError(detail=f"the topology of Redis cluster {self.instance} changed since the restore was "
                               "planned (a failover?): run the restore again")

        outcomes = each(self.parts, lambda p: p.run("check"))
        keys = "; ".join(f"shard {p.shard}: {o.detail.split(';')[0]}" for p, o in zip(self.parts, outcomes,
                                                                                       strict=True) if p.master)
        return StepOutcome(f"{found.topology.describe()}, same layout as the set; {keys}")

    def dry_run(self) -> list[Check]:
        checks: list[Check] = []
        for part in self.masters:
            assert part.master is not None
            checks += [Check("dry run", True, f"{part.label}: {c.detail}") for c in part.master.dry_run()]
        if self.replicas:
            checks.append(Check("dry run", True, f"would empty {len(self.replicas)} replica(s) so that they resync "
                                "from their restored masters (dry run, nothing changed)"))
        return checks

    def safety_backup(self) -> tuple[str | None, StepOutcome]:
        keys = sum(_dbsize(p.instance) for p in self.masters)
        if keys == 0:
            return None, StepOutcome("nothing to protect: the cluster holds no keys", skipped=True)
        for part in self.masters:
            pause = WritePause(part.instance)
            pause.begin()
            self.pauses.append(pause)
        try:
            safety = safety_backup(self.engine, self.request, self.seed.name, options={"cluster_source": "masters"})
        except BaseException:
            self._end_pauses(unpause=True)
            raise
        notes = [p.note for p in self.pauses if p.note]
        return safety.id, StepOutcome(f"{safety.id} ({len(safety.children)} shard sets, from the masters); "
                                      + ("; ".join(notes) if notes else "writes paused on every master until the stop"))

    def _end_pauses(self, unpause: bool) -> None:
        for pause in self.pauses:
            pause.end(unpause=unpause)
        self.pauses = []

    def stop(self) -> StepOutcome:
        each(self.replicas, lambda p: p.run("stop"))
        each(self.masters, lambda p: p.run("stop"))
        self._end_pauses(unpause=False)
        return StepOutcome(f"{len(self.replicas)} replica(s), then {len(self.masters)} master(s) stopped")

    def replace(self) -> StepOutcome:
        outcomes = each(self.parts, lambda p: p.run("replace"))
        return StepOutcome(f"{len(outcomes)} node(s): files swapped in (masters), set aside (replicas)")

    def start(self) -> StepOutcome:
        each(self.masters, lambda p: p.run("start"))
        each(self.replicas, lambda p: p.run("start"))
        return StepOutcome(f"{len(self.masters)} master(s) started (writes held until verified), then "
                           f"{len(self.replicas)} replica(s)")

    def verify(self) -> list[Check]:
        def master(part: Part) -> list[Check]:
            assert part.master is not None
            return [Check(f"shard {part.shard}: {c.name}", c.ok, c.detail, c.skipped) for c in part.master.verify()]

        timeout = max(HEALTH_WAIT, self.seed.save_timeout)

        def replica(part: Part) -> list[Check]:
            assert part.replica is not None
            return [Check(f"shard {part.shard}: {c.name}", c.ok, c.detail, c.skipped)
                    for c in part.replica.verify(timeout)]

        up = wait_healthy(self.seed, HEALTH_WAIT, replicas=False)  # nodes find each other again after the restart
        if not up.ok:
            logger.warning("Redis cluster %s not whole yet after the restart: %s", self.instance,
                           "; ".join(up.problems))
        checks: list[Check] = [c for found in each(self.masters, master) for c in found]
        checks += [c for found in each(self.replicas, replica) for c in found]
        checks += health_checks(self.seed, HEALTH_WAIT)
        self.result.facts.update(cluster={"shards": [
            {"index": p.shard, "master": p.node.address, "member": p.member,
             "replicas": [r.node.address for r in self.replicas if r.shard == p.shard]} for p in self.masters]})
        return checks

    def rollback(self, safety_id: str | None) -> StepOutcome:
        self._end_pauses(unpause=True)
        replicas = [p.replica for p in self.replicas if p.replica is not None]
        masters = [(p.shard, p.master) for p in self.masters if p.master is not None]
        said = [s for s in each(replicas, lambda r: r.stop_for_rollback()) if s]
        said += [f"shard {shard}: {o.detail}" for (shard, _), o in zip(
            masters, each(masters, lambda m: m[1].rollback(safety_id)), strict=True)]
        said += [o.detail for o in each(replicas, lambda r: r.rollback())]
        return StepOutcome("; ".join(said))

    def finish(self) -> StepOutcome:
        each(self.parts, lambda p: p.run("finish"))
        return StepOutcome("previous files deleted on every node")

    def discard(self) -> None:
        self._end_pauses(unpause=True)
        for part in self.parts:
            part.inner.discard()


def _dbsize(instance: RedisInstance) -> int:
    try:
        return int(redis_client(instance, timeout=10.0, retries=0).dbsize())
    except redis.RedisError:
        return 1  # cannot tell: protect it
