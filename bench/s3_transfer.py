"""S3 transfer throughput: bdr's parallel multipart upload and ranged download against boto3's, same run.

moto's S3 server runs in its own process on 127.0.0.1 (a free port). The data is a file of
``--mib`` (1024) MiB of random bytes (incompressible, as an encrypted backup is), in the
page cache before the first run. Every transfer runs in a fresh subprocess, so its memory
high-water mark (``ru_maxrss``) is its own; its time is the transfer alone (imports and the
client's creation excluded). Both sides use the same part size (``--part-mib``, 16, bdr's
default ``remote.part_size_mib``) and concurrency (``--concurrency``, 4, bdr's default
``remote.concurrency``).

**Floor**: ``boto3``'s managed transfers, ``upload_file`` and ``download_file`` with
``TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=N)``,
otherwise boto3's defaults (a CRC32 per part on the way up, nothing checked on the way down).

**bdr, Storage API** (the fair comparison, and the row the aim is about): the same bytes
through ``S3Storage.open_write`` (the file read in 1 MiB writes, as ``SetWriter.add_file``
feeds the sink) and ``S3Storage.open_read`` into a file. bdr does work boto3 does not, and
that work is in the time: the whole object's sha256 in order on the way up, a sha256 per
part (sent to S3, which checks it), and on the way down the whole object's sha256 compared
with the one the upload reported (what the repository's ``CheckedReader`` does against the
manifest). It reads the stream 1 MiB at a time, as the repository does, and writes the file
256 KiB at a time, as boto3 does: on this kind of VM a 1 MiB ``write`` into the page cache
can cost several times the CPU of four 256 KiB ones (new page-cache folios), which is the
file's cost, not the transfer's. What it leaves out is the repository's own bookkeeping, which boto3 has no
counterpart of: **bdr, repository** rows run the normal path (``SetWriter.add_file`` in a
locked new set, its marker and sealed manifest; ``extract_set``, which checks the manifest,
hashes the object against it and hashes the file again for the manifest's file entry), for
reference. Aim: bdr's Storage API throughput >= 0.9x boto3's, both ways.

Memory: ``peak RSS`` is the transfer's growth of ``ru_maxrss`` over the same process just
before it (imports and clients loaded); ``Python peak`` is tracemalloc's high-water mark
over the transfer, measured in separate runs (tracemalloc slows every allocation). bdr's
bound is ``concurrency x part size`` (64 MiB with the defaults).

How to read it: runs are interleaved (boto3, bdr, bdr repository; the order rotates every
run), so a shared machine's load falls on all rows alike; each row is the median of
``--runs`` runs with min-max and the spread (max-min over the median); ``x floor`` is the
ratio of median throughputs (and of the best runs); ``w/o join`` the same ratio over each run's time outside
moto's CompleteMultipartUpload (see ``moto join``), the client's own share; ``CPU s/GiB`` is the transfer
process's user + system time (all its threads) per GiB moved; ``moto join`` the time the
upload waited for moto's CompleteMultipartUpload (it copies the parts into one object and
checksums them: SHA256 for bdr's parts, CRC32 for boto3's; part of the upload's time, and
a cost real S3 does not make its client wait for). ``cpu stall`` is the share of the
row's time some task of the machine waited for a CPU (``/proc/pressure/cpu``; moto's and
bdr's own threads count too). Nothing is asserted: the table is the result.

Run: ``.venv/bin/python bench/s3_transfer.py [--mib 1024] [--runs 5] [--part-mib 16] [--concurrency 4]
[--only upload]`` (``--only upload`` skips the downloads, which moto serves slowly: ~10-15 MiB/s here).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
BUCKET = "bdr-bench"
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIABDRBENCH00000000", "AWS_SECRET_ACCESS_KEY": "bdr-bench-secret",
               "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}
WRITE_SIZE = MIB
"""How the file is fed to bdr's sink: SetWriter.add_file reads 1 MiB at a time."""
FILE_WRITE = 256 * 1024
"""How the Storage API row writes what it reads into its file: as boto3's download_file does (io_chunksize)."""


