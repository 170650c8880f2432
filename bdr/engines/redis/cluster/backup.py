"""Backing up a Redis Cluster: every shard at once, each an honest snapshot, one cluster set over them.

Every shard is backed up in parallel (one thread each), from a **healthy replica** where
the shard has one (to spare the master the fork and the copy), else from its master:
``online`` in ``CLUSTER SHARDS``, its ``master_link_status`` up and no sync in progress.
Each shard's snapshot goes through the single-node engine unchanged (BGSAVE proved to be
the one bdr asked for, the RDB's ``ctime`` and key counts checked, the content digest
``bdr-rdb-1`` computed while it is copied, the AOF directory copied with rewrites held
off): it becomes a **member set** of its own (instance ``<name>.shard-<index>``), with the
shard's slot ranges and the node it came from in its facts.

The **cluster set** is a parent set (``children`` = the member sets in shard order, as a
whole-system set names its members) written last, under the same repository lock. Its
manifest records per shard the member set, the slot ranges, the master's and the
snapshot node's ids and addresses, the snapshot time (the server's ``TIME`` when BGSAVE was
asked for, to the microsecond), the key counts and the replica's lag; and the **skew**:
the spread of the shards' snapshot times. The skew is held to the ``sessions`` RPO of
bdr.yaml: the shards of a set further apart than that do not describe one moment, and
the backup fails.

A backup that misses a shard is not good: when any shard fails (or the skew is too
large), no cluster set is written and the member sets already written are **deleted**, so
that no half of a cluster can be listed, taken for ``latest`` or restored; the error names
the shard and keeps the failure's own exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from bdr.clients import redis_client
from bdr.config import Config, RedisInstance
from bdr.engines.base import BackupRequest
from bdr.engines.redis.cluster.topology import Node, Shard, Topology, discover, format_slots, node_instance
from bdr.errors import BdrError, ClusterNotHealthy, SkewTooLarge
from bdr.repository import Repository, SetWriter
from bdr.repository.manifest import Manifest, to_iso

logger = logging.getLogger(__name__)

FORMAT = 1
SKEW_RPO = "sessions"
"""The RPO the skew between shards is held to (the data that changes fastest)."""


def member_name(cluster: str, index: int) -> str:
    """The instance name of shard ``index``'s member sets (``production.shard-0``)."""
    return f"{cluster}.shard-{index}"


# --- which node --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """The node a shard's snapshot is taken from, and why that one."""

    shard: Shard
    node: Node
    reason: str
    lag_bytes: int | None = None


def replica_healthy(instance: RedisInstance) -> tuple[bool, str, int | None]:
    """Whether a replica is in sync with its master (link up, no sync running); why not; its lag in bytes."""
    try:
        info = redis_client(instance, timeout=5.0, retries=0).info("replication")
    except redis.RedisError as exc:
        return False, f"does not answer ({exc})", None
    if info.get("role") != "slave":
        return False, f"is a {info.get('role')}, not a replica", None
    if info.get("master_link_status") != "up":
        return False, "its link to the master is down", None
    if int(info.get("master_sync_in_progress", 0)):
        return False, "it is still syncing from its master", None
    with contextlib.suppress(redis.RedisError):
        if int(redis_client(instance, timeout=5.0, retries=0).info("persistence").get("loading", 0)):
            return False, "it is still loading", None
    return True, "in sync", None


def choose_source(seed: RedisInstance, shard: Shard, prefer_replica: bool = True) -> Source:
    """A healthy replica of ``shard`` when ``prefer_replica`` and there is one, else its master."""
    if shard.master.health == "failed":
        raise ClusterNotHealthy(name=seed.name, detail=f"the master of {shard.describe()} is failed: wait for the "
                                "failover to finish (or bring the node back) and run again")
    why_not: list[str] = []
    if prefer_replica:
        for replica in shard.replicas:
            if replica.health == "failed":  # "loading" only says the cluster has not seen its offset yet: ask it
                why_not.append(f"{replica.address} is failed")
                continue
            ok, why, lag = replica_healthy(node_instance(seed, replica))
            if ok:
                master_offset = _offset(node_instance(seed, shard.master))
                replica_offset = _offset(node_instance(seed, replica), "slave_repl_offset")
                if master_offset is not None and replica_offset is not None:
                    lag = max(0, master_offset - replica_offset)
                return Source(shard, replica, f"replica {replica.address} ({why}), sparing the master", lag)
            why_not.append(f"{replica.address} {why}")
    reason = "no replica" if not shard.replicas else "no healthy replica (" + "; ".join(why_not) + ")"
    return Source(shard, shard.master, f"master {shard.master.address}: {reason}" if prefer_replica
                  else f"master {shard.master.address}")


