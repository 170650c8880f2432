"""Benchmarks of the Redis engine, as ratios against a floor measured in the same run.

Backup (``bdr backup redis``) against the floor ``BGSAVE`` + ``cp dump.rdb``; restore
(``bdr restore redis``, all five steps, into an empty instance) against the floor of a cold
``redis-server`` start loading the same RDB. Same data, same run.

Selective restore (``bdr restore redis BACKUP --keys 'user:*'``): a backup holding ``--keys``
matching keys (default 1,000,000: strings, hashes, lists, 10% with a TTL) plus non-matching
ones is restored key by key into an empty Redis, three ways:

- ``floor``: the plain client pipeline anyone would write: SCAN the source, then per batch
  of 1000 keys pipelined ``DUMP`` + ``PTTL``, then pipelined ``RESTORE`` (redis-py);
- ``bdr``: :func:`bdr.engines.redis.selective.selective_restore` end to end (start a
  temporary server from the backup's files, find, check conflicts, copy, verify, clean up),
  and its ``copy keys`` step alone;
- ``migrate``: ``MIGRATE ... COPY KEYS`` batches of 2000 from the source to the target,
  the server-to-server alternative, for reference.

Run: ``.venv/bin/python bench/redis_backup.py [--keys N]``. Each measurement is one function;
``main`` prints a table. Nothing is asserted: the numbers are the result.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import redis

from bdr.config import Config
from bdr.engines.base import RestoreRequest
from bdr.engines.redis.selective import selective_restore
from bdr.repository import Repository
from bdr.runtime.process import RedisProcess, spawn_redis

PATTERN = "user:*"
FLOOR_BATCH = 1_000
MIGRATE_BATCH = 2_000


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    keys: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.keys / self.seconds if self.seconds > 0 else 0.0


# --- data ----------------------------------------------------------------------------------------------


def populate(client: redis.Redis, keys: int) -> None:
    """``keys`` keys matching ``user:*`` (70% strings, 20% hashes, 10% lists; 10% with a TTL) + 10% others."""
    strings = keys * 7 // 10
    client.execute_command("DEBUG", "POPULATE", strings, "user:session:", 64)
    pipe = client.pipeline(transaction=False)
    hashes = keys * 2 // 10
    lists = keys - strings - hashes
    for i in range(hashes):
        pipe.hset(f"user:profile:{i}", mapping={"name": f"user {i}", "plan": "pro", "seen": str(i)})
        if len(pipe) >= 5_000:
            pipe.execute()
    for i in range(lists):
        pipe.rpush(f"user:history:{i}", "login", "search", f"chat:{i}")
        if len(pipe) >= 5_000:
            pipe.execute()
    for i in range(0, strings, 10):
        pipe.pexpire(f"user:session:{i}", 3_600_000 + i % 1000)
        if len(pipe) >= 5_000:
            pipe.execute()
    for i in range(keys // 10):
        pipe.set(f"other:cache:{i}", "x" * 32)
        if len(pipe) >= 5_000:
            pipe.execute()
    pipe.execute()


@contextmanager
def backup_files(workdir: Path, keys: int) -> Iterator[tuple[RedisProcess, Path]]:
    """A source server with the data, and a directory holding its saved dump.rdb (the 'backup')."""
    source = spawn_redis(workdir / "source" / "data", name="source", extra=["--enable-debug-command", "yes"])
    try:
        client = source.client(timeout=600)
        started = time.perf_counter()
        populate(client, keys)
        client.save()
        files = workdir / "backup"
        files.mkdir()
        shutil.copy2(source.data_path() / "dump.rdb", files / "dump.rdb")
        print(f"prepared {client.dbsize()} keys in {time.perf_counter() - started:.1f}s "
              f"(dump.rdb {(files / 'dump.rdb').stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
        yield source, files
    finally:
        source.stop()


def matching_keys(client: redis.Redis) -> list[bytes]:
    keys: list[bytes] = []
    cursor = 0
    while True:
        cursor, batch = client.scan(cursor, match=PATTERN, count=5_000)
        keys += cast(list[bytes], batch)  # clients do not decode
        if cursor == 0:
            return keys


# --- measurements ------------------------------------------------------------------------------------


def measure_pipeline_floor(source: RedisProcess, target: RedisProcess) -> Measurement:
    """SCAN, then DUMP+PTTL -> RESTORE in pipelined batches of 1000 with plain redis-py."""
    src, dst = source.client(timeout=600), target.client(timeout=600)
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
    return Measurement("floor: redis-py pipeline DUMP+PTTL -> RESTORE", len(keys), time.perf_counter() - started)


def measure_selective_restore(files: Path, target: RedisProcess, workdir: Path) -> list[Measurement]:
    """bdr's selective restore, end to end and its copy step alone."""
    repo_dir = workdir / "repo"
    repo_dir.mkdir(exist_ok=True)
    request = RestoreRequest(config=Config(), repository=Repository.open(repo_dir), backup=None, legacy_path=files,
                             selection={"keys": PATTERN, "db": None}, conflict="fail")
    started = time.perf_counter()
    result = selective_restore(request, files, target.instance)
    total = time.perf_counter() - started
    copied = result.counts["copied"]
    steps = {s.name: s.seconds for s in result.steps}
    detail = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in steps.items())
    return [
        Measurement("bdr selective restore, end to end", copied, total, detail),
        Measurement("bdr selective restore, copy keys step", copied, steps["copy keys"]),
    ]


