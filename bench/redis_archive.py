"""Benchmarks of continuous archiving: the archiver's lag under 50,000 writes a second, and the replay's speed.

**Lag under load.** A private redis-server (no persistence, a free loopback port) is written to
at ``--rate`` commands a second (default 50,000: ``SET key:<n> <32 bytes>``, sent by a pipelined
writer in a process of its own, 1 ms bursts) for ``--seconds`` seconds, while ``bdr archive
redis`` (a process of its own, as its systemd unit runs it; ``segment_seconds`` from
``--segment-seconds``, default 1 s) archives it into a local repository. Every 100 ms the bench
reads the master's offset (``INFO replication``, at time ``t``). Afterwards, from what the
archive holds, each sample gets two lags, measured outside bdr:

- **received**: when the archiver had that offset (the time of its first mark at or past it,
  minus ``t``): how far behind the master the replica runs, the "never blocks the server" figure;
- **sealed**: when a segment reaching that offset was in the repository (the segment's file
  time, minus ``t``): what a total loss at ``t`` would cost, the archive's RPO. It is bounded
  by ``segment_seconds`` plus the sealing and the upload by design.

The distribution (median, p90, p99, max) of both is printed, with the archiver's CPU (user +
system seconds of its process over the run's wall time: cores used) and the rate the writer
reached. Aim: sealed lag under 1 s at ``segment_seconds`` 0.5; received lag well under that.

**Replay.** The archived stream (the ``--rate * --seconds`` commands, after the archiver's first
base) is replayed the way a restore's check step does it: the segments are read and checked
against their checksums, base + stream are assembled into an AOF directory
(:mod:`bdr.engines.redis.archive.replay`) and a temporary redis-server loads it. Floor: a cold
``redis-server`` start on the same AOF directory (prepared beforehand), from the exec to
``loading:0`` with bdr's own readiness poll: Redis loading the same commands from an AOF.
Interleaved runs (floor, bdr, ...), medians of ``--runs``; the ratio is the floor's time over
bdr's (a speed ratio). Aim: at least 0.8.

Nothing is asserted: the table is the result. Run: ``.venv/bin/python bench/redis_archive.py
[--rate 50000] [--seconds 20] [--segment-seconds 0.5] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bdr.clients import redis_address
from bdr.config import ArchiveSettings, Config
from bdr.engines.redis.archive.bases import bases_of
from bdr.engines.redis.archive.layout import list_segments, open_segment
from bdr.engines.redis.archive.replay import assemble
from bdr.engines.redis.archive.spool import read_status
from bdr.engines.redis.archive.window import plan, windows
from bdr.engines.redis.temporary import LoadFrom, temporary_instance
from bdr.repository import Repository, extract_set
from bdr.runtime.process import RedisProcess, spawn_redis
from bdr.util.waiting import wait_for

SAMPLE_EVERY = 0.1
BURST = 0.001
RECEIVED_AIM = 1.0
SEALED_AIM = 1.0
REPLAY_AIM = 0.8
TICKS = os.sysconf("SC_CLK_TCK")


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (f"median {statistics.median(ordered) * 1000:7.1f} ms  p90 {at(0.9) * 1000:7.1f} ms  "
            f"p99 {at(0.99) * 1000:7.1f} ms  max {ordered[-1] * 1000:7.1f} ms  ({len(ordered)} samples)")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _resp(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(out)


def writer(port: int, rate: int, seconds: float, done: Any) -> None:
    """SET key:<n> <32 bytes>, ``rate`` a second in 1 ms bursts, pipelined on one connection; replies read."""
    sock = socket.create_connection(("127.0.0.1", port))
    per_burst = max(1, round(rate * BURST))
    value = "v" * 32
    sent = 0
    began = time.perf_counter()
    pending = 0
    sock.setblocking(True)
    while True:
        elapsed = time.perf_counter() - began
        if elapsed >= seconds:
            break
        due = int(elapsed * rate) + per_burst
        if sent < due:
            count = due - sent
            sock.sendall(b"".join(_resp("SET", f"key:{(sent + i) % 1_000_000}", value) for i in range(count)))
            sent += count
            pending += count
        if pending > per_burst * 20:  # read what came back so the socket never fills
            data = sock.recv(1 << 20)
            pending -= data.count(b"+OK\r\n")
        else:
            time.sleep(BURST / 2)
    sock.settimeout(10)
    while pending > 0:
        data = sock.recv(1 << 20)
        pending -= data.count(b"+OK\r\n")
    done.value = sent / (time.perf_counter() - began)
    sock.close()


@dataclasses.dataclass
class Lab:
    root: Path
    server: RedisProcess
    config: Config

    @property
    def repo(self) -> Repository:
        return Repository.open(self.config.repository_path())


@contextlib.contextmanager
def lab(workdir: Path, segment_seconds: float) -> Iterator[Lab]:
    server = spawn_redis(workdir / "redis" / "data", name="production",
                         extra=["--repl-diskless-sync-delay", "0", "--repl-backlog-size", "64mb"])
    try:
        config = dataclasses.replace(Config(), repository=str(workdir / "repo"),
                                     redis={"production": server.instance}, redis_default="production",
                                     archive={"production": ArchiveSettings("production",
                                                                            segment_seconds=segment_seconds,
                                                                            max_lag=60.0)})
        yield Lab(workdir, server, config)
    finally:
        server.stop()


def start_archiver(here: Lab) -> subprocess.Popen[bytes]:
    policy = here.root / "bdr.yaml"
    settings = here.config.archive["production"]
    policy.write_text(yaml.safe_dump({
        "repository": str(here.config.repository_path()),
        "redis": {"production": {"url": here.server.instance.url, "password_env": None}},
        "archive": {"redis": {"production": {"segment_seconds": f"{settings.segment_seconds}s",
                                             "max_lag": "60s"}}}}))
    process = subprocess.Popen([sys.executable, "-m", "bdr.cli.main", "--config", str(policy), "archive", "redis"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=(here.root / "archiver.log").open("ab"))
    spool = here.config.archive_spool("production")

    def streaming() -> bool:
        status = read_status(spool) or {}
        return bool(status.get("pid") == process.pid and status.get("connected") and not status.get("catching_up")
                    and status.get("covered_until_us"))

    if not wait_for(streaming, 60.0, 0.05):
        process.kill()
        raise SystemExit(f"the archiver did not start: {(here.root / 'archiver.log').read_text()[-2000:]}")
    return process


def bench_lag(here: Lab, rate: int, seconds: float) -> None:
    archiver = start_archiver(here)
    client = here.server.client()
    achieved = multiprocessing.Value("d", 0.0)
    _host, port, _db = redis_address(here.server.instance.url)
    load = multiprocessing.Process(target=writer, args=(port, rate, seconds, achieved))
    cpu_before, wall_before = cpu_seconds(archiver.pid), time.perf_counter()
    load.start()
    samples: list[tuple[float, int]] = []
    while load.is_alive():
        asked = time.time()
        offset = int(client.info("replication")["master_repl_offset"])
        samples.append((asked, offset))
        time.sleep(SAMPLE_EVERY)
    load.join()
    cpu_used = cpu_seconds(archiver.pid) - cpu_before
    wall = time.perf_counter() - wall_before
    final = int(client.info("replication")["master_repl_offset"])
    spool = here.config.archive_spool("production")
    wait_for(lambda: int((read_status(spool) or {}).get("delivered_offset") or 0) >= final, 60.0, 0.1)
    archiver.send_signal(signal.SIGTERM)
    archiver.wait(90)
    repo = here.repo
    segments = list_segments(repo, "production")
    marks: list[tuple[int, int]] = []
    sealed: list[tuple[int, float]] = []
    for segment in segments:
        with open_segment(repo, segment, None) as reader:
            marks += [(m.offset, m.us) for m in reader.marks]
            reader.verify()
        sealed.append((segment.end, repo.storage.local_path(segment.key).stat().st_mtime))  # type: ignore[attr-defined]
    marks.sort()
    sealed.sort()
    received_lags, sealed_lags = [], []
    for asked, offset in samples:
        got = next((us / 1e6 for off, us in marks if off >= offset), None)
        stored = next((at for end, at in sealed if end >= offset), None)
        if got is not None:
            received_lags.append(max(0.0, got - asked))
        if stored is not None:
            sealed_lags.append(max(0.0, stored - asked))
    print(f"\narchiver lag at {rate} writes/s for {seconds:.0f}s (the writer reached {achieved.value:,.0f}/s; "
          f"{final / 1e6:.1f} MB of stream, {len(segments)} segments of "
          f"{here.config.archive['production'].segment_seconds:g}s)")
    print(f"  received by the archiver:  {percentiles(received_lags)}")
    print(f"  sealed in the repository:  {percentiles(sealed_lags)}")
    print(f"  archiver CPU: {cpu_used:.2f}s user+system over {wall:.1f}s = {cpu_used / wall:.2f} core(s)")
    worst_received = max(received_lags, default=0.0)
    worst_sealed = max(sealed_lags, default=0.0)
    print(f"  aim: sealed lag under {SEALED_AIM:g}s: {'met' if worst_sealed < SEALED_AIM else 'NOT met'} "
          f"(max {worst_sealed * 1000:.0f} ms); received lag under {RECEIVED_AIM:g}s: "
          f"{'met' if worst_received < RECEIVED_AIM else 'NOT met'} (max {worst_received * 1000:.0f} ms)")


def floor_load(aof_dir: Path) -> float:
    """A cold redis-server start on ``aof_dir`` (base + incr), until it answers with loading:0."""
    data = aof_dir.parent / "floor-data"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(aof_dir, data / aof_dir.name)
    os.sync()
    began = time.perf_counter()
    server = spawn_redis(data, name="floor", appendonly=True,
                         extra=["--appenddirname", aof_dir.name, "--appendfilename", "appendonly.aof",
                                "--appendfsync", "no", "--auto-aof-rewrite-percentage", "0", "--databases", "256"])
    seconds = time.perf_counter() - began
    keys = server.client().dbsize()
    server.kill()
    shutil.rmtree(data, ignore_errors=True)
    return seconds if keys else float("nan")


def bdr_replay(here: Lab, base_dir: Path, runs_dir: Path) -> float:
    """What the restore's check step does with the archive: read and check the segments, assemble, load."""
    repo = here.repo
    segments = list_segments(repo, "production")
    bases = bases_of(repo, "production")
    target = windows(segments, bases)[-1].to_us
    chosen = plan("production", segments, bases, target)
    out = runs_dir / f"replay-{time.monotonic_ns()}"
    began = time.perf_counter()
    assemble(repo, chosen, base_dir / "dump.rdb", out, None)
    with temporary_instance(out, load_from=LoadFrom.AOF, scratch_parent=runs_dir) as server:
        keys = server.client().dbsize()
    seconds = time.perf_counter() - began
    shutil.rmtree(out, ignore_errors=True)
    return seconds if keys else float("nan")


