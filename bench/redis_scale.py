"""Does bdr's memory grow with the data? Backup and restore of one node at 1M and 10M keys, bdr as a process.

For each ``--keys`` size (default 1,000,000 and 10,000,000) a private redis-server
("production", on a free loopback port) is filled server-side by the Lua script of
``bench/redis_backup.py`` (the same shapes: strings, hashes, lists, sets, sorted sets, 10%
with a TTL), and an empty one ("target") is started beside it. bdr runs as an operator runs
it, a ``bdr`` process (``python -m bdr.cli.main --config bdr.yaml --json ...``), so that its
memory high-water mark is its own: ``peak RSS`` is the ``ru_maxrss`` that ``wait4`` reports
for that process (it counts the children bdr waited for; the redis-server a restore starts
outlives bdr and is not counted). bdr streams everything (the RDB is copied and hashed in
blocks, the content digest is computed by the C parser as the file goes by, the fetch is
hashed as it is read), so the peak should be the same at 1M and at 10M keys: the
interpreter with bdr's modules plus a few buffers. ``bdr list`` on the same repository is
measured too, for the baseline of a bdr process that moves no data.

**Backup**: ``bdr backup redis --instance production``, against the floor of
``bench/redis_backup.py``: ``BGSAVE`` (polled every 10 ms) + ``cp dump.rdb``. **Restore**:
``bdr restore redis <set> --target target --yes`` into the empty target (every runbook step),
against a cold ``redis-server`` start on a data directory holding the set's RDB (copied and
fsynced first), until ``loading:0``. The bdr rows include the start of the Python
interpreter and bdr's imports (the ``bdr list`` row shows how much that is); the per-step
times of a restore are bdr's own (``--json``'s ``steps``).

Runs are interleaved (floor, bdr, floor, bdr, ...) so that the load of a shared machine
falls on all rows alike; each row shows the median of ``--runs`` runs, min-max, the spread
and the CPU stall (see ``bench/redis_backup.py``). Nothing is asserted. Memory: 10M keys
take about 1.5 GB in each of the two redis-servers.

Run: ``.venv/bin/python bench/redis_scale.py [--keys 1000000 10000000] [--runs 3] [--only backup restore]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis_backup import (
    Series,
    Target,
    Verdict,
    bgsave_and_wait,
    cold_start,
    interleaved,
    load_note,
    populate,
    print_rows,
    print_summary,
    revision,
)

from bdr.config import RedisInstance
from bdr.runtime.process import RedisProcess, spawn_redis

MIB = 1024 * 1024
BACKUP_AIM = 1.15
RESTORE_AIM = 1.3


@dataclass(frozen=True, slots=True)
class Run:
    """One bdr process: its wall time, its memory high-water mark, what it printed."""

    seconds: float
    peak_rss: int
    output: Any


def run_bdr(policy: Path, *args: str, workdir: Path) -> Run:
    """``bdr --config policy --json ARGS`` in a process of its own; its time and ``ru_maxrss`` (wait4)."""
    out_path, err_path = workdir / "bdr.out", workdir / "bdr.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "bdr.cli.main", "--config", str(policy), "--json", *args],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    if process.returncode != 0:
        raise SystemExit(f"bdr {' '.join(args)} exited {process.returncode}: "
                         f"{err_path.read_text()[-2000:]}{out_path.read_text()[-2000:]}")
    text = out_path.read_text().strip()
    return Run(seconds, usage.ru_maxrss * 1024, json.loads(text) if text else None)


@dataclass
class Memory:
    """Peak RSS of bdr's processes, per size and command."""

    rows: dict[tuple[int, str], list[int]] = field(default_factory=dict)

    def add(self, keys: int, what: str, peak: int) -> None:
        self.rows.setdefault((keys, what), []).append(peak)

    def print(self, sizes: dict[int, str]) -> None:
        print("\nbdr's peak RSS (ru_maxrss of the bdr process, median [min-max] MiB) against the data")
        whats = list(dict.fromkeys(what for _, what in self.rows))
        keys = sorted({k for k, _ in self.rows})
        print(f"{'command':<40} " + " ".join(f"{f'{k / 1e6:g}M keys':>22}" for k in keys))
        for what in whats:
            cells = []
            for k in keys:
                peaks = sorted(self.rows.get((k, what), []))
                cells.append(f"{peaks[len(peaks) // 2] / MIB:.0f} [{peaks[0] / MIB:.0f}-{peaks[-1] / MIB:.0f}]"
                             if peaks else "-")
            print(f"{what:<40} " + " ".join(f"{c:>22}" for c in cells))
        print("data: " + "; ".join(f"{k / 1e6:g}M keys: {sizes[k]}" for k in keys if k in sizes))