# --- one transfer, in its own process -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """What a worker process is asked to do."""

    mode: str
    endpoint: str
    path: str
    part: int
    concurrency: int
    key: str = ""
    sha256: str = ""
    trace: bool = False


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def maxrss() -> int:
    """This process's memory high-water mark, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def boto3_client(job: Job) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(s3={"addressing_style": "path"}, max_pool_connections=job.concurrency + 4)
    return boto3.client("s3", endpoint_url=job.endpoint, region_name=REGION, config=config)


def transfer_config(job: Job) -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=job.part, multipart_chunksize=job.part,
                          max_concurrency=job.concurrency, use_threads=True)


def bdr_settings(job: Job) -> Any:
    from bdr.config import RemoteSettings

    return RemoteSettings(url=f"s3://{BUCKET}/repo", endpoint_url=job.endpoint, region=REGION,
                          part_size_mib=job.part // MIB, concurrency=job.concurrency, allow_plaintext=True)


COMPLETION: dict[str, float] = {"seconds": 0.0}
"""Time spent in CompleteMultipartUpload: moto joins the parts and checksums them (SHA256 for bdr, CRC32 for
boto3) while the client waits; real S3 does not make the client wait for a copy of the object."""


def time_completions(client: Any) -> None:
    started: list[float] = []

    def before(**_: Any) -> None:
        started.append(time.perf_counter())

    def after(**_: Any) -> None:
        COMPLETION["seconds"] += time.perf_counter() - started.pop()

    client.meta.events.register("before-call.s3.CompleteMultipartUpload", before)
    client.meta.events.register("after-call.s3.CompleteMultipartUpload", after)


def prepare(job: Job) -> Callable[[], dict[str, Any]]:
    """Everything loaded and connected; the returned action is the transfer alone."""
    if job.mode.startswith("boto3"):
        client, config = boto3_client(job), transfer_config(job)
        time_completions(client)
        if job.mode == "boto3-upload":
            return lambda: client.upload_file(job.path, BUCKET, job.key, Config=config) or {}
        return lambda: client.download_file(BUCKET, job.key, job.path, Config=config) or {}

    from bdr.repository import Repository, extract_set
    from bdr.storage.s3 import S3Storage

    settings = bdr_settings(job)
    storage = S3Storage(BUCKET, "raw", settings)
    time_completions(storage.client)
    if job.mode == "bdr-upload":
        def upload() -> dict[str, Any]:
            sink = storage.open_write(job.key)
            with open(job.path, "rb") as handle:
                while block := handle.read(WRITE_SIZE):
                    sink.write(block)
            written = sink.commit()
            return {"sha256": written.sha256, "parts": len(written.parts)}
        return upload
    if job.mode == "bdr-download":
        def download() -> dict[str, Any]:
            digest = hashlib.sha256()
            with storage.open_read(job.key) as stream, open(job.path, "wb") as out:
                while block := stream.read(WRITE_SIZE):
                    digest.update(block)
                    view = memoryview(block)
                    for offset in range(0, len(view), FILE_WRITE):
                        out.write(view[offset:offset + FILE_WRITE])
            if digest.hexdigest() != job.sha256:
                raise SystemExit(f"downloaded {job.key} does not match its sha256")
            return {}
        return download
    repo = Repository.open(settings.url or "", settings=settings)
    if isinstance(repo.storage, S3Storage):
        time_completions(repo.storage.client)
    if job.mode == "bdr-set-upload":
        def set_upload() -> dict[str, Any]:
            with repo.lock("backup"), repo.new_set("redis", "bench", "rdb") as writer:
                writer.add_file(Path(job.path), "dump.rdb")
                writer.commit()
            return {"set": writer.id}
        return set_upload
    if job.mode == "bdr-set-download":
        backup = repo.get(job.key)

        def set_download() -> dict[str, Any]:
            extract_set(repo, backup, Path(job.path))
            return {}
        return set_download
    raise SystemExit(f"unknown mode {job.mode}")


def work(job: Job) -> None:
    """Run one transfer; print its time and memory as JSON."""
    os.environ.update(CREDENTIALS)
    action = prepare(job)
    before = maxrss()
    if job.trace:
        tracemalloc.start()
    started, cpu = time.perf_counter(), cpu_seconds()
    extra = action()
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    traced = tracemalloc.get_traced_memory()[1] if job.trace else None
    print(json.dumps({"seconds": seconds, "cpu": cpu, "completion": COMPLETION["seconds"],
                      "rss_growth": maxrss() - before, "rss_peak": maxrss(), "traced_peak": traced, **extra}))


def run_worker(job: Job) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(dataclasses.asdict(job))],
                          capture_output=True, text=True, check=False, env={**os.environ, **CREDENTIALS})
    if done.returncode != 0:
        raise SystemExit(f"{job.mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the lab: moto's server, the data, the runs -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server in a process of its own, on a free loopback port; its endpoint."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("moto's server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def empty(client: Any) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if objects:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": objects, "Quiet": True})


def make_data(path: Path, mib: int) -> None:
    with path.open("wb") as out:
        for _ in range(mib):
            out.write(os.urandom(MIB))


def cpu_some() -> float | None:
    """Total µs some task waited for a CPU since boot (/proc/pressure/cpu), None where not available."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return float(line.rsplit("total=", 1)[1])