def _offset(instance: RedisInstance, field: str = "master_repl_offset") -> int | None:
    with contextlib.suppress(redis.RedisError, KeyError, ValueError):
        return int(redis_client(instance, timeout=5.0, retries=0).info("replication")[field])
    return None


# --- one shard ---------------------------------------------------------------------------------------


def shard_facts(cluster: str, source: Source) -> dict[str, Any]:
    """What a member set says about the shard it holds."""
    shard = source.shard
    return {
        "cluster": cluster, "index": shard.index, "slots": [list(r) for r in shard.slots],
        "master": shard.master.to_facts(), "snapshot_node": source.node.to_facts(),
        "replicas": [r.to_facts() for r in shard.replicas], "reason": source.reason, "lag_bytes": source.lag_bytes,
    }


def backup_member(request: BackupRequest, seed: RedisInstance, source: Source, method: str) -> Manifest:
    """The member set of one shard: the single-node snapshot of ``source.node``, committed."""
    from bdr.engines.redis import backup as single

    repo = request.repository
    shard = source.shard
    node = node_instance(seed, source.node, name=f"{member_name(seed.name, shard.index)}@{source.node.address}")
    writer = repo.new_set("redis", member_name(seed.name, shard.index), method, request.tags, request.cipher)
    member_request = dataclasses.replace(request, instance=writer.instance)
    with writer:
        if method == "replication":
            staging = Path(tempfile.mkdtemp(prefix="bdr-repl-"))
            try:
                single.backup_replication(member_request, writer, node, staging)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        else:
            single.backup_rdb(member_request, writer, node)
        writer.facts["cluster_shard"] = shard_facts(seed.name, source)
        return writer.commit()


def snapshot_us(member: Manifest) -> int:
    """When a member's snapshot was asked for, in microseconds (the server's clock; else when the set started)."""
    facts = member.facts
    if facts.get("snapshot_requested_at_us"):
        return int(facts["snapshot_requested_at_us"])
    if facts.get("snapshot_requested_at"):
        return int(facts["snapshot_requested_at"]) * 1_000_000
    return int(member.started.timestamp() * 1_000_000)


def _iso_us(us: int) -> str:
    return to_iso(datetime.fromtimestamp(us / 1_000_000, UTC))


# --- the cluster set ---------------------------------------------------------------------------------


def check_topology(seed: RedisInstance, topology: Topology) -> None:
    """A cluster is backed up only whole: every slot served, no master failed."""
    if topology.slots_served != 16384:
        raise ClusterNotHealthy(name=seed.name, detail=f"only {topology.slots_served} of 16384 slots are served "
                                f"({topology.describe()}): a set of it would miss data; fix the cluster first "
                                "(redis-cli --cluster check)")
    failed = [s for s in topology.shards if s.master.health == "failed"]
    if failed:
        raise ClusterNotHealthy(name=seed.name, detail=f"the master of {failed[0].describe()} is failed: wait for the "
                                "failover (or bring it back) and run again")


def skew_target(config: Config) -> float | None:
    value = config.targets.rpo.get(SKEW_RPO)
    return None if value is None else float(value)