@dataclass
class Lab:
    """One size: production with the data, an empty target, a repository and bdr.yaml for both."""

    keys: int
    workdir: Path
    production: RedisProcess
    target: Target
    policy: Path
    backup_id: str = ""
    rdb_bytes: int = 0

    def set_rdb(self) -> Path:
        return self.workdir / "repo" / "redis" / self.backup_id / "dump.rdb"

    def drop_other_sets(self) -> None:
        """Every set but the one restores read (safety sets, later backups) deleted: the disk stays as it was."""
        repo = self.workdir / "repo" / "redis"
        for path in repo.iterdir() if repo.is_dir() else []:
            if path.is_dir() and path.name != self.backup_id:
                shutil.rmtree(path)


def policy_entry(instance: RedisInstance) -> dict[str, Any]:
    return {"url": instance.url, "data_dir": instance.data_dir, "start_args": list(instance.start_args),
            "password_env": None}


@contextmanager
def lab(keys: int, workdir: Path) -> Iterator[Lab]:
    production = spawn_redis(workdir / "production" / "data", name="production", timeout=900)
    target: Target | None = None
    try:
        started = time.perf_counter()
        client = production.client(timeout=900)
        populate(client, keys, "p")
        target = Target.spawn(workdir / "target" / "data")
        policy = workdir / "bdr.yaml"
        policy.write_text(yaml.safe_dump({
            "repository": str(workdir / "repo"),
            "redis": {"production": policy_entry(production.instance), "target": policy_entry(target.instance)},
        }, sort_keys=False))
        memory = client.info("memory")["used_memory_human"]
        print(f"generated {client.dbsize()} keys ({memory} in Redis) in {time.perf_counter() - started:.1f}s",
              file=sys.stderr)
        yield Lab(keys, workdir, production, target, policy)
    finally:
        if target is not None:
            target.stop()
        production.stop()


def measure_backup_floor(here: Lab, series: Series) -> None:
    dest = here.workdir / "floor-backup" / "dump.rdb"
    dest.parent.mkdir(exist_ok=True)
    dest.unlink(missing_ok=True)
    started = time.perf_counter()
    bgsave_and_wait(here.production.client(timeout=900))
    shutil.copyfile(here.production.data_path() / "dump.rdb", dest)
    series.add(time.perf_counter() - started)
    here.rdb_bytes = dest.stat().st_size
    dest.unlink()


def measure_bdr_backup(here: Lab, series: Series, memory: Memory) -> None:
    run = run_bdr(here.policy, "backup", "redis", "--instance", "production", workdir=here.workdir)
    made = run.output
    keys = sum(int(v["keys"]) for v in made["facts"]["keyspace"].values())
    if keys != here.keys:
        raise SystemExit(f"backup {made['id']} records {keys} keys, the server holds {here.keys}")
    series.add(run.seconds, note=f"peak RSS of the bdr process, per run: {run.peak_rss / MIB:.0f} MiB")
    memory.add(here.keys, "bdr backup redis", run.peak_rss)
    if not here.backup_id:
        here.backup_id = made["id"]
    here.drop_other_sets()


def measure_cold_start(here: Lab, series: Series) -> None:
    """A redis-server started on a data directory holding the set's RDB, until ``loading:0``."""
    here.target.reset(None)
    series.add(cold_start(here.set_rdb(), here.workdir, here.keys, timeout=900))


