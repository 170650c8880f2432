"""Benchmark of a Redis Cluster backup and restore, as ratios against floors measured in the same run.

A loopback cluster of 3 masters (no replicas, so that the backup reads the same servers as the
floor; Redis's default ``cluster-node-timeout`` of 15 s, as production runs), each filled
server-side by a Lua script with ``--keys`` keys (default 1,000,000 per shard) of the shapes
of ``bench/redis_backup.py`` (strings, hashes, lists, sets, sorted sets; 10% with a TTL),
spread over a thousand hash slots of each master (hash tags the master serves).

**Backup** (``bdr.api.backup(config, "redis")``: the topology read, every shard in parallel an
honest BGSAVE whose RDB and AOF are copied into the repository while the C parser digests them,
a sealed member set per shard, the cluster set last). Floor: on the three masters **in
parallel**, ``BGSAVE`` (polled every 10 ms) + ``cp dump.rdb`` (and the AOF directory, which bdr
copies too) into the same file system, timed until the last shard is done. Aim: 1.2x.

**Restore** into the same cluster emptied first (the total-loss case: a rebuilt cluster with
the same slot ranges; no keys, so no safety set), every runbook step: fetch, check, stop,
replace, start, verify (per shard keys loaded, counts, content sample; ``cluster_state:ok``, all
slots). Floor: **three cold loads in parallel**: a ``redis-server`` started on a data directory
holding each shard's RDB (copied and fsynced beforehand), timed until the last reports
``loading:0``. Aim: 1.2x. For reference, the least a restore *of cluster nodes* takes: the
shards' files swapped by hand into the stopped masters (staged beforehand), the masters
started with their own configuration, until every node says ``cluster_state:ok``: a
restarted master keeps its cluster state ``fail`` for 2 s after it has loaded
(``CLUSTER_WRITABLE_DELAY`` in Redis), which no restore of a cluster node can avoid. The restore's
per-step times come from ``result.steps``; the phases inside them (``~``: the fetch's copies, the
stop, the loads, the wait for ``cluster_state:ok``, the per-shard checks) are timed by wrapping bdr
functions for the run, as wall-clock spans from the first shard's call to the last one's end.

Runs are interleaved (floor, bdr, floor, bdr...) so the load of a shared machine falls on both;
each row shows the median of ``--runs`` runs, min-max, the spread and the CPU stall (see
``bench/redis_backup.py``). Nothing is asserted. Run: ``.venv/bin/python bench/redis_cluster.py
[--keys 1000000] [--runs 3] [--only backup restore]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis_backup import (
    Series,
    Verdict,
    bgsave_and_wait,
    fsync_file,
    interleaved,
    load_note,
    print_rows,
    print_summary,
    revision,
    warm_up,
)

from bdr import api
from bdr.config import Config
from bdr.engines.redis.cluster.slots import key_slot
from bdr.repository import Repository
from bdr.runtime.process import spawn_redis
from bdr.util.waiting import wait_for
from drills.cluster import LoopbackCluster, client_at, cluster_ok

AIM = 1.2
BATCH = 10_000
TAGS_PER_SHARD = 1_000

POPULATE = """
local first, last, salt = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local tags = {}
for t = 4, #ARGV do tags[#tags + 1] = ARGV[t] end
for i = first, last do
  local p = '{' .. tags[(i % #tags) + 1] .. '}'
  local kind = i % 20
  local key
  if kind < 10 then
    key = p .. 'user:session:' .. i
    redis.call('SET', key, 'token:' .. salt .. i .. ':abcdefghijklmnopqrstuvwxyz0123456789')
  elseif kind < 12 then
    key = p .. 'other:cache:' .. i
    redis.call('SET', key, salt .. string.rep('x', 32))
  elseif kind < 15 then
    key = p .. 'user:profile:' .. i
    redis.call('HSET', key, 'name', 'user ' .. salt .. i, 'plan', 'pro', 'seen', i)
  elseif kind < 17 then
    key = p .. 'user:history:' .. i
    redis.call('RPUSH', key, 'login', 'search' .. salt, 'chat:' .. i)
  elseif kind < 19 then
    key = p .. 'user:tags:' .. i
    redis.call('SADD', key, 'a' .. salt, 'b' .. i % 100, i)
  else
    key = p .. 'user:scores:' .. i
    redis.call('ZADD', key, 1, 'x' .. salt, i / 7, 'y', -i, 'z')
  end
  if i % 10 == 3 then redis.call('PEXPIRE', key, 86400000 + i % 1000) end
end
return last - first + 1
"""


def parallel(actions: list[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=len(actions)) as pool:
        return [f.result() for f in [pool.submit(a) for a in actions]]


@dataclass
class Lab:
    """The cluster, its bdr configuration and a repository."""

    cluster: LoopbackCluster
    config: Config
    workdir: Path
    keys: int

    @property
    def repo(self) -> Repository:
        return Repository.open(self.config.repository_path())

    def tags(self, port: int) -> list[str]:
        ranges = self.cluster.view()[port].slots
        out: list[str] = []
        i = 0
        while len(out) < TAGS_PER_SHARD:
            tag = f"s{i}"
            slot = key_slot(tag.encode())
            if any(lo <= slot <= hi for lo, hi in ranges):
                out.append(tag)
            i += 1
        return out

    def populate(self) -> None:
        def one(port: int) -> None:
            client = client_at(port, timeout=600)
            script = client.register_script(POPULATE)
            tags = self.tags(port)
            for first in range(0, self.keys, BATCH):
                script(args=[first, min(first + BATCH, self.keys) - 1, "a", *tags])

        parallel([lambda p=p: one(p) for p in self.cluster.master_ports()])  # type: ignore[misc]

    def newest(self) -> str:
        sets = [b for b in self.repo.sets("redis") if b.manifest.method == "cluster" and "safety" not in b.tags]
        return sets[0].id

    def drop_sets(self, keep: str | None = None) -> None:
        """Delete every set but ``keep`` and its shard sets (safety sets of earlier runs included)."""
        repo = self.repo
        kept = {keep, *repo.get(keep).manifest.children} if keep else set()
        for backup in repo.sets("redis"):
            if backup.id not in kept:
                repo.delete(backup)


@contextmanager
def lab(keys: int, workdir: Path) -> Iterator[Lab]:
    cluster = LoopbackCluster(workdir / "cluster", masters=3, replicas=0, appendonly=True, timeout_ms=15_000,
                              extra=("--appendfsync", "everysec", "--auto-aof-rewrite-percentage", "0")).start()
    try:
        config = dataclasses.replace(Config(), repository=str(workdir / "repo"),
                                     redis={"production": dataclasses.replace(cluster.instance("production"),
                                                                              digest_max_keys=0)},
                                     redis_default="production")
        here = Lab(cluster, config, workdir, keys)
        started = time.perf_counter()
        here.populate()
        for port in cluster.master_ports():  # the AOF base holds the data, as on a server that ran a while
            client = client_at(port, timeout=600)
            client.bgrewriteaof()
            while int(client.info("persistence")["aof_rewrite_in_progress"]) or \
                    int(client.info("persistence")["aof_rewrite_scheduled"]):
                time.sleep(0.05)
        print(f"populated 3 shards x {keys} keys in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        yield here
    finally:
        cluster.stop()


# --- backup ------------------------------------------------------------------------------------------------


def measure_backup_floor(here: Lab, series: Series) -> None:
    dest = here.workdir / "floor"
    shutil.rmtree(dest, ignore_errors=True)

    def one(port: int) -> None:
        client = client_at(port, timeout=600)
        bgsave_and_wait(client)
        data = here.cluster.data_dir(port)
        out = dest / str(port)
        out.mkdir(parents=True)
        shutil.copyfile(data / "dump.rdb", out / "dump.rdb")
        shutil.copytree(data / "appendonlydir", out / "appendonlydir")

    started = time.perf_counter()
    parallel([lambda p=p: one(p) for p in here.cluster.master_ports()])  # type: ignore[misc]
    series.add(time.perf_counter() - started)
    shutil.rmtree(dest, ignore_errors=True)


def measure_bdr_backup(here: Lab, series: Series) -> None:
    here.drop_sets()
    started = time.perf_counter()
    outcome = api.backup(here.config, "redis")
    seconds = time.perf_counter() - started
    shards = outcome.manifest.facts["cluster"]["shards"]
    assert all(s["keys"] == here.keys for s in shards), [s["keys"] for s in shards]
    mib = shards[0]["stored_bytes"] >> 20
    series.add(seconds, {"skew": outcome.manifest.facts["skew_seconds"]},
               note=f"{len(shards)} member sets of {mib} MiB each, from the masters")


def bench_backup(here: Lab, runs: int) -> tuple[Series, Series]:
    floor = Series("floor: BGSAVE + cp (RDB and AOF dir), 3 masters in parallel")
    ours = Series("bdr backup redis (cluster set, 3 shards in parallel)")
    interleaved(runs, [(floor, lambda s: measure_backup_floor(here, s)), (ours, lambda s: measure_bdr_backup(here, s))])
    print_rows(f"backup, 3 shards x {here.keys} keys", floor, [ours], AIM)
    return floor, ours


# --- restore -----------------------------------------------------------------------------------------------


def measure_cold_loads(here: Lab, series: Series) -> None:
    parent = here.repo.get(here.newest())
    rdbs = []
    for index, member in enumerate(parent.manifest.children):
        files = here.workdir / "cold" / f"shard-{index}"
        shutil.rmtree(files, ignore_errors=True)
        from bdr.repository import extract_set

        extract_set(here.repo, here.repo.get(member), files, None)
        data = files / "data"
        data.mkdir()
        (files / "dump.rdb").rename(data / "dump.rdb")
        fsync_file(data / "dump.rdb")
        rdbs.append(data)

    def one(data: Path) -> Any:
        return spawn_redis(data, name="cold", timeout=600)

    started = time.perf_counter()
    servers = parallel([lambda d=d: one(d) for d in rdbs])  # type: ignore[misc]
    seconds = time.perf_counter() - started
    try:
        loaded = [int(s.client(timeout=60).dbsize()) for s in servers]
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(here.workdir / "cold", ignore_errors=True)
    assert loaded == [here.keys] * 3, loaded
    series.add(seconds)


def measure_cluster_restart(here: Lab, series: Series) -> None:
    """Reference: the shards' files swapped into the stopped masters by hand (RDB + an AOF directory whose base is
    that RDB, staged beforehand), the masters started, until every node says ``cluster_state:ok``."""
    from bdr.repository import extract_set

    parent = here.repo.get(here.newest())
    ports = here.cluster.master_ports()
    staged = []
    for port, member in zip(ports, parent.manifest.children, strict=True):
        files = here.workdir / "staged" / str(port)
        shutil.rmtree(files, ignore_errors=True)
        extract_set(here.repo, here.repo.get(member), files, None)
        aof = files / "new-aof"
        aof.mkdir()
        (aof / "appendonly.aof.1.base.rdb").hardlink_to(files / "dump.rdb")
        (aof / "appendonly.aof.manifest").write_text("file appendonly.aof.1.base.rdb seq 1 type b\n")
        fsync_file(files / "dump.rdb")
        staged.append((port, files))
    launches = {port: node_launch(here, port) for port in ports}

    def restart(item: tuple[int, Path]) -> None:
        port, files = item
        data = here.cluster.data_dir(port)
        with contextlib.suppress(redis.RedisError):
            client_at(port).shutdown(nosave=True)
        wait_for(lambda: not here.cluster.answers(port), 30, 0.01)
        shutil.rmtree(data / "appendonlydir", ignore_errors=True)
        os.replace(files / "new-aof", data / "appendonlydir")
        os.replace(files / "dump.rdb", data / "dump.rdb")
        launches[port].start(timeout=600)

    started = time.perf_counter()
    parallel([lambda i=i: restart(i) for i in staged])  # type: ignore[misc]
    wait_for(lambda: all(cluster_ok(p) for p in ports), 120, 0.01)
    series.add(time.perf_counter() - started)
    shutil.rmtree(here.workdir / "staged", ignore_errors=True)
    assert here.cluster.keys_total() == 3 * here.keys


def node_launch(here: Lab, port: int) -> Any:
    """The node of ``port`` as bdr's process runtime sees it (to start it again as it was launched)."""
    from bdr.engines.redis.cluster.topology import Node, node_instance
    from bdr.runtime.process import attach

    process = attach(node_instance(here.config.redis["production"], Node("", "127.0.0.1", port, "master")))
    process.launch()
    return process


RESTORE_SPANS = (
    ("bdr.engines.redis.restore", "extract_set", "fetch", "~ fetch: shard sets copied out, sha256 checked"),
    ("bdr.runtime.process", "RedisProcess.stop", "stop", "~ stop: SHUTDOWN NOSAVE until the ports are free"),
    ("bdr.runtime.process", "RedisProcess.start", "start", "~ start: exec until loading:0"),
    ("bdr.engines.redis.cluster.restore", "wait_healthy", "verify",
     "~ verify: until cluster_state:ok on every node (CLUSTER_WRITABLE_DELAY)"),
    ("bdr.engines.redis.restore", "verify_live", "verify", "~ verify: per-shard checks (counts, content sample)"),
    ("bdr.engines.redis.cluster.restore", "health_checks", "verify", "~ verify: the health checks reported"),
)
"""(module, attribute, step, label): phases timed as wall-clock spans, from the first call's start to the last
call's end (the shards run them in parallel threads)."""


@contextlib.contextmanager
def spans(targets: Sequence[tuple[str, str, str, str]]) -> Iterator[dict[str, tuple[float, float]]]:
    """For the block, wrap each target with a timer; yields label -> (first start, last end), perf_counter."""
    import importlib
    import threading

    lock = threading.Lock()
    times: dict[str, tuple[float, float]] = {}
    undo: list[tuple[Any, str, Any]] = []

    def timed(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                with lock:
                    first, _ = times.get(label, (started, 0.0))
                    times[label] = (min(first, started), time.perf_counter())
        return wrapper

    for module_name, path, _, label in targets:
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        undo.append((owner, name, original))
        setattr(owner, name, timed(label, original))
    try:
        yield times
    finally:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)


def measure_bdr_restore(here: Lab, series: Series) -> None:
    ref = here.newest()
    here.drop_sets(keep=ref)
    for port in here.cluster.master_ports():  # a rebuilt cluster: same slots, no keys
        client_at(port, timeout=600).flushall()
    with spans(RESTORE_SPANS) as phases:
        started = time.perf_counter()
        result = api.restore(here.config, "redis", ref)
        seconds = time.perf_counter() - started
    assert result.ok, [c for c in result.checks if not c.ok]
    assert here.cluster.keys_total() == 3 * here.keys
    steps: dict[str, float] = {}
    for step in result.steps:
        steps[step.name] = step.seconds
        for _, _, owner, label in RESTORE_SPANS:
            if owner == step.name and label in phases:
                first, last = phases[label]
                steps[label] = last - first
    steps["outside the steps (the set resolved, journal)"] = seconds - sum(s.seconds for s in result.steps)
    series.add(seconds, steps)


def bench_restore(here: Lab, runs: int) -> tuple[Series, Series, Series]:
    if not any(b.manifest.method == "cluster" for b in here.repo.sets("redis")):
        api.backup(here.config, "redis")
    floor = Series("floor: 3 cold redis-server loads of the shards' RDBs in parallel")
    ours = Series("bdr restore redis (same layout, into the emptied cluster)")
    restart = Series("reference: files swapped by hand, 3 masters restarted, to cluster_state:ok")
    interleaved(runs, [(floor, lambda s: measure_cold_loads(here, s)),
                       (ours, lambda s: measure_bdr_restore(here, s)),
                       (restart, lambda s: measure_cluster_restart(here, s))])
    print_rows(f"restore, 3 shards x {here.keys} keys", floor, [ours, restart], AIM)
    return floor, ours, restart


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, nargs="+", default=[1_000_000], help="keys per shard (default 1M)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (median shown)")
    parser.add_argument("--only", nargs="+", choices=["backup", "restore"], default=["backup", "restore"])
    args, _ = parser.parse_known_args(argv)
    warm_up()
    import bdr.engines.redis.cluster.backup
    import bdr.engines.redis.cluster.restore  # noqa: F401

    print(f"{revision()}; {load_note()} at the start")
    verdicts: list[Verdict] = []
    for keys in args.keys:
        size = f"{keys / 1e6:g}Mx3" if keys >= 1_000_000 else f"{keys}x3"
        workdir = Path(tempfile.mkdtemp(prefix="bdr-bench-cluster-"))
        try:
            with lab(keys, workdir) as here:
                if "backup" in args.only:
                    floor, ours = bench_backup(here, args.runs)
                    verdicts.append(Verdict(size, "cluster backup, 3 shards", ours, floor, AIM))
                if "restore" in args.only:
                    floor, ours, restart = bench_restore(here, args.runs)
                    verdicts.append(Verdict(size, "cluster restore, same layout", ours, floor, AIM))
                    verdicts.append(Verdict(size, "  same, vs restarting the masters by hand", ours, restart, None))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    print_summary(verdicts)
    print(f"{load_note()} at the end")


if __name__ == "__main__":
    main()
