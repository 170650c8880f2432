"""Which restore a cluster needs: the files into the same layout, else a key-level copy routed by slot.

- ``--keys PATTERN`` (and ``--db``): a key-level copy of the matching keys of every shard
  (:class:`~bdr.engines.redis.cluster.copy.ClusterCopy`), whatever the two topologies;
- a cluster set into a cluster whose shards hold exactly the set's slot ranges: the file
  restore of every shard (:class:`~bdr.engines.redis.cluster.restore.ClusterRestore`);
- anything else (a cluster of another layout, a single node, a single node's set into a
  cluster): the key-level copy of every key;
- ``--node HOST:PORT``: a lost node back as a replica of its shard
  (:class:`~bdr.engines.redis.cluster.node.NodeRejoin`).
"""

from __future__ import annotations

import logging

from bdr.engines.base import Engine, RestoreRequest
from bdr.engines.redis.cluster.topology import cluster_enabled, discover, is_cluster_set
from bdr.engines.redis.selective import KeySelection
from bdr.engines.runbook import Restorer
from bdr.engines.selection import Conflict, RedisSelection
from bdr.errors import UsageError

logger = logging.getLogger(__name__)


def choose(engine: Engine, request: RestoreRequest) -> Restorer:
    """The restorer for ``request``; ``engine`` (the Redis engine) takes the safety and node backups."""
    from bdr.engines.redis.cluster.copy import ClusterCopy
    from bdr.engines.redis.cluster.restore import ClusterRestore

    selection = RedisSelection.expect(request.selection, "redis")
    if selection.node:
        from bdr.engines.redis.cluster.node import NodeRejoin

        return NodeRejoin.new(request, selection.node)
    if request.backup is None:
        raise UsageError(detail="a Redis cluster restores from a backup set, not from an old script's backup: "
                         "restore that into a single instance, back it up with bdr, then restore the set")
    if selection.keys:
        return ClusterCopy.new(engine, request, KeySelection.from_request(request), whole=False)
    target = request.config.redis_instance(request.target)
    conflict = Conflict.of(request.conflict)
    manifest = request.backup.manifest
    if is_cluster_set(manifest) and cluster_enabled(target):
        topology = discover(target)
        layout = [shard["slots"] for shard in manifest.facts["cluster"]["shards"]]
        if topology.same_layout(layout):
            return ClusterRestore.new(engine, request, topology)
        logger.info("cluster %s has another layout than %s (%s): copying keys by slot", target.name,
                    request.backup.id, topology.describe())
    return ClusterCopy.new(engine, request, KeySelection("*", None, conflict, request.dry_run), whole=True)
