"""A real Redis Cluster on 127.0.0.1 for the tests: 3 masters + 3 replicas, and a config that points at it.

The cluster itself is :class:`drills.cluster.LoopbackCluster` (``redis-server
--cluster-enabled yes`` nodes, ``redis-cli --cluster create ... --cluster-replicas 1
--cluster-yes``); this module adds the pytest fixtures and a workload of every type spread
over all slots (hash tags included, TTLs on some keys).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.connection import Connection

from bdr.config import Config, RedisInstance
from bdr.engines.redis.cluster.slots import key_slot
from drills.cluster import LoopbackCluster, client_at
from tests.redis_data import HOUR_MS, KeyState, Snapshot, dump_everything, load_every_type


@pytest.fixture
def loopback_cluster(tmp_path: Path) -> Iterator[LoopbackCluster]:
    """3 masters + 3 replicas with AOF on (as production runs), removed afterwards whatever bdr did to them."""
    cluster = LoopbackCluster(tmp_path / "cluster", masters=3, replicas=1, appendonly=True).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def cluster_config(tmp_path: Path, cluster: LoopbackCluster, *others: RedisInstance, **changes: object) -> Config:
    """bdr.yaml for the cluster (``production``: one node's url) and any other instances."""
    instances = {"production": cluster.instance("production"), **{i.name: i for i in others}}
    return dataclasses.replace(Config(), repository=str(tmp_path / "repo"), redis=instances,
                               redis_default="production", **changes)  # type: ignore[arg-type]


def tag_for(cluster: LoopbackCluster, port: int) -> str:
    """A hash tag (``{t3}``) whose slot the master of ``port`` serves."""
    for i in range(10_000):
        tag = f"t{i}"
        if cluster.owner_of(key_slot(tag.encode())) == port:
            return "{" + tag + "}"
    raise AssertionError(f"no hash tag lands on {port}")


def load_cluster(cluster: LoopbackCluster, users: int = 300) -> int:
    """Keys of every type and encoding on every master (under a hash tag it serves), and ``users`` users,
    profiles and sessions (with a TTL) spread over every slot; how many keys in all."""
    for port in cluster.master_ports():
        load_every_type(client_at(port), prefix=tag_for(cluster, port), dbs=(0,))
    client = cluster.client()
    pipe = client.pipeline(transaction=False)
    for i in range(users):
        pipe.set(f"user:{i}", f"name-{i}")
        pipe.hset(f"profile:{i}", mapping={"name": f"n{i}", "age": str(i % 90)})
        pipe.set(f"session:{i}", f"token-{i}", px=HOUR_MS + i)
    pipe.execute()
    client.close()
    return cluster.keys_total()


def _readonly(connection: Connection) -> None:
    """Connect as usual, then READONLY: a cluster replica answers reads of its master's slots."""
    connection.on_connect()
    connection.send_command("READONLY")
    connection.read_response()


def dump_cluster(cluster: LoopbackCluster, replicas: bool = False) -> Snapshot:
    """Every key of every master (or of each master's replica) as DUMP payload plus absolute expiry
    (:func:`tests.redis_data.dump_everything`).

    A replica's data is what a backup taken from it holds, and it is not byte for byte its
    master's: a stream consumer's seen and active times are set on the replica as it applies the
    replicated XCLAIM, a few milliseconds after the master's.
    """
    out: Snapshot = {}
    for port in cluster.master_ports():
        if replicas:
            (replica,) = cluster.replica_of(port)
            client = redis.Redis(host="127.0.0.1", port=replica, socket_timeout=10.0, redis_connect_func=_readonly)
        else:
            client = client_at(port)
        out.update(dump_node(client))
    return out


def dump_node(client: redis.Redis) -> Snapshot:
    """db 0 of one server as :func:`dump_cluster` gives it (streams by what survives a reload)."""
    snapshot = dump_everything(client, {0: None})
    for (db, key), state in list(snapshot.items()):
        if client.type(key) == b"stream":
            snapshot[(db, key)] = KeyState(_stream_state(client, key), state.expire_at_ms)
    return snapshot


def _stream_state(client: redis.Redis, key: bytes) -> bytes:
    """A stream as it survives a reload: entries, groups, pending entries and their consumers; no times.

    Redis 7.0 sets a consumer's seen time (and a pending entry's delivery time) when it replays
    the XCLAIM of an AOF or of the replication stream, and an AOF replay leaves a group's
    entries-read unknown: a server that loads an AOF holds other times and counters.
    """
    entries = client.xrange(key)
    groups = []
    for group in client.xinfo_groups(key):
        pending = client.xpending_range(key, group["name"], "-", "+", 10_000)
        groups.append((group["name"], group["last-delivered-id"],
                       [(p["message_id"], p["consumer"], p["times_delivered"]) for p in pending]))
    return repr((entries, groups, client.xinfo_stream(key)["last-generated-id"])).encode()


def flush_cluster(cluster: LoopbackCluster) -> None:
    for port in cluster.master_ports():
        client_at(port).flushall()


def node_client(port: int) -> redis.Redis:
    return client_at(port)
