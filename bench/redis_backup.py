"""Benchmarks of the Redis engine, as ratios against floors measured in the same run, on the same servers.

For each ``--keys`` size (default 1,000,000 and 5,000,000) a private redis-server
("production", on a free loopback port) is filled server-side by a Lua script: 50% strings,
15% hashes, 10% lists, 10% sets, 5% sorted sets, all named ``user:*``, plus 10% strings named
``other:*``; 10% of all keys have a TTL (a day: none expires during the run). Then:

**Backup** (``bdr.api.backup(config, "redis")``: an honest BGSAVE, the RDB copied into a local
repository while bdr's C parser digests it in a thread (``bdr-rdb-1``), a sealed manifest).
Floor: ``BGSAVE`` (polled every 10 ms until ``rdb_saves`` moves) + ``cp dump.rdb`` into the
same file system: what the old ``backup-redis.sh`` did, and the least any RDB backup can do
(Redis must write the snapshot, a backup must copy it out of the data directory). For
reference: the floor plus an ``fsync`` of the copy (bdr fsyncs every object), and
``--compress``. Aim: 1.15x the floor's time.

**Restore** (``bdr.api.restore(config, "redis", <set>, target="target")``: every step of the
runbook, fetch, check, safety backup, stop, replace, start, verify, finish), into a running
instance that is (a) *empty* (no keys: its safety backup is an empty BGSAVE), and (b)
*holding data*: as many keys of the same shape as the backup with other values, the live
data a restore replaces, so its safety backup is a full BGSAVE + copy + digest. Floor: a
cold ``redis-server`` start on a data directory holding the set's RDB (copied and fsynced
beforehand, as bdr's file is), timed from the exec to ``loading:0`` with bdr's own
``spawn_redis`` start and readiness poll. Loading the RDB is what any restore must pay;
everything else is bdr's. Aim: 1.3x. For (b) the floor of a restore that *keeps* what it
replaces is printed too: BGSAVE + cp of that much data, then the cold start.

**Selective restore** (``bdr.api.restore(..., keys="user:*", conflict="fail")``)
of the matching 90% into an empty instance, three ways: ``floor``, the plain client pipeline
anyone would write against the *live* source (SCAN, then per batch of 1000 keys pipelined
``DUMP`` + ``PTTL``, then pipelined ``RESTORE``, redis-py); ``bdr`` end to end from the set
(fetch, a temporary server loaded from it, find, conflict check, copy, verify, clean up) and
its ``replace`` step (the copy) alone; ``reference``: ``MIGRATE ... COPY KEYS`` batches of
2000 from the live source.

How to read it: runs are interleaved (floor, bdr, floor, bdr, ...) so the load of a shared
machine falls on all rows alike. Each row shows the median of ``--runs`` runs, min-max and
the spread (max-min over the median), the ratio of the medians and of the minimums (the
least disturbed runs), and the CPU stall: the share of the row's time during which some
task of the machine waited for a CPU (``/proc/pressure/cpu``; bdr's own threads count too).
Per-step times come from ``result.steps``; the phases inside them (``~``) are measured by
wrapping bdr functions with a timer for the run (nothing in bdr changes). Nothing is
asserted: the table is the result.

Why these floors: ``bench/README.md``. Run: ``.venv/bin/python bench/redis_backup.py [--keys 1000000 5000000] [--runs 3]
[--only backup restore selective]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from bdr import api
from bdr.config import Config, RedisInstance
from bdr.engines.base import RestoreResult, StepStatus
from bdr.repository import Repository
from bdr.runtime.process import RedisProcess, spawn_redis
from bdr.runtime.procfs import port_free
from bdr.util.waiting import wait_for

BATCH = 50_000
PATTERN = "user:*"
FLOOR_BATCH = 1_000
MIGRATE_BATCH = 2_000
POLL = 0.01
BACKUP_AIM = 1.15
RESTORE_AIM = 1.3

POPULATE = """
local first, last, salt = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i = first, last do
  local kind = i % 20
  local key
  if kind < 10 then
    key = 'user:session:' .. i
    redis.call('SET', key, 'token:' .. salt .. i .. ':abcdefghijklmnopqrstuvwxyz0123456789')
  elseif kind < 12 then
    key = 'other:cache:' .. i
    redis.call('SET', key, salt .. string.rep('x', 32))
  elseif kind < 15 then
    key = 'user:profile:' .. i
    redis.call('HSET', key, 'name', 'user ' .. salt .. i, 'plan', 'pro', 'seen', i)
  elseif kind < 17 then
    key = 'user:history:' .. i
    redis.call('RPUSH', key, 'login', 'search' .. salt, 'chat:' .. i)
  elseif kind < 19 then
    key = 'user:tags:' .. i
    redis.call('SADD', key, 'a' .. salt, 'b' .. i % 100, i)
  else
    key = 'user:scores:' .. i
    redis.call('ZADD', key, 1, 'x' .. salt, i / 7, 'y', -i, 'z')
  end
  if i % 10 == 3 then redis.call('PEXPIRE', key, 86400000 + i % 1000) end