def backup_cluster(request: BackupRequest, writer: SetWriter, seed: RedisInstance, *, prefer_replica: bool = True,
                   method: str = "rdb") -> None:
    """Fill ``writer`` (the cluster set) after backing up every shard into a member set (see the module docstring).

    ``prefer_replica=False`` snapshots the masters (a restore's safety backup: the masters'
    own files must then hold their data at the stop).
    """
    topology = discover(seed)
    check_topology(seed, topology)
    sources = [choose_source(seed, shard, prefer_replica) for shard in topology.shards]
    members: dict[int, Manifest] = {}
    failures: list[tuple[Source, BaseException]] = []
    with ThreadPoolExecutor(max_workers=len(sources), thread_name_prefix="bdr-cluster-backup") as pool:
        futures = [(source, pool.submit(backup_member, request, seed, source, method)) for source in sources]
        for source, future in futures:
            try:
                members[source.shard.index] = future.result()
            except BaseException as exc:
                failures.append((source, exc))
    if failures:
        _discard(request.repository, list(members.values()))
        failed, error = failures[0]
        if isinstance(error, OSError):  # a file of the shard's copy: the typed error write_backup would give
            from bdr.engines.base import READ_ERRNOS
            from bdr.storage.local import translate_os_error

            error = translate_os_error(error, error.filename or request.repository.url,
                                       "read" if error.errno in READ_ERRNOS else "write")
        if isinstance(error, BdrError):
            raise type(error)(f"{failed.shard.describe()} from {failed.node.address}: {error.message}; no cluster "
                              f"set was written (the {len(members)} shard set(s) already written were deleted)") \
                from error
        raise error
    ordered = [members[s.shard.index] for s in sources]
    times = [snapshot_us(m) for m in ordered]
    skew = (max(times) - min(times)) / 1_000_000
    target = skew_target(request.config)
    if target is not None and skew > target:
        _discard(request.repository, ordered)
        raise SkewTooLarge(name=seed.name, skew=skew, rpo=SKEW_RPO, target=f"{target:g}",
                           detail="a shard waited for a save or rewrite of its own before its snapshot; run again "
                           "(the shard sets were deleted)")
    writer.children = [m.id for m in ordered]
    writer.method = "cluster"
    writer.facts.update(parent_facts(seed, topology, sources, ordered, times, skew, target))


def parent_facts(seed: RedisInstance, topology: Topology, sources: list[Source], members: list[Manifest],
                 times: list[int], skew: float, target: float | None) -> dict[str, Any]:
    """The cluster set's facts: per shard what it holds and where it came from; the skew; the totals."""
    shards: list[dict[str, Any]] = []
    keyspace: dict[str, dict[str, int]] = {}
    for source, member, at in zip(sources, members, times, strict=True):
        member_keyspace = dict(member.facts.get("keyspace") or {})
        for db, counts in member_keyspace.items():
            total = keyspace.setdefault(db, {"keys": 0, "expires": 0})
            total["keys"] += int(counts.get("keys", 0))
            total["expires"] += int(counts.get("expires", 0))
        content = member.facts.get("content") or {}
        shards.append({
            "index": source.shard.index, "member": member.id, "slots": [list(r) for r in source.shard.slots],
            "slot_count": source.shard.slot_count, "master": source.shard.master.to_facts(),
            "snapshot_node": source.node.to_facts(), "replicas": [r.to_facts() for r in source.shard.replicas],
            "snapshot_at": _iso_us(at), "snapshot_at_us": at, "reason": source.reason, "lag_bytes": source.lag_bytes,
            "keys": sum(int(c.get("keys", 0)) for c in member_keyspace.values()),
            "content": str(content.get("value", "")) or None, "stored_bytes": member.stored_size,
        })
    first = members[0].facts
    return {
        "cluster": {
            "format": FORMAT, "topology_source": topology.source, "slots": topology.slots_served,
            "nodes": len(topology.nodes), "shards": shards, "skew_seconds": round(skew, 6),
            "skew_rpo": SKEW_RPO, "skew_target_seconds": target,
            "skew_within_rpo": None if target is None else skew <= target,
        },
        "shard_count": len(shards),
        "skew_seconds": round(skew, 6),
        "keyspace": keyspace,
        "redis_version": first.get("redis_version"),
        "redis_mode": "cluster",
        "digest": "unavailable",
        "snapshot_from": {str(s["index"]): s["snapshot_node"]["address"] for s in shards},
        "summary": "; ".join(f"shard {s['index']} slots {format_slots(s['slots'])}: {s['keys']} keys from "
                             f"{s['snapshot_node']['address']}" for s in shards),
    }


def _discard(repo: Repository, members: list[Manifest]) -> None:
    """Delete member sets of a cluster backup that failed (a half cluster is no backup)."""
    for member in members:
        try:
            repo.delete(repo.get(member.id, "redis"))
            logger.warning("deleted shard set %s of a cluster backup that failed", member.id)
        except BdrError as exc:  # pragma: no cover - the set was just written
            logger.warning("could not delete shard set %s of a failed cluster backup: %s", member.id, exc.message)
