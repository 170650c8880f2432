"""Redis Cluster as a source: topology, the cluster set (backup of every shard), verify and list.

Against a real loopback cluster (3 masters + 3 replicas, ``redis-cli --cluster create``,
AOF on): see :mod:`tests.cluster`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path

import pytest
import yaml

from bdr import api
from bdr.config import Targets
from bdr.engines.redis.cluster.slots import key_slot
from bdr.engines.redis.cluster.topology import discover, nodes_topology, shards_topology
from bdr.errors import ServiceError, SkewTooLarge
from bdr.repository import Repository
from bdr.safety import failpoints
from drills.cluster import LoopbackCluster, client_at
from tests.cluster import cluster_config, load_cluster
from tests.faults.harness import bdr


def test_topology_is_read_with_cluster_shards_and_cluster_nodes_alike(loopback_cluster: LoopbackCluster,
                                                                        tmp_path: Path) -> None:
    seed = loopback_cluster.instance()
    shards = shards_topology(seed)
    nodes = nodes_topology(seed)
    assert discover(seed).source == "CLUSTER NODES"  # 7.0: its CLUSTER SHARDS groups replicas by gossip so far
    assert shards.source == "CLUSTER SHARDS" and nodes.source == "CLUSTER NODES"
    assert shards.slots_served == nodes.slots_served == 16384
    assert shards.layout == nodes.layout == ((( 0, 5460),), ((5461, 10922),), ((10923, 16383),))
    for a, b in zip(shards.shards, nodes.shards, strict=True):
        assert a.master.id == b.master.id and a.master.port == b.master.port
        assert {r.id for r in a.replicas} == {r.id for r in b.replicas} and len(a.replicas) == 1
    assert {n.port for n in shards.nodes} == set(loopback_cluster.ports)


def test_key_slots_are_those_of_cluster_keyslot(loopback_cluster: LoopbackCluster) -> None:
    client = client_at(loopback_cluster.seed)
    rng = random.Random(13)
    keys = [b"", b"{", b"}", b"{}", b"{}x", b"x{}", b"{a", b"a}", b"{a}", b"x{a}y", b"{a}{b}", b"{{a}}", b"a{{b}}c",
            b"{user:42}:cart", "caf\u00e9".encode(), bytes(range(256))]
    keys += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) for _ in range(300)]
    for key in keys:
        assert key_slot(key) == int(client.execute_command("CLUSTER", "KEYSLOT", key)), key


def test_every_shard_is_backed_up_from_its_replica_into_one_cluster_set(loopback_cluster: LoopbackCluster,
                                                                         tmp_path: Path) -> None:
    total = load_cluster(loopback_cluster)
    config = cluster_config(tmp_path, loopback_cluster)
    outcome = api.backup(config, "redis")
    parent = outcome.manifest
    facts = parent.facts["cluster"]
    assert parent.method == "cluster" and parent.instance == "production" and len(parent.children) == 3
    assert parent.facts["shard_count"] == 3 and sum(v["keys"] for v in parent.facts["keyspace"].values()) == total
    assert [s["slots"] for s in facts["shards"]] == [[[0, 5460]], [[5461, 10922]], [[10923, 16383]]]
    assert [s["member"] for s in facts["shards"]] == list(parent.children)
    assert facts["slots"] == 16384 and facts["nodes"] == 6
    assert 0 <= facts["skew_seconds"] < 5 and facts["skew_within_rpo"] is True and facts["skew_rpo"] == "sessions"
    repo = Repository.open(config.repository_path())
    for shard in facts["shards"]:
        assert shard["snapshot_node"]["role"] == "replica", shard["reason"]
        assert shard["snapshot_node"]["address"] != shard["master"]["address"]
        member = repo.get(shard["member"]).manifest
        assert member.instance == f"production.shard-{shard['index']}" and member.method == "rdb"
        assert member.facts["cluster_shard"]["slots"] == shard["slots"]
        assert member.facts["content"]["value"] == shard["content"]
        assert member.facts["aof"] is True and any(f.path.startswith("appendonlydir/") for f in member.files)
        assert shard["keys"] == sum(v["keys"] for v in member.facts["keyspace"].values()) > 0
        assert shard["snapshot_at_us"] == member.facts["snapshot_requested_at_us"]
    assert api.verify(config, "latest").ok


def test_a_shard_without_a_healthy_replica_is_backed_up_from_its_master(loopback_cluster: LoopbackCluster,
                                                                         tmp_path: Path) -> None:
    load_cluster(loopback_cluster, users=30)
    first = loopback_cluster.master_ports()[0]
    loopback_cluster.kill(loopback_cluster.replica_of(first)[0])
    outcome = api.backup(cluster_config(tmp_path, loopback_cluster), "redis")
    shards = outcome.manifest.facts["cluster"]["shards"]
    assert shards[0]["snapshot_node"]["address"] == f"127.0.0.1:{first}"
    assert "no healthy replica" in shards[0]["reason"]
    assert [s["snapshot_node"]["role"] for s in shards[1:]] == ["replica", "replica"]


def test_a_backup_that_misses_a_shard_writes_no_set_at_all(loopback_cluster: LoopbackCluster, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    load_cluster(loopback_cluster, users=30)
    config = cluster_config(tmp_path, loopback_cluster)
    monkeypatch.setenv(failpoints.ENV, "backup.commit:error@2")  # the second shard's set fails as it commits
    failpoints._hits.clear()
    with pytest.raises(Exception, match=r"shard \d \(slots .*: .*no cluster set was written \(the 2 shard set\(s\) "
                       r"already written were deleted\)") as caught:
        api.backup(config, "redis")
    monkeypatch.delenv(failpoints.ENV)
    failpoints._hits.clear()
    assert getattr(caught.value, "exit_code", None) == 9  # the failure's own exit code (an I/O error writing)
    repo = Repository.open(config.repository_path())
    assert repo.sets("redis") == [] and repo.damaged("redis") == []
    assert list((config.repository_path() / "redis").iterdir()) == []


def test_shards_further_apart_than_the_sessions_rpo_are_no_backup(loopback_cluster: LoopbackCluster,
                                                                  tmp_path: Path) -> None:
    load_cluster(loopback_cluster, users=30)
    tight = Targets(rpo={**Targets().rpo, "sessions": 0.000001})
    config = cluster_config(tmp_path, loopback_cluster, targets=tight)
    with pytest.raises(SkewTooLarge, match=r"apart, more than the sessions RPO \(1e-06s\)") as caught:
        api.backup(config, "redis")
    assert caught.value.exit_code == 7
    assert Repository.open(config.repository_path()).sets("redis") == []


def test_a_cluster_missing_slots_is_not_backed_up(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    for port in loopback_cluster.ports:  # unassigned everywhere, as redis-cli --cluster does it
        client_at(port).execute_command("CLUSTER", "DELSLOTSRANGE", 6000, 6001)
    with pytest.raises(ServiceError, match=r"only 16382 of 16384 slots are served"):
        api.backup(cluster_config(tmp_path, loopback_cluster), "redis")


def test_verify_restore_test_of_a_cluster_set_loads_every_shard(loopback_cluster: LoopbackCluster,
                                                                tmp_path: Path) -> None:
    load_cluster(loopback_cluster, users=50)
    config = cluster_config(tmp_path, loopback_cluster)
    parent = api.backup(config, "redis").manifest
    report = api.verify(config, parent.id, restore_test=True)
    assert report.ok, [c for c in report.checks if not c.ok]
    names = [c.name for c in report.checks]
    for member in parent.children:
        assert f"{member}: restore test: content" in names and f"{member}: keys in the shard's slots" in names
    assert {"cluster members", "slot coverage", "shard facts"} <= set(names)

    # a shard set gone: the cluster set fails its verify (and latest passes it over from then on)
    repo = Repository.open(config.repository_path())
    repo.delete(repo.get(parent.children[1]))
    with pytest.raises(Exception, match="not found"):
        api.verify(config, parent.id)


def test_verify_finds_a_key_outside_its_shards_slots(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    """A member set whose RDB holds a key of another shard's slots (a file restore could not serve it)."""
    from bdr.engines.redis.cluster.verify import member_checks
    from bdr.repository.manifest import Manifest
    from bdr.runtime.process import spawn_redis

    server = spawn_redis(tmp_path / "plain" / "data")
    try:
        client = server.client()
        client.set("user:1", "x")  # slot 10778: not in 0-5460
        client.save()
        files = server.data_path()
        manifest = Manifest(id="redis-20250101T000000Z-abcdef", source="redis", instance="p.shard-0", method="rdb",
                            started_at="2025-01-01T00:00:00.000000Z", finished_at="2025-01-01T00:00:00.000000Z",
                            files=(), objects=(), facts={"cluster_shard": {"slots": [[0, 5460]]}})
        check, = member_checks(manifest, files)
        assert not check.ok and "1 of 1 keys hash outside slots 0-5460 (e.g. 'user:1')" in check.detail
    finally:
        server.stop()