def measure_migrate(source: RedisProcess, target: RedisProcess) -> Measurement:
    """SCAN, then MIGRATE host port "" 0 timeout COPY KEYS ... in batches of 2000 (server to server)."""
    src = source.client(timeout=600)
    host, port = target.address()
    started = time.perf_counter()
    keys = matching_keys(src)
    for i in range(0, len(keys), MIGRATE_BATCH):
        src.execute_command("MIGRATE", host, port, "", 0, 60_000, "COPY", "KEYS", *keys[i:i + MIGRATE_BATCH])
    return Measurement("reference: MIGRATE COPY, batches of 2000", len(keys), time.perf_counter() - started)


# --- main ----------------------------------------------------------------------------------------------


def run_fresh(target: RedisProcess, expected: int, measure: Callable[[], list[Measurement]]) -> list[Measurement]:
    client = target.client(timeout=600)
    client.flushall()
    results = measure()
    if client.dbsize() != expected:
        raise SystemExit(f"target holds {client.dbsize()} keys after {results[0].name}, expected {expected}")
    return results


def print_table(title: str, floor: Measurement, rows: list[Measurement]) -> None:
    print(f"\n{title}")
    print(f"{'method':<48} {'keys':>10} {'seconds':>9} {'keys/s':>10} {'x floor':>8}")
    for row in [floor, *rows]:
        print(f"{row.name:<48} {row.keys:>10} {row.seconds:>9.2f} {row.rate:>10.0f} {row.rate / floor.rate:>8.2f}")
        if row.note:
            print(f"    {row.note}")


def bench_selective(keys: int, workdir: Path) -> None:
    with backup_files(workdir, keys) as (source, files):
        expected = len(matching_keys(source.client(timeout=600)))
        target = spawn_redis(workdir / "target" / "data", name="target")
        try:
            floor = run_fresh(target, expected, lambda: [measure_pipeline_floor(source, target)])[0]
            ours = run_fresh(target, expected, lambda: measure_selective_restore(files, target, workdir))
            migrate = run_fresh(target, expected, lambda: [measure_migrate(source, target)])
        finally:
            target.stop()
    print_table(f"selective restore of {expected} keys matching {PATTERN!r}", floor, [*ours, *migrate])


def measure_backup_floor(source: RedisProcess, dest: Path) -> Measurement:
    """BGSAVE, wait for it, copy dump.rdb: what the old backup-redis.sh did."""
    client = source.client(timeout=600)
    saves = int(client.info("persistence")["rdb_saves"])
    started = time.perf_counter()
    client.bgsave()
    while int(client.info("persistence")["rdb_saves"]) == saves or client.info("persistence")["rdb_bgsave_in_progress"]:
        time.sleep(0.01)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source.data_path() / "dump.rdb", dest / "dump.rdb")
    return Measurement("floor: BGSAVE + cp dump.rdb", client.dbsize(), time.perf_counter() - started)