end
return last - first + 1
"""


# --- results ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Series:
    """Repeated runs of one measurement: seconds per run, the per-step seconds of each run, the host's load."""

    name: str
    seconds: list[float] = field(default_factory=list)
    steps: list[dict[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stalls: list[float] = field(default_factory=list)
    """Per run: % of the time some task waited for a CPU (PSI ``cpu some``)."""

    def add(self, seconds: float, steps: dict[str, float] | None = None, note: str = "") -> None:
        self.seconds.append(seconds)
        if steps is not None:
            self.steps.append(steps)
        if note and note not in self.notes:
            self.notes.append(note)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def low(self) -> float:
        return min(self.seconds)

    def spread(self) -> str:
        """``[min-max] x%``: how far the runs were apart, relative to the median."""
        high = max(self.seconds)
        return f"[{self.low:.2f}-{high:.2f}] {100 * (high - self.low) / self.median if self.median else 0:.0f}%"

    def stall(self) -> str:
        return f"{statistics.median(self.stalls):.0f}% [{min(self.stalls):.0f}-{max(self.stalls):.0f}]" \
            if self.stalls else "-"

    def step_medians(self) -> list[tuple[str, float, float, float]]:
        """(step, median, min, max) over the runs, in the order the steps ran."""
        names = list(dict.fromkeys(name for run in self.steps for name in run))
        out = []
        for name in names:
            values = [run.get(name, 0.0) for run in self.steps]
            out.append((name, statistics.median(values), min(values), max(values)))
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """One line of the summary: what, bdr's runs, the floor's, and the aim."""

    size: str
    what: str
    ours: Series
    floor: Series
    aim: float | None
    floor_seconds: float | None = None
    """A floor made of several measurements (their medians added), instead of ``floor``'s median."""

    @property
    def ratio(self) -> float:
        return self.ours.median / (self.floor_seconds or self.floor.median)

    @property
    def low_ratio(self) -> float | None:
        return None if self.floor_seconds else self.ours.low / self.floor.low


def cpu_stall() -> float | None:
    """Seconds some task of this machine waited for a CPU so far (``/proc/pressure/cpu``), None without PSI."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(first.rsplit("total=", 1)[1]) / 1e6


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min) on {os.cpu_count()} cores"


def interleaved(runs: int, measures: Sequence[tuple[Series, Callable[[Series], None]]]) -> None:
    """Run each measure ``runs`` times, round-robin, so background load falls on all of them alike.

    Each round starts one measure later than the one before, so none always runs right after
    the same other one (the writeback of a copy, a freed server's memory).
    """
    for run in range(runs):
        turn = run % len(measures)
        for series, measure in [*measures[turn:], *measures[:turn]]:
            before, started = cpu_stall(), time.perf_counter()
            measure(series)
            after, spent = cpu_stall(), time.perf_counter() - started
            if before is not None and after is not None:
                series.stalls.append(100 * (after - before) / spent)
            print(f"  run {run + 1}/{runs} {series.name}: {series.seconds[-1]:.2f}s", file=sys.stderr, flush=True)


def print_rows(title: str, floor: Series, rows: Sequence[Series], aim: float | None = None) -> None:
    print(f"\n{title}")
    print(f"{'method':<64} {'median s':>8} {'[min-max] spread':>21} {'x floor':>7} {'(mins)':>6} {'cpu stall':>12}")
    for row in [floor, *rows]:
        ratio, low = row.median / floor.median, row.low / floor.low
        mark = ""
        if aim is not None and row is not floor and not row.name.startswith("reference"):
            mark = f"  aim {aim:.2f}x: {'met' if ratio <= aim else 'NOT met'}"
        print(f"{row.name:<64} {row.median:>8.2f} {row.spread():>21} {ratio:>7.2f} {low:>6.2f} {row.stall():>12}{mark}")
        for note in row.notes:
            print(f"    {note}")
        if row.steps:
            print("    steps, median [min-max] s (~ a phase inside the step above it):")
            for name, med, lo, hi in row.step_medians():
                print(f"      {name:<58} {med:>6.3f} [{lo:.3f}-{hi:.3f}]")


# --- timing the phases inside bdr's steps ------------------------------------------------------------------


@contextlib.contextmanager
def probes(targets: Sequence[tuple[str, str, str]]) -> Iterator[dict[str, float]]:
    """For the block, wrap each ``(module, attribute path, label)`` with a timer; yields the seconds by label.

    Bench-only instrumentation: the functions are put back on leaving, bdr's code is not
    changed, a name bdr no longer has is skipped (the breakdown then lacks that line).
    """
    import importlib

    times: dict[str, float] = {}
    undo: list[tuple[Any, str, Any]] = []

    def timed(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                times[label] = times.get(label, 0.0) + time.perf_counter() - started
        return wrapper

    for module_name, path, label in targets:
        try:
            owner: Any = importlib.import_module(module_name)
            *parents, name = path.split(".")
            for part in parents:
                owner = getattr(owner, part)
            original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        except (ImportError, AttributeError, KeyError):
            continue
        undo.append((owner, name, original))
        function = original.__func__ if isinstance(original, staticmethod) else original
        wrapped = timed(label, function)
        setattr(owner, name, staticmethod(wrapped) if isinstance(original, staticmethod) else wrapped)
    try:
        yield times
    finally:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)


BACKUP_PHASES = (
    ("bdr.engines.redis.backup", "open_target", "~ the instance's runtime and layout (CONFIG GET, INFO)"),
    ("bdr.engines.redis.backup", "snapshot", "~ snapshot: BGSAVE asked, waited for, proved"),
    ("bdr.engines.redis.backup", "_store", "~ copy into the repository (sha256, fsync)"),
    ("bdr.repository", "SetWriter.commit", "~ manifest sealed and written"),
)
RESTORE_PHASES = (
    ("bdr.engines.redis.restore", "extract_set", "~ fetch: copy out of the repository, sha256 checked"),
    ("bdr.engines.redis.restore", "sweep_work_dirs", "~ fetch: sweep of old work directories"),
    ("bdr.runtime.process", "RedisProcess.preflight", "~ check: runtime preflight (dry start, port, room)"),
    ("bdr.engines.redis.prepare", "fsync_tree", "~ check: fsync of the staged files"),
    ("bdr.engines.redis.restore", "safety_backup", "~ safety backup: the backup of the live data"),
    ("bdr.engines.redis.backup", "snapshot", "~ safety backup: its snapshot (BGSAVE, writes paused)"),
    ("bdr.engines.redis.backup", "_store", "~ safety backup: its copy into the repository"),
    ("bdr.runtime.process", "RedisProcess.stop", "~ stop: SHUTDOWN NOSAVE until the port is free"),
    ("bdr.engines.redis.restore", "wait_for", "~ stop: watching nothing starts it again"),
    ("bdr.runtime.process", "RedisProcess.start", "~ start: exec until loading:0"),
    ("bdr.engines.redis.restore", "verify_live", "~ verify: live checks"),
)


DIGEST_WAIT = "~ waiting for the content digest thread"


@contextlib.contextmanager
def digest_wait(times: dict[str, float]) -> Iterator[None]:
    """For the block, time how long the backup waits for the result of its digest thread (into ``times``)."""
    from concurrent.futures import Future

    try:
        import bdr.engines.redis.backup as module
        original = module.__dict__["digest_in_background"]
    except (ImportError, KeyError):
        yield
        return

    def started(path: Path) -> Future[Any]:
        future: Future[Any] = original(path)
        result = future.result

        def waited(timeout: float | None = None) -> Any:
            begun = time.perf_counter()
            try:
                return result(timeout)
            finally:
                times[DIGEST_WAIT] = times.get(DIGEST_WAIT, 0.0) + time.perf_counter() - begun

        setattr(future, "result", waited)  # noqa: B010  (this future only)
        return future

    setattr(module, "digest_in_background", started)  # noqa: B010
    try:
        yield
    finally:
        setattr(module, "digest_in_background", original)  # noqa: B010


def with_phases(steps: dict[str, float], phases: dict[str, float], after: dict[str, str]) -> dict[str, float]:
    """``steps`` with each phase inserted after the step it belongs to (``after``: phase label prefix -> step)."""
    out: dict[str, float] = {}
    for step, seconds in steps.items():
        out[step] = seconds
        for label, spent in phases.items():
            if after.get(label.split(":")[0].lstrip("~ ")) == step.split(" (")[0]:
                out[label] = spent
    return out


# --- servers and data ------------------------------------------------------------------------------------


def populate(client: redis.Redis, keys: int, salt: str) -> None:
    script = client.register_script(POPULATE)
    for first in range(0, keys, BATCH):
        script(args=[first, min(first + BATCH, keys) - 1, salt])


def bgsave_and_wait(client: redis.Redis) -> None:
    """BGSAVE, then poll every 10 ms until the save counter moves and no child runs."""
    saves = int(client.info("persistence")["rdb_saves"])
    client.bgsave()
    while True:
        info = client.info("persistence")
        if int(info["rdb_saves"]) > saves and not int(info["rdb_bgsave_in_progress"]):
            break
        time.sleep(POLL)
    if info.get("rdb_last_bgsave_status") != "ok":
        raise SystemExit(f"BGSAVE failed: {info.get('rdb_last_bgsave_status')}")


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def shutdown(instance: RedisInstance) -> None:
    """SHUTDOWN NOSAVE whichever process serves the instance now (bdr may have restarted it); wait for the port."""
    port = int(instance.url.rsplit(":", 1)[1].split("/")[0])
    with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
        redis.Redis(host="127.0.0.1", port=port, socket_timeout=30).shutdown(nosave=True)
    if not wait_for(lambda: port_free(port), 60.0, 0.01):
        raise SystemExit(f"port {port} still busy after SHUTDOWN NOSAVE")


@dataclass(slots=True)
class Target:
    """The instance restores go into: a redis-server on a fixed port and data directory, reset between runs."""

    data: Path
    instance: RedisInstance
    port: int

    @classmethod
    def spawn(cls, data: Path) -> Target:
        server = spawn_redis(data, name="target")
        return cls(data, server.instance, server.address()[1])

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=600)

    def reset(self, rdb: Path | None) -> None:
        """Stop it, give it a data directory holding ``rdb`` (or nothing), start it again (not timed)."""
        shutdown(self.instance)
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True)
        if rdb is not None:
            shutil.copyfile(rdb, self.data / "dump.rdb")
            fsync_file(self.data / "dump.rdb")
        server = spawn_redis(self.data, name="target", port=self.port, timeout=600)
        if server.instance != self.instance:
            raise SystemExit("the target came back with another configuration")

    def stop(self) -> None:
        shutdown(self.instance)


@dataclass(slots=True)
class Lab:
    """One data size: the production server with the data, the target, a repository, the config."""

    keys: int
    workdir: Path
    production: RedisProcess
    target: Target
    config: Config
    variant: Path
    """An RDB of as many keys of the same shape with other values: what the target holds in the 'holding' case."""
    backup_id: str = ""
    rdb_bytes: int = 0

    @property
    def repo(self) -> Repository:
        return Repository.open(self.workdir / "repo")

    def set_rdb(self) -> Path:
        """The RDB object of the set restores read (an uncompressed set stores it as it is)."""
        return self.workdir / "repo" / "redis" / self.backup_id / "dump.rdb"

    def drop_other_sets(self) -> None:
        """Delete every set but the one restores read (safety sets, later backups): the disk stays as it was."""
        repo = self.repo
        for backup in repo.sets("redis"):
            if backup.id != self.backup_id:
                repo.delete(backup)


@contextlib.contextmanager
def lab(keys: int, workdir: Path) -> Iterator[Lab]:
    production = spawn_redis(workdir / "production" / "data", name="production", timeout=600)
    target: Target | None = None
    try:
        started = time.perf_counter()
        client = production.client(timeout=600)
        populate(client, keys, "p")
        target = Target.spawn(workdir / "target" / "data")
        populate(target.client(), keys, "v")
        target.client().save()
        variant = workdir / "variant.rdb"
        shutil.copyfile(target.data / "dump.rdb", variant)
        config = dataclasses.replace(Config(), repository=str(workdir / "repo"),
                                     redis={"production": production.instance, "target": target.instance})
        print(f"generated {client.dbsize()} keys (and as many other ones in the target) in "
              f"{time.perf_counter() - started:.1f}s", file=sys.stderr)
        yield Lab(keys, workdir, production, target, config, variant)
    finally:
        if target is not None:
            target.stop()
        production.stop()


# --- backup ----------------------------------------------------------------------------------------------


def measure_backup_floor(lab: Lab, floor: Series, with_fsync: Series) -> None:
    """BGSAVE, wait for it, cp dump.rdb (and, for reference, fsync the copy)."""
    dest = lab.workdir / "floor-backup" / "dump.rdb"
    dest.parent.mkdir(exist_ok=True)
    dest.unlink(missing_ok=True)
    client = lab.production.client(timeout=600)
    started = time.perf_counter()
    bgsave_and_wait(client)
    saved = time.perf_counter()
    shutil.copyfile(lab.production.data_path() / "dump.rdb", dest)
    copied = time.perf_counter()
    fsync_file(dest)
    synced = time.perf_counter()
    floor.add(copied - started, {"BGSAVE, polled": saved - started, "cp dump.rdb": copied - saved})
    with_fsync.add(synced - started, {"fsync of the copy": synced - copied})
    lab.rdb_bytes = dest.stat().st_size


def measure_bdr_backup(lab: Lab, series: Series, compress: bool = False) -> None:
    with probes(BACKUP_PHASES) as phases, digest_wait(phases):
        started = time.perf_counter()
        outcome = api.backup(lab.config, "redis", instance="production", compress=compress)
        seconds = time.perf_counter() - started
    facts = outcome.manifest.facts
    content = facts.get("content") or {}
    keys = sum(int(v["keys"]) for v in facts["keyspace"].values())
    if keys != lab.keys:
        raise SystemExit(f"backup {outcome.manifest.id} records {keys} keys, the server holds {lab.keys}")
    digest = (f"content digest {content.get('algorithm')} {str(content.get('value'))[:12]}... "
              f"({content.get('implementation')} parser)" if content
              else f"NO content digest: {facts.get('content_unavailable')}")
    steps = {"api.backup": seconds, **phases}
    if content:
        steps["  (beside the copy) the digest thread's own time"] = float(content.get("seconds", 0.0))
    steps["~ the rest (lock, checks, facts, metrics)"] = seconds - sum(
        v for k, v in phases.items() if k.startswith("~"))
    series.add(seconds, steps, note=f"{outcome.manifest.stored_size / 1e6:.0f} MB stored; {digest}")
    if not lab.backup_id and not compress:
        lab.backup_id = outcome.manifest.id
    lab.drop_other_sets()


def bench_backup(lab: Lab, runs: int) -> tuple[Series, Series]:
    floor = Series("floor: BGSAVE + cp dump.rdb")
    floor_sync = Series("reference: BGSAVE + cp dump.rdb + fsync of the copy")
    ours = Series("bdr backup redis (content digest, uncompressed)")
    packed = Series("reference: bdr backup redis --compress")
    print(f"backup, {lab.keys} keys: {load_note()}", file=sys.stderr)
    interleaved(runs, [
        (floor, lambda s: measure_backup_floor(lab, s, floor_sync)),
        (ours, lambda s: measure_bdr_backup(lab, s)),
        (packed, lambda s: measure_bdr_backup(lab, s, compress=True)),
    ])
    floor_sync.stalls = floor.stalls
    snapshot = "~ snapshot: BGSAVE asked, waited for, proved"
    if all(snapshot in run for run in ours.steps):
        own = statistics.median(run["api.backup"] - run[snapshot] for run in ours.steps)
        cp = statistics.median(run["cp dump.rdb"] for run in floor.steps)
        ours.notes.append(f"beyond its snapshot bdr takes {own:.2f}s (the floor's cp: {cp:.2f}s), "
                          f"{own / floor.median:.0%} of the floor; the aim leaves "
                          f"{cp + (BACKUP_AIM - 1) * floor.median:.2f}s")
    print_rows(f"backup of {lab.keys} keys (RDB {lab.rdb_bytes / 1e6:.0f} MB), {runs} interleaved runs", floor,
               [ours, floor_sync, packed], BACKUP_AIM)
    return floor, ours


def ensure_backup(lab: Lab) -> None:
    """The set restores read, when the backup part did not run."""
    if not lab.backup_id:
        measure_bdr_backup(lab, Series("setup"))
        lab.rdb_bytes = lab.set_rdb().stat().st_size


# --- restore ---------------------------------------------------------------------------------------------


def cold_start(rdb: Path, workdir: Path, keys: int, timeout: float = 600) -> float:
    """Seconds a redis-server takes to start on a data directory holding ``rdb`` (copied, fsynced) until
    ``loading:0``; exits when it did not load ``keys`` keys."""
    data = workdir / "cold" / "data"
    shutil.rmtree(data.parent, ignore_errors=True)
    data.mkdir(parents=True)
    shutil.copyfile(rdb, data / "dump.rdb")
    fsync_file(data / "dump.rdb")
    started = time.perf_counter()
    server = spawn_redis(data, name="cold", timeout=timeout)
    seconds = time.perf_counter() - started
    try:
        loaded = server.client(timeout=60).dbsize()
    finally:
        server.stop()
        shutil.rmtree(data.parent, ignore_errors=True)
    if loaded != keys:
        raise SystemExit(f"the cold start loaded {loaded} keys, the RDB holds {keys}")
    return seconds


def measure_cold_start(lab: Lab, series: Series) -> None:
    """A redis-server started on a data directory holding the set's RDB, until ``loading:0``."""
    lab.target.reset(None)  # the machine as in an 'empty' restore: production up, an empty target
    series.add(cold_start(lab.set_rdb(), lab.workdir, lab.keys))


STEP_OF_PHASE = {"fetch": "fetch", "check": "check", "safety backup": "safety backup", "stop": "stop",
                 "start": "start", "verify": "verify"}


def step_times(result: RestoreResult, total: float, phases: dict[str, float] | None = None) -> dict[str, float]:
    steps = {s.name + (" (skipped)" if s.status == StepStatus.SKIPPED else ""): s.seconds for s in result.steps}
    steps["outside the steps (resolve the set, journal)"] = total - sum(s.seconds for s in result.steps)
    return with_phases(steps, phases or {}, STEP_OF_PHASE)


def measure_bdr_restore(lab: Lab, series: Series, holding: bool) -> None:
    lab.target.reset(lab.variant if holding else None)
    before = int(lab.target.client().dbsize())
    with probes(RESTORE_PHASES) as phases:
        started = time.perf_counter()
        result = api.restore(lab.config, "redis", lab.backup_id, target="target")
        seconds = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"restore failed its checks: {[c.to_dict() for c in result.checks if not c.ok]}")
    after = int(lab.target.client().dbsize())
    if after != lab.keys:
        raise SystemExit(f"the target holds {after} keys after the restore, the backup {lab.keys}")
    checks = ", ".join(f"{c.name}{' (not verified)' if c.skipped else ''}" for c in result.checks)
    series.add(seconds, step_times(result, seconds, phases),
               note=f"target held {before} keys before; checks: {checks}")
    lab.drop_other_sets()


def bench_restore(lab: Lab, runs: int) -> tuple[Series, Series, Series, Series]:
    floor = Series("floor: cold redis-server start on the RDB (to loading:0)")
    empty = Series("bdr restore redis, all steps, into an empty instance")
    holding = Series(f"bdr restore redis, all steps, into an instance holding {lab.keys} keys")
    print(f"restore, {lab.keys} keys: {load_note()}", file=sys.stderr)
    interleaved(runs, [
        (floor, lambda s: measure_cold_start(lab, s)),
        (empty, lambda s: measure_bdr_restore(lab, s, holding=False)),
        (holding, lambda s: measure_bdr_restore(lab, s, holding=True)),
    ])
    # the floor of a restore that keeps what it replaces: snapshot and copy out the live data, then the cold start
    keep = Series("BGSAVE + cp of the target's data")
    lab.target.reset(lab.variant)
    for _ in range(runs):
        dest = lab.workdir / "keep.rdb"
        client = lab.target.client()
        started = time.perf_counter()
        bgsave_and_wait(client)
        shutil.copyfile(lab.target.data / "dump.rdb", dest)
        keep.add(time.perf_counter() - started)
        dest.unlink()
    for row in (empty, holding):
        own = statistics.median(sum(v for k, v in run.items() if not k.startswith("~") and k != "start")
                                for run in row.steps)
        row.notes.append(f"bdr's own work (all but the start step, where Redis loads): {own:.2f}s, "
                         f"{own / floor.median:.0%} of the floor; the aim leaves "
                         f"{(RESTORE_AIM - 1) * floor.median:.2f}s")
    keep_floor = keep.median + floor.median
    holding.notes.append(f"reference floor of a restore that keeps what it replaces: BGSAVE + cp of the target's "
                         f"{lab.keys} keys {keep.median:.2f}s {keep.spread()}, then the cold start: "
                         f"{keep_floor:.2f}s; ratio {holding.median / keep_floor:.2f}")
    print_rows(f"restore of {lab.keys} keys (RDB {lab.rdb_bytes / 1e6:.0f} MB), {runs} interleaved runs", floor,
               [empty, holding], RESTORE_AIM)
    return floor, empty, holding, keep


# --- selective restore -----------------------------------------------------------------------------------


def matching_keys(client: redis.Redis) -> list[bytes]:
    keys: list[bytes] = []
    cursor = 0
    while True:
        cursor, batch = client.scan(cursor, match=PATTERN, count=5_000)
        keys += cast(list[bytes], batch)  # clients do not decode
        if cursor == 0:
            return keys


def measure_pipeline_floor(lab: Lab, series: Series) -> None:
    """SCAN, then DUMP+PTTL -> RESTORE in pipelined batches of 1000 with plain redis-py."""
    src, dst = lab.production.client(timeout=600), lab.target.client()
    started = time.perf_counter()
    keys = matching_keys(src)
    for i in range(0, len(keys), FLOOR_BATCH):
        batch = keys[i:i + FLOOR_BATCH]
        read = src.pipeline(transaction=False)
        for key in batch:
            read.dump(key)
            read.pttl(key)
        replies = read.execute()
        write = dst.pipeline(transaction=False)
        for j, key in enumerate(batch):
            payload, ttl = replies[2 * j], replies[2 * j + 1]
            if payload is not None:
                write.restore(key, max(ttl, 0), payload)
        write.execute()
    series.add(time.perf_counter() - started)


def measure_migrate(lab: Lab, series: Series) -> None:
    """SCAN, then MIGRATE host port "" 0 timeout COPY KEYS ... in batches of 2000 (server to server)."""
    src = lab.production.client(timeout=600)
    started = time.perf_counter()
    keys = matching_keys(src)
    for i in range(0, len(keys), MIGRATE_BATCH):
        src.execute_command("MIGRATE", "127.0.0.1", lab.target.port, "", 0, 60_000, "COPY", "KEYS",
                            *keys[i:i + MIGRATE_BATCH])
    series.add(time.perf_counter() - started)


def measure_bdr_selective(lab: Lab, series: Series, copy_step: Series) -> None:
    started = time.perf_counter()
    result = api.restore(lab.config, "redis", lab.backup_id, target="target", keys=PATTERN,
                         conflict="fail")
    seconds = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"selective restore failed its checks: {[c.to_dict() for c in result.checks]}")
    steps = step_times(result, seconds)
    series.add(seconds, steps, note=f"counts {result.counts}")
    copy_step.add(steps["replace"])


def bench_selective(lab: Lab, runs: int) -> None:
    expected = len(matching_keys(lab.production.client(timeout=600)))
    floor = Series("floor: redis-py pipeline DUMP+PTTL -> RESTORE from the live source")
    ours = Series("bdr selective restore, end to end (from the set)")
    copy_step = Series("bdr selective restore, its replace (copy) step alone")
    migrate = Series("reference: MIGRATE COPY from the live source, batches of 2000")
    lab.target.reset(None)

    def fresh(measure: Callable[[Lab, Series], None]) -> Callable[[Series], None]:
        def run(series: Series) -> None:
            lab.target.client().flushall()
            measure(lab, series)
            held = int(lab.target.client().dbsize())
            if held != expected:
                raise SystemExit(f"the target holds {held} keys after {series.name}, expected {expected}")
        return run

    print(f"selective, {lab.keys} keys: {load_note()}", file=sys.stderr)
    interleaved(runs, [
        (floor, fresh(measure_pipeline_floor)),
        (ours, fresh(lambda lab, s: measure_bdr_selective(lab, s, copy_step))),
        (migrate, fresh(measure_migrate)),
    ])
    copy_step.stalls = ours.stalls
    print(f"\nselective restore of {expected} keys matching {PATTERN!r} (of {lab.keys}) into an empty instance, "
          f"{runs} run(s)")
    print(f"{'method':<64} {'median s':>8} {'[min-max] spread':>21} {'keys/s':>8} {'x floor rate':>12} "
          f"{'cpu stall':>12}")
    for row in (floor, ours, copy_step, migrate):
        print(f"{row.name:<64} {row.median:>8.2f} {row.spread():>21} {expected / row.median:>8.0f} "
              f"{floor.median / row.median:>12.2f} {row.stall():>12}")
        for note in row.notes:
            print(f"    {note}")
        if row.steps:
            print("    steps (median s): " + ", ".join(f"{name} {med:.2f}" for name, med, _, _ in row.step_medians()))


# --- main ------------------------------------------------------------------------------------------------


def revision() -> str:
    """The commit measured (and whether the working tree differs from it)."""
    here = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--", "bdr"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"bdr at {head}{' + uncommitted changes under bdr/' if dirty else ''}"


def print_summary(verdicts: list[Verdict]) -> None:
    print("\nsummary: medians (ratio of the minimums in brackets)")
    print(f"{'keys':>5}  {'what':<38} {'bdr s':>7} {'floor s':>8} {'ratio':>13} {'aim':>5}  {'':<7}  floor")
    for v in verdicts:
        floor_s = v.floor_seconds or v.floor.median
        low = f"({v.low_ratio:.2f})" if v.low_ratio is not None else ""
        aim = f"{v.aim:.2f}" if v.aim else "-"
        met = "" if not v.aim else ("met" if v.ratio <= v.aim else "NOT met")
        floor_name = v.floor.name if not v.floor_seconds else "BGSAVE + cp of the live data, then the cold start"
        print(f"{v.size:>5}  {v.what:<38} {v.ours.median:>7.2f} {floor_s:>8.2f} {v.ratio:>6.2f} {low:>6} "
              f"{aim:>5}  {met:<7}  {floor_name.removeprefix('floor: ')}")


def run_size(keys: int, runs: int, selective_runs: int, parts: set[str], workdir: Path) -> list[Verdict]:
    verdicts: list[Verdict] = []
    size = f"{keys / 1e6:g}M" if keys >= 1_000_000 else str(keys)
    with lab(keys, workdir) as here:
        if "backup" in parts:
            floor, ours = bench_backup(here, runs)
            verdicts.append(Verdict(size, "backup (content digest)", ours, floor, BACKUP_AIM))
        if parts & {"restore", "selective"}:
            ensure_backup(here)
        if "restore" in parts:
            cold, empty, holding, keep = bench_restore(here, runs)
            verdicts.append(Verdict(size, "restore into an empty instance", empty, cold, RESTORE_AIM))
            verdicts.append(Verdict(size, "restore into one holding data", holding, cold, RESTORE_AIM))
            verdicts.append(Verdict(size, "  same, vs keeping what it replaces", holding, cold, None,
                                    keep.median + cold.median))
        if "selective" in parts and selective_runs:
            bench_selective(here, selective_runs)
    return verdicts


def warm_up() -> None:
    """Import what the measured calls would import lazily on their first run (imports are not what is measured)."""
    import bdr.engines.redis
    import bdr.engines.redis.restore
    import bdr.engines.redis.selective
    import bdr.monitoring.metrics  # noqa: F401
    from bdr.engines.redis.rdb import digest

    if not digest.HAVE_C:
        print("warning: bdr's C RDB parser is not built: the backup digest is the slow Python one", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, nargs="+", default=[1_000_000, 5_000_000],
                        help="data set sizes in keys (default 1M and 5M)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each backup/restore measurement (median shown)")
    parser.add_argument("--selective-runs", type=int, default=1, help="runs of each selective measurement")
    parser.add_argument("--only", nargs="+", choices=["backup", "restore", "selective"],
                        default=["backup", "restore", "selective"], help="the parts to run")
    args, _ = parser.parse_known_args(argv)  # run.sh bench passes the same flags to every bench
    warm_up()
    print(f"{revision()}; {load_note()} at the start")
    verdicts: list[Verdict] = []
    started = time.perf_counter()
    for keys in args.keys:
        workdir = Path(tempfile.mkdtemp(prefix="bdr-bench-redis-"))
        try:
            verdicts += run_size(keys, args.runs, args.selective_runs, set(args.only), workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if verdicts:
        print_summary(verdicts)
    print(f"\n{time.perf_counter() - started:.0f}s in all; {load_note()} at the end. A spread above ~10% or a "
          "cpu stall above ~20% means the machine was busy: trust the ratios (of the minimums most) over the seconds.")


if __name__ == "__main__":
    main()