def test_list_shows_a_cluster_set_as_one_row_with_its_shards(loopback_cluster: LoopbackCluster,
                                                             tmp_path: Path) -> None:
    total = load_cluster(loopback_cluster, users=20)
    config = cluster_config(tmp_path, loopback_cluster)
    parent = api.backup(config, "redis").manifest
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump({"repository": str(config.repository_path()),
                                    "redis": {"production": {"url": loopback_cluster.instance().url,
                                                             "password_env": None}}}))
    run = bdr(path, "--json", "list", "redis")
    assert run.code == 0, run.output
    rows = json.loads(run.stdout)
    assert [r["id"] for r in rows] == [parent.id]
    assert rows[0]["holds"] == f"{total} keys in 3 shards" and rows[0]["instance"] == "production"
    text = bdr(path, "list", "redis", timeout=60)
    assert f"{total} keys in 3 shards" in text.stdout and parent.children[0] not in text.stdout
    shown = bdr(path, "show", parent.id, "--no-sizes", timeout=60)
    assert shown.code == 0 and all(child in shown.stdout for child in parent.children), shown.output
    assert os.environ.get("BDR_FAILPOINTS") is None


def test_keep_n_prunes_a_cluster_set_with_its_shard_sets(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    load_cluster(loopback_cluster, users=10)
    config = cluster_config(tmp_path, loopback_cluster)
    first = api.backup(config, "redis").manifest
    second = api.backup(config, "redis", keep=1).manifest
    repo = Repository.open(config.repository_path())
    left = {b.id for b in repo.sets("redis")}
    assert left == {second.id, *second.children}
    assert not left & {first.id, *first.children}


def test_config_changes_are_not_needed_for_a_cluster(tmp_path: Path, loopback_cluster: LoopbackCluster) -> None:
    """bdr.yaml names one node; the rest is discovered (a replica's url works as well as a master's)."""
    replica = loopback_cluster.replica_of(loopback_cluster.master_ports()[0])[0]
    config = cluster_config(tmp_path, loopback_cluster)
    config = dataclasses.replace(config, redis={"production": dataclasses.replace(
        config.redis["production"], url=f"redis://127.0.0.1:{replica}/0")})
    load_cluster(loopback_cluster, users=10)
    assert len(api.backup(config, "redis").manifest.children) == 3


M1, M2, M3, R1, R2, GONE, SPARE = (f"{c * 8}{'0' * 32}" for c in "abcdefg")
NODES = "\n".join([
    f"{R1} 127.0.0.1:30004@31004,host-a slave {M1} 0 1426238317239 4 connected",
    f"{M2} 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922",
    f"{M3} 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383 [16000->-{M2}]",
    f"{R2} 127.0.0.1:30005@31005 slave {M2} 0 1426238316232 5 connected",
    f"{GONE} :0@0 slave,fail,noaddr {M3} 1426238317741 1426238317741 6 disconnected",
    f"{M1} 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5000 5001-5460",
    f"{SPARE} 127.0.0.1:30009@31009 master - 0 0 9 connected",
]) + "\n"


def test_cluster_nodes_lines_are_read_as_redis_documents_them() -> None:
    """The format of CLUSTER NODES (redis.io): addresses with hostnames, failed nodes without one, slots being
    migrated (not counted as served elsewhere), adjacent ranges joined, a master without slots kept apart."""
    from bdr.engines.redis.cluster.topology import _nodes_reply, _topology

    topology = _topology(_nodes_reply(NODES), "CLUSTER NODES")
    assert topology.layout == (((0, 5460),), ((5461, 10922),), ((10923, 16383),))
    first, second, third = topology.shards
    assert first.master.port == 30001 and [r.port for r in first.replicas] == [30004]
    assert [r.port for r in second.replicas] == [30005]
    (failed,) = third.replicas
    assert failed.health == "failed" and failed.port == 0 and failed.id == GONE
    assert [n.port for n in topology.spare] == [30009]
    assert topology.slots_served == 16384