def measure_bdr_backup(config: Config, compress: bool) -> Measurement:
    from bdr import api

    started = time.perf_counter()
    outcome = api.backup(config, "redis", compress=compress)
    seconds = time.perf_counter() - started
    keys = sum(int(v["keys"]) for v in outcome.manifest.facts["keyspace"].values())
    return Measurement(f"bdr backup redis{' --compress' if compress else ''}", keys, seconds,
                       f"{outcome.manifest.stored_size / 1e6:.0f} MB stored, digest "
                       f"{'recorded' if outcome.manifest.facts['digest'] != 'unavailable' else 'skipped (size)'}")


def measure_cold_start_floor(rdb: Path, workdir: Path) -> Measurement:
    """A redis-server started on a data directory holding the RDB, until it has loaded."""
    data = workdir / "cold" / "data"
    data.mkdir(parents=True)
    shutil.copyfile(rdb, data / "dump.rdb")
    started = time.perf_counter()
    server = spawn_redis(data, name="cold")
    seconds = time.perf_counter() - started
    keys = server.client().dbsize()
    server.stop()
    return Measurement("floor: cold redis-server start loading the RDB", keys, seconds)


def measure_bdr_restore(config: Config, backup_id: str, target: RedisProcess) -> Measurement:
    from bdr import api

    target.client(timeout=600).flushall()  # an empty instance: its safety backup is cheap, as in a disaster
    started = time.perf_counter()
    result = api.restore(config, "redis", backup_id, target="target")
    seconds = time.perf_counter() - started
    steps = ", ".join(f"{s.name} {s.seconds:.2f}s" for s in result.steps)
    keys = int(result.checks[1].detail.split()[1]) if len(result.checks) > 1 else 0
    return Measurement("bdr restore redis (5 steps) into an empty instance", keys, seconds, steps)


def median_of(runs: int, measure: Callable[[], Measurement]) -> Measurement:
    """The run with the median time of ``runs`` runs (the machine has 2 busy cores)."""
    results = sorted((measure() for _ in range(runs)), key=lambda m: m.seconds)
    return results[len(results) // 2]


def print_times(title: str, floor: Measurement, rows: list[Measurement]) -> None:
    print(f"\n{title}")
    print(f"{'method':<52} {'seconds':>9} {'x floor time':>13}")
    for row in [floor, *rows]:
        print(f"{row.name:<52} {row.seconds:>9.2f} {row.seconds / floor.seconds:>13.2f}")
        if row.note:
            print(f"    {row.note}")


def bench_backup_restore(keys: int, workdir: Path, runs: int = 3) -> None:
    import dataclasses

    import bdr.api
    import bdr.engines.redis  # noqa: F401  (imports are not what is measured)

    source = spawn_redis(workdir / "bsource" / "data", name="production", extra=["--enable-debug-command", "yes"])
    target = spawn_redis(workdir / "btarget" / "data", name="target")
    try:
        client = source.client(timeout=600)
        client.execute_command("DEBUG", "POPULATE", keys, "key:", 64)
        config = dataclasses.replace(Config(), repository=str(workdir / "brepo"),
                                     redis={"production": source.instance, "target": target.instance})
        backup_floor = median_of(runs, lambda: measure_backup_floor(source, workdir / "floor-backup"))
        ours = [median_of(runs, lambda: measure_bdr_backup(config, compress=False))]
        backup_id = Repository.open(workdir / "brepo").sets("redis")[0].id
        ours.append(median_of(runs, lambda: measure_bdr_backup(config, compress=True)))
        size = (workdir / "floor-backup" / "dump.rdb").stat().st_size / 1e6
        print_times(f"backup of {keys} keys (RDB {size:.0f} MB), median of {runs}", backup_floor, ours)
        restore_floor = median_of(runs, lambda: measure_cold_start_floor(workdir / "floor-backup" / "dump.rdb",
                                                                         Path(tempfile.mkdtemp(dir=workdir))))
        restored = median_of(runs, lambda: measure_bdr_restore(config, backup_id, target))
        print_times(f"restore of {keys} keys, median of {runs}", restore_floor, [restored])
    finally:
        source.stop()
        target.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys in the data set (default 1M)")
    parser.add_argument("--only", choices=["backup", "selective"], help="run one part only")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bdr-bench-redis-"))
    try:
        if args.only != "selective":
            bench_backup_restore(args.keys, workdir)
        if args.only != "backup":
            bench_selective(args.keys, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
