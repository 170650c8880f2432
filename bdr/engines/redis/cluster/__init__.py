"""Redis Cluster: a cluster is a first-class source, backed up shard by shard and restored whole.

An instance of bdr.yaml whose server reports ``cluster_enabled:1`` is a cluster; its url
names any one node. The engine's entry points (:mod:`bdr.engines.redis` dispatches here):

- :mod:`.topology`: the shards, slot ranges, masters and replicas (``CLUSTER SHARDS``, or
  ``CLUSTER NODES``); one instance per node made from the cluster's;
- :mod:`.backup`: every shard in parallel, from a healthy replica (else the master), each
  an honest single-node snapshot in a member set; the **cluster set** over them (children,
  slot ranges, node ids, snapshot times, skew held to the sessions RPO); a backup that
  misses a shard writes nothing;
- :mod:`.restore`: into a cluster of the same layout, file by file: every master gets its
  shard's RDB through the single-node file restore, replicas resync from it; safety set of
  the masters first, the whole cluster rolled back when any shard fails; one journal entry;
- :mod:`.copy`: into any other topology (other node count, a single node) and for
  ``--keys``: a key-level copy routed by hash slot, TTLs kept, every type;
- :mod:`.node`: a lost node back as a replica of its shard (``--node HOST:PORT``);
- :mod:`.health`: ``cluster_state:ok``, every slot served, every node in its place;
- :mod:`.verify`: a cluster set's own checks (the members against the parent, each key in
  its shard's slots);
- :mod:`.slots`: CRC16 hash slots and the slot -> master map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bdr.engines.redis.cluster.topology import cluster_enabled, is_cluster_set

if TYPE_CHECKING:
    from bdr.config import RedisInstance
    from bdr.engines.base import BackupRequest, Check, Engine, RestoreRequest, RestoreResult
    from bdr.engines.runbook import Restorer
    from bdr.repository import SetWriter
    from bdr.repository.manifest import Manifest
    from bdr.safety.journal import JournalEntry

MODES = ("cluster", "cluster-copy", "cluster-node")
"""The ``mode`` of the journal state of a cluster restore (file restore, key-level copy, a lost node back)."""


def backs_up(request: BackupRequest, instance: RedisInstance) -> bool:
    """Whether a backup of ``instance`` is a cluster backup (its server says ``cluster_enabled:1``)."""
    return "cluster-node" not in request.options and cluster_enabled(instance)


def back_up(request: BackupRequest, writer: SetWriter, instance: RedisInstance, method: str) -> None:
    from bdr.engines.redis.cluster.backup import backup_cluster

    prefer_replica = request.options.get("cluster_source") != "masters"
    backup_cluster(request, writer, instance, prefer_replica=prefer_replica, method=method)


def restores(request: RestoreRequest) -> bool:
    """Whether a restore involves a cluster: a cluster set, or a target whose server is a cluster."""
    if request.backup is not None and is_cluster_set(request.backup.manifest):
        return True
    return cluster_enabled(request.config.redis_instance(request.target))


def restorer(engine: Engine, request: RestoreRequest) -> Restorer:
    """A file restore into the same layout, else a key-level copy routed by slot (see the module docstring).

    ``engine`` is the Redis engine: it takes the safety backup and each node's backup."""
    from bdr.engines.redis.cluster.plan import choose

    return choose(engine, request)


def resumed(engine: Engine, request: RestoreRequest, entry: JournalEntry, result: RestoreResult) -> Restorer:
    if entry.state.get("mode") == "cluster":
        from bdr.engines.redis.cluster.restore import ClusterRestore

        return ClusterRestore.resumed(engine, request, entry, result)
    if entry.state.get("mode") == "cluster-node":
        from bdr.engines.redis.cluster.node import NodeRejoin

        return NodeRejoin.resumed(request, entry, result)
    from bdr.engines.redis.cluster.copy import ClusterCopy

    return ClusterCopy.resumed(engine, request, entry, result)


def verify_member(manifest: Manifest, files: Any, restore_test: bool) -> list[Check]:
    """Checks of one shard's set beyond the single-node ones: every key in the shard's slots."""
    from bdr.engines.redis.cluster.verify import member_checks

    return member_checks(manifest, files)


def verify_parent(manifest: Manifest, members: list[Manifest]) -> list[Check]:
    from bdr.engines.redis.cluster.verify import parent_checks

    return parent_checks(manifest, members)


__all__ = ["MODES", "back_up", "backs_up", "is_cluster_set", "restorer", "restores", "resumed", "verify_member",
           "verify_parent"]