@dataclasses.dataclass
class Row:
    """One way of moving the data, over the runs."""

    name: str
    size: int
    seconds: list[float] = dataclasses.field(default_factory=list)
    cpu: list[float] = dataclasses.field(default_factory=list)
    completion: list[float] = dataclasses.field(default_factory=list)
    rss: list[int] = dataclasses.field(default_factory=list)
    stalls: list[float] = dataclasses.field(default_factory=list)
    traced: int | None = None

    def add(self, result: dict[str, Any], stall: float | None) -> None:
        self.seconds.append(float(result["seconds"]))
        self.cpu.append(float(result["cpu"]))
        self.completion.append(float(result["completion"]))
        self.rss.append(int(result["rss_growth"]))
        if stall is not None:
            self.stalls.append(stall)

    def throughput(self, seconds: float) -> float:
        return self.size / MIB / seconds

    @property
    def median(self) -> float:
        return self.throughput(statistics.median(self.seconds))

    @property
    def without_join(self) -> float:
        """Median throughput over the time outside moto's CompleteMultipartUpload (the client's share)."""
        return self.throughput(statistics.median(s - c for s, c in zip(self.seconds, self.completion, strict=True)))

    @property
    def best(self) -> float:
        return self.throughput(min(self.seconds))

    def spread(self) -> str:
        low, high = self.throughput(max(self.seconds)), self.throughput(min(self.seconds))
        return f"[{low:.0f}-{high:.0f}] {(high - low) / self.median:.0%}"

    def stall(self) -> str:
        return f"{statistics.median(self.stalls):.0%}" if self.stalls else "n/a"


def timed(job: Job, row: Row) -> dict[str, Any]:
    before, started = cpu_some(), time.monotonic()
    result = run_worker(job)
    after, elapsed = cpu_some(), time.monotonic() - started
    stall = (after - before) / 1e6 / elapsed if before is not None and after is not None else None
    row.add(result, stall)
    print(f"  {row.name}: {row.throughput(float(result['seconds'])):.0f} MiB/s, {result['cpu']:.1f} s CPU, "
          f"+{result['rss_growth'] / MIB:.0f} MiB RSS", file=sys.stderr, flush=True)
    return result