def measure_bdr_restore(here: Lab, series: Series, memory: Memory) -> None:
    here.target.reset(None)
    run = run_bdr(here.policy, "restore", "redis", here.backup_id, "--target", "target", "--yes",
                  workdir=here.workdir)
    result = run.output
    if not result["ok"]:
        raise SystemExit(f"restore failed its checks: {[c for c in result['checks'] if not c['ok']]}")
    loaded = int(here.target.client().dbsize())
    if loaded != here.keys:
        raise SystemExit(f"the target holds {loaded} keys after the restore, the backup {here.keys}")
    steps = {str(s["name"]): float(s["seconds"]) for s in result["steps"]}
    steps["outside the steps (interpreter, imports, the set resolved, journal)"] = run.seconds - sum(steps.values())
    series.add(run.seconds, steps)
    memory.add(here.keys, "bdr restore redis (into an empty target)", run.peak_rss)
    here.drop_other_sets()


def measure_startup(here: Lab, series: Series, memory: Memory) -> None:
    run = run_bdr(here.policy, "list", workdir=here.workdir)
    series.add(run.seconds)
    memory.add(here.keys, "reference: bdr list (moves no data)", run.peak_rss)


def without_start(ours: Series, startup: Series, floor: Series) -> str:
    """bdr's median less the median start of a bdr process that does nothing, against the floor."""
    own = ours.median - startup.median
    return (f"less a bdr process's start ({startup.median:.2f}s, bdr list): {own:.2f}s, "
            f"{own / floor.median:.2f}x the floor")


def run_size(keys: int, runs: int, parts: set[str], memory: Memory, sizes: dict[int, str]) -> list[Verdict]:
    verdicts: list[Verdict] = []
    size = f"{keys / 1e6:g}M"
    workdir = Path(tempfile.mkdtemp(prefix="bdr-bench-scale-"))
    try:
        with lab(keys, workdir) as here:
            startup = Series("reference: bdr list (interpreter + imports)")
            backup_floor = Series("floor: BGSAVE + cp dump.rdb")
            backup = Series("bdr backup redis (a bdr process)")
            if "backup" in parts or not here.backup_id:
                print(f"backup, {keys} keys: {load_note()}", file=sys.stderr)
                interleaved(runs if "backup" in parts else 1, [
                    (backup_floor, lambda s: measure_backup_floor(here, s)),
                    (backup, lambda s: measure_bdr_backup(here, s, memory)),
                    (startup, lambda s: measure_startup(here, s, memory)),
                ])
            sizes[keys] = f"RDB {here.rdb_bytes / 1e6:.0f} MB"
            if "backup" in parts:
                backup.notes.append(without_start(backup, startup, backup_floor))
                print_rows(f"backup of {keys} keys (RDB {here.rdb_bytes / 1e6:.0f} MB), {runs} interleaved runs",
                           backup_floor, [backup, startup], BACKUP_AIM)
                verdicts.append(Verdict(size, "backup, bdr process", backup, backup_floor, BACKUP_AIM))
            if "restore" in parts:
                floor = Series("floor: cold redis-server start on the RDB (to loading:0)")
                restore = Series("bdr restore redis, all steps, into an empty target (a bdr process)")
                print(f"restore, {keys} keys: {load_note()}", file=sys.stderr)
                interleaved(runs, [(floor, lambda s: measure_cold_start(here, s)),
                                   (restore, lambda s: measure_bdr_restore(here, s, memory))])
                if startup.seconds:
                    restore.notes.append(without_start(restore, startup, floor))
                print_rows(f"restore of {keys} keys (RDB {here.rdb_bytes / 1e6:.0f} MB), {runs} interleaved runs",
                           floor, [restore], RESTORE_AIM)
                verdicts.append(Verdict(size, "restore into an empty target, process", restore, floor, RESTORE_AIM))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return verdicts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="data set sizes in keys (default 1M and 10M)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (median shown)")
    parser.add_argument("--only", nargs="+", choices=["backup", "restore"], default=["backup", "restore"])
    args, _ = parser.parse_known_args(argv)  # run.sh bench passes the same flags to every bench
    print(f"{revision()}; {load_note()} at the start")
    memory = Memory()
    sizes: dict[int, str] = {}
    verdicts: list[Verdict] = []
    started = time.perf_counter()
    for keys in args.keys:
        verdicts += run_size(keys, args.runs, set(args.only), memory, sizes)
    print_summary(verdicts)
    memory.print(sizes)
    print(f"\n{time.perf_counter() - started:.0f}s in all; {load_note()} at the end")


if __name__ == "__main__":
    main()