def bench_replay(here: Lab, runs: int) -> None:
    repo = here.repo
    segments = list_segments(repo, "production")
    bases = bases_of(repo, "production")
    chosen = plan("production", segments, bases, windows(segments, bases)[-1].to_us)
    base = repo.get(chosen.base_id)
    base_dir = here.root / "base"
    extract_set(repo, base, base_dir)
    prepared = here.root / "prepared"
    replayed = assemble(repo, chosen, base_dir / "dump.rdb", prepared, None)
    aof = prepared / "appendonlydir"
    floors, ours = [], []
    for run in range(runs):
        floors.append(floor_load(aof))
        ours.append(bdr_replay(here, base_dir, here.root))
        print(f"  run {run + 1}/{runs}: floor {floors[-1]:.2f}s, bdr {ours[-1]:.2f}s", file=sys.stderr, flush=True)
    floor, mine = statistics.median(floors), statistics.median(ours)
    ratio = floor / mine
    print(f"\nreplay of {replayed.stream_bytes / 1e6:.1f} MB of stream ({len(chosen.segments)} segments) after base "
          f"{chosen.base_id}")
    print(f"  floor: redis-server loading the same AOF   median {floor:6.2f}s  [{min(floors):.2f}-{max(floors):.2f}]")
    print(f"  bdr: segments read, checked, assembled, loaded median {mine:6.2f}s  [{min(ours):.2f}-{max(ours):.2f}]")
    print(f"  speed ratio floor/bdr {ratio:.2f} (minimums {min(floors) / min(ours):.2f}); aim at least "
          f"{REPLAY_AIM:g}: {'met' if ratio >= REPLAY_AIM else 'NOT met'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=int, default=50_000, help="writes a second during the lag measurement")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the writer writes")
    parser.add_argument("--segment-seconds", type=float, default=0.5, help="archive.redis.*.segment_seconds")
    parser.add_argument("--runs", type=int, default=3, help="runs of the replay measurement (median shown)")
    args, _ = parser.parse_known_args(argv)  # run.sh bench passes the same flags to every bench
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bdr-bench-archive-"))
    try:
        with lab(workdir, args.segment_seconds) as here:
            bench_lag(here, args.rate, args.seconds)
            bench_replay(here, args.runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{time.perf_counter() - started:.0f}s in all")


if __name__ == "__main__":
    main()