def print_table(title: str, floor: Row, rows: list[Row], aim: float) -> None:
    print(f"\n{title}")
    print(f"{'method':<34} {'MiB/s':>6} {'[min-max] spread':>18} {'x floor':>7} {'(best)':>6} {'w/o join':>8} "
          f"{'CPU s/GiB':>9} {'moto join':>9} {'peak RSS':>9} {'Python peak':>11} {'cpu stall':>9}")
    for row in [floor, *rows]:
        ratio = row.median / floor.median
        best = row.best / floor.best
        traced = f"{row.traced / MIB:.0f} MiB" if row.traced is not None else "-"
        mark = "" if row is floor or not row.name.startswith("bdr, Storage") else (
            "  ok" if ratio >= aim else f"  below {aim}x")
        cpu = statistics.median(row.cpu) * 1024 * MIB / row.size
        join = statistics.median(row.completion)
        joined = f"{join:.1f} s" if join else "-"
        unjoined = row.without_join / floor.without_join
        print(f"{row.name:<34} {row.median:>6.0f} {row.spread():>18} {ratio:>7.2f} {best:>6.2f} {unjoined:>8.2f} "
              f"{cpu:>9.2f} {joined:>9} {statistics.median(row.rss) / MIB:>5.0f} MiB {traced:>11} "
              f"{row.stall():>9}{mark}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--part-mib", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--only", nargs="+", choices=["upload", "download"], default=["upload", "download"])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        work(Job(**json.loads(args.worker)))
        return

    import boto3

    size, part = args.mib * MIB, args.part_mib * MIB
    with tempfile.TemporaryDirectory(prefix="bdr-bench-s3-") as tmp, moto_server() as endpoint:
        work_dir = Path(tmp)
        source = work_dir / "data.bin"
        make_data(source, args.mib)
        client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                              aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        client.create_bucket(Bucket=BUCKET)
        print(f"{args.mib} MiB of random bytes, parts of {args.part_mib} MiB, concurrency {args.concurrency}, "
              f"moto {endpoint}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", file=sys.stderr)

        def job(mode: str, path: Path, key: str = "", sha256: str = "", trace: bool = False) -> Job:
            return Job(mode, endpoint, str(path), part, args.concurrency, key, sha256, trace)

        up = [Row("boto3 upload_file", size), Row("bdr, Storage API open_write", size),
              Row("bdr, repository SetWriter.add_file", size)]
        down = [Row("boto3 download_file", size), Row("bdr, Storage API open_read", size),
                Row("bdr, repository extract_set", size)]
        out = work_dir / "out"
        for run in range(args.runs):
            print(f"run {run + 1}/{args.runs}", file=sys.stderr, flush=True)
            order = [(run + i) % 3 for i in range(3)]
            uploaded: dict[int, dict[str, Any]] = {}
            for i in order:
                mode, key = [("boto3-upload", "boto3/data.bin"), ("bdr-upload", "bdr/data.bin"),
                             ("bdr-set-upload", "")][i]
                uploaded[i] = timed(job(mode, source, f"raw/{key}" if i == 0 else key), up[i])
            sha256 = uploaded[1]["sha256"]
            for i in order if "download" in args.only else []:
                target = out / f"{i}"
                target.parent.mkdir(exist_ok=True)
                if i == 0:
                    timed(job("boto3-download", target, "raw/bdr/data.bin"), down[0])
                elif i == 1:
                    timed(job("bdr-download", target, "bdr/data.bin", sha256), down[1])
                else:
                    timed(job("bdr-set-download", target, uploaded[2]["set"]), down[2])
                if target.is_dir():
                    for item in target.iterdir():
                        item.unlink()
                    target.rmdir()
                else:
                    target.unlink()
            empty(client)  # moto keeps every object in memory

        print("memory (tracemalloc) runs", file=sys.stderr, flush=True)
        traced_up = run_worker(job("bdr-upload", source, "bdr/data.bin", trace=True))
        up[1].traced = traced_up["traced_peak"]
        target = out / "traced"
        up[0].traced = run_worker(job("boto3-upload", source, "raw/boto3/data.bin", trace=True))["traced_peak"]
        if "download" in args.only:
            down[1].traced = run_worker(job("bdr-download", target, "bdr/data.bin", traced_up["sha256"],
                                            trace=True))["traced_peak"]
            target.unlink()
            down[0].traced = run_worker(job("boto3-download", target, "raw/boto3/data.bin",
                                            trace=True))["traced_peak"]

    print(f"\nS3 transfers of {args.mib} MiB (random bytes) to moto on 127.0.0.1, parts of {args.part_mib} MiB, "
          f"concurrency {args.concurrency}; median of {args.runs} runs, MiB/s (higher is better)")
    print_table("upload", up[0], up[1:], 0.9)
    if "download" in args.only:
        print_table("download", down[0], down[1:], 0.9)
    print(f"\nbdr's bound: concurrency x part size = {args.concurrency * args.part_mib} MiB of parts in memory")


if __name__ == "__main__":
    main()
