"""Benchmark of the RDB content digest, as ratios against floors measured in the same run.

An RDB of ``--keys`` keys (default 1,000,000 and 5,000,000: 60% strings, 15% hashes, 10%
lists, 10% sets, 5% sorted sets, 10% of all keys with a TTL) is generated server-side by a
Lua script in a private redis-server and saved. Then, with the file in the page cache:

- ``floor: sha256sum``: the cheapest full read that computes something over every byte
  (what the manifest does anyway);
- ``floor: cp``: copying the file (what a backup does);
- ``bdr digest (C)``: :func:`bdr.engines.redis.rdb.digest_file`, median of 3 runs;
- ``bdr digest (Python reference)``: the pure-Python fallback on a smaller file, for
  information (it is meant for tests, not for production sizes).

Run: ``.venv/bin/python bench/rdb_digest.py [--keys 1000000 5000000] [--python-keys 100000]``.
Nothing is asserted: the table is the result.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bdr.engines.redis.rdb import digest_file
from bdr.runtime.process import spawn_redis

BATCH = 50_000

POPULATE = """
local first, last = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = first, last do
  local kind = i % 20
  local key
  if kind < 12 then
    key = 'user:session:' .. i
    redis.call('SET', key, 'token:' .. i .. ':abcdefghijklmnopqrstuvwxyz0123456789')
  elseif kind < 15 then
    key = 'user:profile:' .. i
    redis.call('HSET', key, 'name', 'user ' .. i, 'plan', 'pro', 'seen', i)
  elseif kind < 17 then
    key = 'user:history:' .. i
    redis.call('RPUSH', key, 'login', 'search', 'chat:' .. i)
  elseif kind < 19 then
    key = 'user:tags:' .. i
    redis.call('SADD', key, 'a', 'b' .. i % 100, i)
  else
    key = 'user:scores:' .. i
    redis.call('ZADD', key, 1, 'x', i / 7, 'y', -i, 'z')
  end
  if i % 10 == 3 then redis.call('PEXPIRE', key, 86400000 + i % 1000) end
end
return last - first + 1
"""


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    size: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.size / 1e6 / self.seconds if self.seconds > 0 else 0.0


def build_rdb(keys: int, workdir: Path) -> Path:
    """Generate ``keys`` keys in a private redis-server, SAVE, and keep a copy of dump.rdb."""
    server = spawn_redis(workdir / f"gen-{keys}" / "data", name="bench-gen")
    try:
        client = server.client(timeout=600)
        started = time.perf_counter()
        script = client.register_script(POPULATE)
        for first in range(0, keys, BATCH):
            script(args=[first, min(first + BATCH, keys) - 1])
        client.save()
        rdb = workdir / f"dump-{keys}.rdb"
        shutil.copyfile(server.data_path() / "dump.rdb", rdb)
        print(f"generated {client.dbsize()} keys in {time.perf_counter() - started:.1f}s "
              f"(RDB {rdb.stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
        return rdb
    finally:
        server.stop()
        shutil.rmtree(workdir / f"gen-{keys}", ignore_errors=True)


def warm(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(1 << 24):
            pass


def median_of(runs: int, measure: Callable[[], Measurement]) -> Measurement:
    results = sorted((measure() for _ in range(runs)), key=lambda m: m.seconds)
    return results[len(results) // 2]


def timed(name: str, size: int, action: Callable[[], object], note: str = "") -> Measurement:
    started = time.perf_counter()
    action()
    return Measurement(name, size, time.perf_counter() - started, note)


def measure_file(rdb: Path, runs: int) -> list[Measurement]:
    size = rdb.stat().st_size
    copy = rdb.with_suffix(".copy")
    warm(rdb)

    def sha256sum() -> object:
        return subprocess.run(["sha256sum", str(rdb)], check=True, capture_output=True)

    def cp() -> object:
        result = subprocess.run(["cp", str(rdb), str(copy)], check=True)
        copy.unlink()
        return result

    floor_sha = median_of(runs, lambda: timed("floor: sha256sum", size, sha256sum))
    floor_cp = median_of(runs, lambda: timed("floor: cp", size, cp))
    digests = [digest_file(rdb, implementation="c") for _ in range(runs)]
    best = sorted(digests, key=lambda d: d.seconds)[len(digests) // 2]
    ours = Measurement("bdr digest (C)", size, best.seconds,
                       f"{best.total_keys} keys, digest {best.value[:16]}..., CRC64 {best.checksum}")
    return [floor_sha, floor_cp, ours]


def measure_reference(rdb: Path) -> Measurement:
    warm(rdb)
    result = digest_file(rdb, implementation="python")
    return Measurement("bdr digest (Python reference)", rdb.stat().st_size, result.seconds,
                       f"{result.total_keys} keys")


def print_table(title: str, rows: list[Measurement]) -> None:
    sha, cp = rows[0], rows[1]
    print(f"\n{title}")
    print(f"{'method':<34} {'MB':>7} {'seconds':>9} {'MB/s':>8} {'x sha256sum':>12} {'x cp':>7}")
    for row in rows:
        print(f"{row.name:<34} {row.size / 1e6:>7.0f} {row.seconds:>9.3f} {row.rate:>8.0f} "
              f"{row.seconds / sha.seconds:>12.2f} {row.seconds / cp.seconds:>7.2f}")
        if row.note:
            print(f"    {row.note}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, nargs="+", default=[1_000_000, 5_000_000],
                        help="key counts of the RDB files (default 1M and 5M)")
    parser.add_argument("--python-keys", type=int, default=100_000,
                        help="keys of the file the Python reference digests (0: skip)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (the median is shown)")
    args, _ = parser.parse_known_args(argv)  # run.sh bench passes the same flags to every bench
    workdir = Path(tempfile.mkdtemp(prefix="bdr-bench-rdb-"))
    try:
        for keys in args.keys:
            rdb = build_rdb(keys, workdir)
            print_table(f"digest of an RDB of {keys} keys (page cache warm), median of {args.runs}",
                        measure_file(rdb, args.runs))
            rdb.unlink()
        if args.python_keys:
            rdb = build_rdb(args.python_keys, workdir)
            rows = measure_file(rdb, 1)
            print_table(f"Python reference on an RDB of {args.python_keys} keys", [*rows, measure_reference(rdb)])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
