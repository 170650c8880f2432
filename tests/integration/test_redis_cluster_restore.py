"""Restoring a cluster set: into the same layout (file by file, rolled back whole, resumable), into another
layout or a single node (key-level copy routed by slot), and ``--keys`` across every shard.

Against real loopback clusters (:mod:`tests.cluster`); the killed restores run bdr as the operator
does (a CLI subprocess killed at a named step, :mod:`tests.faults.harness`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bdr import api
from bdr.errors import SelectionConflict
from bdr.repository import Repository
from bdr.runtime.process import RedisProcess, spawn_redis
from bdr.safety.journal import Journal
from drills.cluster import LoopbackCluster, client_at
from tests.cluster import cluster_config, dump_cluster, dump_node, load_cluster
from tests.faults.harness import KILLED, bdr
from tests.redis_data import assert_same_data

SLACK_MS = 500
"""A copied key's TTL is re-armed on arrival: its absolute expiry may move by the copy's latency."""


def scramble(cluster: LoopbackCluster) -> None:
    """What a restore must undo: keys deleted on every shard, one changed, one added."""
    client = cluster.client()
    for key in client.scan_iter(match="user:*", count=500):
        client.delete(key)
    client.set("profile:1", "overwritten")
    client.set("after:the:backup", "1")
    client.close()


def replicas_hold_their_masters_data(cluster: LoopbackCluster) -> None:
    for master in cluster.master_ports():
        (replica,) = cluster.replica_of(master)
        assert client_at(replica).dbsize() == client_at(master).dbsize()


def test_restore_into_the_same_layout_brings_every_shard_back(loopback_cluster: LoopbackCluster,
                                                              tmp_path: Path) -> None:
    load_cluster(loopback_cluster)
    config = cluster_config(tmp_path, loopback_cluster)
    parent = api.backup(config, "redis").manifest
    backed_up = dump_cluster(loopback_cluster, replicas=True)  # the shards were snapshot on the replicas
    ids = {p: client_at(p).execute_command("CLUSTER", "MYID") for p in loopback_cluster.ports}
    scramble(loopback_cluster)
    before_restore = dump_cluster(loopback_cluster)

    result = api.restore(config, "redis", "latest")

    assert result.ok, [c for c in result.checks if not c.ok]
    assert [s.name for s in result.steps] == ["fetch", "check", "safety backup", "stop", "replace", "start",
                                              "verify", "finish"]
    assert_same_data(dump_cluster(loopback_cluster), backed_up)
    replicas_hold_their_masters_data(loopback_cluster)
    assert {p: client_at(p).execute_command("CLUSTER", "MYID") for p in loopback_cluster.ports} == ids
    names = {c.name for c in result.checks}
    for shard in range(3):
        assert {f"shard {shard}: keys loaded", f"shard {shard}: key counts",
                f"shard {shard}: content sample"} <= names
    assert {"cluster state", "slots served", "replicas in sync"} <= names
    # the safety set is a cluster set of the masters, and restores what was there before
    repo = Repository.open(config.repository_path())
    safety = repo.get(str(result.safety_id)).manifest
    assert "safety" in safety.tags and len(safety.children) == 3 and safety.id != parent.id
    assert all(s["snapshot_node"]["role"] == "master" for s in safety.facts["cluster"]["shards"])
    undo = api.restore(config, "redis", safety.id)
    assert undo.ok
    assert_same_data(dump_cluster(loopback_cluster), before_restore)


def test_a_shard_that_fails_rolls_the_whole_cluster_back(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    load_cluster(loopback_cluster, users=100)
    config = cluster_config(tmp_path, loopback_cluster)
    api.backup(config, "redis")
    scramble(loopback_cluster)
    before = dump_cluster(loopback_cluster)
    masters = loopback_cluster.master_ports()
    # the swap of one node's files fails while the others' are swapped already (the six nodes swap at once)
    path = write_yaml(tmp_path, loopback_cluster)
    run = bdr(path, "restore", "redis", "latest", "--yes", failpoints="restore.swap:error@4")
    assert run.code == 10, run.output
    assert "failed at step 'replace'" in run.stderr and "rolled back" in run.stderr, run.output
    loopback_cluster.wait_ok()
    assert_same_data(dump_cluster(loopback_cluster), before)
    assert loopback_cluster.master_ports() == masters
    replicas_hold_their_masters_data(loopback_cluster)
    assert Journal.at(config.repository_path()).entries() == []


def write_yaml(tmp_path: Path, cluster: LoopbackCluster, **redis_settings: object) -> Path:
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump({
        "repository": str(tmp_path / "repo"),
        "redis": {"production": {"url": cluster.instance().url, "password_env": None, **redis_settings}},
        "files": {"root": str(tmp_path / "no-config"), "paths": ["none"]},
        "qdrant": {"production": {"path": str(tmp_path / "qdrant")}},
    }))
    return path


@pytest.mark.parametrize(("step", "recovery"), [("start", "resume"), ("verify", "abort")])
def test_a_killed_cluster_restore_is_resumed_or_aborted(loopback_cluster: LoopbackCluster, tmp_path: Path,
                                                        step: str, recovery: str) -> None:
    load_cluster(loopback_cluster, users=100)
    path = write_yaml(tmp_path, loopback_cluster)
    config = cluster_config(tmp_path, loopback_cluster)
    api.backup(config, "redis")
    backed_up = dump_cluster(loopback_cluster, replicas=True)
    scramble(loopback_cluster)
    before = dump_cluster(loopback_cluster)

    killed = bdr(path, "restore", "redis", "latest", "--yes", failpoints=f"restore.{step}:kill")
    assert killed.code == KILLED, killed.output
    (entry,) = Journal.at(tmp_path / "repo").entries()
    assert entry.state["mode"] == "cluster" and len(entry.state["parts"]) == 6 and entry.step == step
    refused = bdr(path, "backup", "redis")
    assert refused.code == 13 and "--resume" in refused.stderr and "--abort" in refused.stderr, refused.output

    done = bdr(path, "restore", "redis", f"--{recovery}")
    assert done.code == 0, done.output
    loopback_cluster.wait_ok()
    for port in loopback_cluster.master_ports():
        client_at(port).execute_command("CLIENT", "UNPAUSE")  # a pause the killed bdr held ends by itself in 30 s
    assert_same_data(dump_cluster(loopback_cluster), backed_up if recovery == "resume" else before)
    replicas_hold_their_masters_data(loopback_cluster)
    assert Journal.at(tmp_path / "repo").entries() == []


@pytest.fixture
def four_masters(tmp_path: Path) -> Iterator[LoopbackCluster]:
    cluster = LoopbackCluster(tmp_path / "other", masters=4, replicas=0).start()
    yield cluster
    cluster.stop()


def test_restore_into_a_cluster_of_another_layout_copies_every_key_by_slot(
        loopback_cluster: LoopbackCluster, four_masters: LoopbackCluster, tmp_path: Path) -> None:
    load_cluster(loopback_cluster)
    config = cluster_config(tmp_path, loopback_cluster, four_masters.instance("other"))
    parent = api.backup(config, "redis").manifest
    backed_up = dump_cluster(loopback_cluster, replicas=True)

    result = api.restore(config, "redis", parent.id, target="other")

    assert result.ok, [c for c in result.checks if not c.ok]
    assert result.facts["routed_by_slot"] is True and result.facts["whole"] is True
    assert [s.name for s in result.steps] == ["fetch", "check", "safety backup", "replace", "verify", "finish"]
    assert_same_data(dump_cluster(four_masters), backed_up, ttl_slack_ms=SLACK_MS)
    names = [c.name for c in result.checks]
    assert "key counts" in names and sum(n.startswith("content sample (shard") for n in names) >= 3
    assert result.counts["copied"] == len(backed_up)

    # again: every key exists now, and --conflict fail (the default) refuses before anything is written
    with pytest.raises(SelectionConflict):
        api.restore(config, "redis", parent.id, target="other")


def test_restore_of_a_cluster_set_into_a_single_node(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    load_cluster(loopback_cluster)
    single: RedisProcess = spawn_redis(tmp_path / "single" / "data", name="single")
    try:
        config = cluster_config(tmp_path, loopback_cluster, single.instance)
        api.backup(config, "redis")
        backed_up = dump_cluster(loopback_cluster, replicas=True)
        result = api.restore(config, "redis", "latest", target="single")
        assert result.ok, [c for c in result.checks if not c.ok]
        assert result.facts["routed_by_slot"] is False
        assert_same_data(dump_node(single.client()), backed_up, ttl_slack_ms=SLACK_MS)
    finally:
        single.stop()


def test_a_single_node_set_restores_into_a_cluster_by_slot(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    single = spawn_redis(tmp_path / "single" / "data", name="single")
    try:
        client = single.client()
        for i in range(500):
            client.set(f"user:{i}", i)
        client.set("{conv:1}:a", "x", px=3_600_000)
        config = cluster_config(tmp_path, loopback_cluster, single.instance)
        outcome = api.backup(config, "redis", instance="single")
        want = dump_node(client)
        result = api.restore(config, "redis", outcome.manifest.id)
        assert result.ok, [c for c in result.checks if not c.ok]
        got = dump_cluster(loopback_cluster)
        assert_same_data(got, want, ttl_slack_ms=SLACK_MS)
        assert all(client_at(p).dbsize() > 100 for p in loopback_cluster.master_ports())  # spread by slot

        single.client(db=3).set("elsewhere", "1")
        other = api.backup(config, "redis", instance="single").manifest
        with pytest.raises(Exception, match=r"holds 1 matching keys in db 3, and a cluster has only db 0"):
            api.restore(config, "redis", other.id)
    finally:
        single.stop()


def test_selective_restore_across_every_shard(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    load_cluster(loopback_cluster)
    config = cluster_config(tmp_path, loopback_cluster)
    api.backup(config, "redis")
    everything = dump_cluster(loopback_cluster, replicas=True)
    users = {k: v for k, v in everything.items() if k[1].startswith(b"user:")}
    others = {k: v for k, v in everything.items() if not k[1].startswith(b"user:")}
    client = loopback_cluster.client()
    deleted = sum(client.delete(k[1]) for k in users)
    client.set("user:0", "written since")  # a live key wins with --conflict skip
    assert deleted == 300

    dry = api.restore(config, "redis", "latest", keys="user:*", conflict="skip", dry_run=True)
    assert dry.counts["copied"] == 299 and dry.counts["skipped"] == 1
    assert client.exists("user:1") == 0
    result = api.restore(config, "redis", "latest", keys="user:*", conflict="skip")

    assert result.ok and result.counts["copied"] == 299 and result.counts["skipped"] == 1, result.counts
    assert client.get("user:0") == b"written since"
    now = dump_cluster(loopback_cluster)
    assert_same_data({k: v for k, v in now.items() if not k[1].startswith(b"user:")}, others)
    assert_same_data({k: v for k, v in now.items() if k[1].startswith(b"user:") and k[1] != b"user:0"},
                     {k: v for k, v in users.items() if k[1] != b"user:0"}, ttl_slack_ms=SLACK_MS)
    per_master = [p for p in loopback_cluster.master_ports() if any(client_at(p).scan_iter(match="user:*"))]
    assert len(per_master) == 3

    replaced = api.restore(config, "redis", "latest", keys="user:0", conflict="replace")
    assert replaced.safety_id is not None and client.get("user:0") == b"name-0"
    safety = Repository.open(config.repository_path()).get(replaced.safety_id).manifest
    assert len(safety.children) == 3  # the target's safety set is a cluster set too
    client.close()


def test_restore_json_names_the_shards(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    load_cluster(loopback_cluster, users=20)
    path = write_yaml(tmp_path, loopback_cluster)
    made = bdr(path, "--json", "backup", "redis")
    assert made.code == 0, made.output
    backed = json.loads(made.stdout)
    assert backed["method"] == "cluster" and backed["facts"]["shard_count"] == 3
    run = bdr(path, "--json", "restore", "redis", "latest", "--dry-run")
    assert run.code == 0, run.output
    dry = json.loads(run.stdout)
    assert dry["dry_run"] and len(dry["facts"]["would"]) == 4  # three masters and the replicas
