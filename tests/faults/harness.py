"""What every fault test needs: bdr as the operator runs it (a CLI subprocess), a config that
names only what an operator would write, and a writer whose acknowledged writes are counted.

A fault is injected with a failpoint (``BDR_FAILPOINTS``, see :mod:`bdr.safety.failpoints`): the bdr
process kills itself, or meets ENOSPC, at exactly the named step. The test then checks what
the operator would see (exit code, one-line message, ``bdr status``), runs the documented
recovery, and proves that no acknowledged write was lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from bdr.safety.failpoints import ENV, KNOWN
from tests.operators import OperatorRedis

BDR = [sys.executable, "-m", "bdr.cli.main"]
KILLED = -9


@dataclass(frozen=True, slots=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("bdr: error:")]


def bdr(config: Path, *args: str, failpoints: str | None = None, timeout: float = 180) -> Run:
    """Run ``bdr --config CONFIG ARGS`` as a subprocess; ``failpoints`` arms ``BDR_FAILPOINTS``."""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if failpoints:
        for item in failpoints.split(","):
            name = item.split(":")[0]
            assert name in KNOWN, f"unknown failpoint {name}: the test would pass without injecting anything"
        env[ENV] = failpoints
    proc = subprocess.run([*BDR, "--config", str(config), *args], capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def write_config(path: Path, op: OperatorRedis, **redis_settings: Any) -> Path:
    """bdr.yaml as an operator writes it: the url, the password's variable, the runtime; no data_dir,
    no config_file, no start_args (bdr reads how the server was started)."""
    instance: dict[str, Any] = {"url": op.url, "password_env": op.password_env}
    if op.supervisord is not None:
        instance.update(runtime="command", commands={k: list(v) for k, v in op.supervisord.commands("redis").items()})
    instance["log_file"] = str(op.base / "bdr-redis.log")
    instance.update(redis_settings)
    path.write_text(yaml.safe_dump({
        "repository": str(path.parent / "repo"),
        "redis": {"production": instance},
        "files": {"root": str(path.parent / "no-config"), "paths": ["none"]},
        "qdrant": {"production": {"path": str(path.parent / "qdrant")}},
    }))
    return path


@dataclass
class AckWriter:
    """Writes ``ack:<n>`` keys one at a time and remembers every write Redis acknowledged."""

    op: OperatorRedis
    prefix: str = "ack"
    acked: list[int] = field(default_factory=list)
    acked_at: dict[int, float] = field(default_factory=dict)
    """When each write was acknowledged (Unix time)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> AckWriter:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        client: redis.Redis | None = None
        while not self._stop.is_set():
            n += 1
            try:
                client = client or self.op.client(timeout=1.0)
                if client.set(f"{self.prefix}:{n}", n):
                    self.acked.append(n)
                    self.acked_at[n] = time.time()
            except redis.RedisError:
                client = None
                time.sleep(0.02)
            time.sleep(0.002)

    def stop(self) -> list[int]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return list(self.acked)

    def missing(self, before: float | None = None) -> list[int]:
        """Acknowledged writes the server does not hold now (only those acknowledged before ``before``)."""
        pipe = self.op.client().pipeline(transaction=False)
        for n in self.acked:
            pipe.exists(f"{self.prefix}:{n}")
        present = pipe.execute() if self.acked else []
        return [n for n, there in zip(self.acked, present, strict=True)
                if not there and (before is None or self.acked_at[n] < before)]


def step_started(repository: Path, step: str) -> float:
    """When ``step`` of the newest restore began (Unix time), from the journal's history."""
    from bdr.repository.manifest import from_iso
    from bdr.safety.journal import Journal

    (newest, *_) = Journal.at(repository).history()
    started = next(s["started_at"] for s in newest.steps if s["name"] == step)
    return from_iso(started).timestamp()


def listening_addresses(port: int) -> set[str]:
    """The local addresses something listens on with ``port`` (``127.0.0.1``, ``0.0.0.0``, ``::``)."""
    from bdr.runtime import procfs

    return {listener.address for listener in procfs.listeners(port)}


def work_dirs(data_dir: Path) -> list[str]:
    return sorted(p.name for p in data_dir.glob(".bdr-restore-*"))


def status_json(config: Path) -> dict[str, Any]:
    run = bdr(config, "status", "redis", "--json")
    with contextlib.suppress(ValueError):
        data: dict[str, Any] = json.loads(run.stdout)
        return data
    raise AssertionError(f"bdr status --json printed no JSON: {run.output}")


# --- helpers of the backup, disk, legacy, content, runtime and leftover fault tests ---------------------


def write_instance_config(path: Path, instance: dict[str, Any]) -> Path:
    """bdr.yaml with one Redis instance ``production`` as given (a container, a systemd unit ...)."""
    path.write_text(yaml.safe_dump({
        "repository": str(path.parent / "repo"),
        "redis": {"production": instance},
        "files": {"root": str(path.parent / "no-config"), "paths": ["none"]},
        "qdrant": {"production": {"path": str(path.parent / "qdrant")}},
    }))
    return path


def bdr_json(config: Path, *args: str, failpoints: str | None = None) -> tuple[Run, Any]:
    """``bdr --json ARGS``: the run and what it printed as JSON (None when it printed none)."""
    run = bdr(config, "--json", *args, failpoints=failpoints)
    try:
        return run, json.loads(run.stdout)
    except ValueError:
        return run, None


def listed_ids(config: Path) -> list[str]:
    """The set ids ``bdr list --json`` shows, newest first."""
    run, listed = bdr_json(config, "list")
    assert run.code == 0 and isinstance(listed, list), run.output
    return [str(entry["id"]) for entry in listed]


def backup_ok(config: Path, *args: str) -> str:
    """``bdr backup redis ARGS`` that must succeed; the id of the set it wrote."""
    run, made = bdr_json(config, "backup", "redis", *args)
    assert run.code == 0 and made is not None, run.output
    return str(made["id"])


def bdr_acting(config: Path, *args: str, failpoints: str, actions: dict[str, Callable[[], None]],
               timeout: float = 180) -> Run:
    """``bdr ARGS`` with ``failpoints`` armed; when bdr logs that it pauses at failpoint NAME (``NAME:sleep=S``),
    ``actions[NAME]()`` runs (meanwhile bdr waits): a test acts at exactly that step, without a race."""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    for item in failpoints.split(","):
        assert item.split(":")[0] in KNOWN, f"unknown failpoint {item}"
    env[ENV] = failpoints
    proc = subprocess.Popen([*BDR, "--config", str(config), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout else ""), daemon=True)
    reader.start()
    err: list[str] = []
    pending = dict(actions)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            err.append(line)
            for name in [n for n in pending if f"failpoint {n}: sleep" in line]:
                pending.pop(name)()
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    assert not pending, f"bdr never paused at {', '.join(pending)}: {''.join(err)[-500:]}"
    return Run(proc.returncode, "".join(out), "".join(err))


def free_bytes(path: Path) -> int:
    vfs = os.statvfs(path)
    return vfs.f_bavail * vfs.f_frsize


def fill_disk(path: Path, leave: int, name: str = "filler") -> Path:
    """Write a file into ``path`` so that only ``leave`` bytes stay free on its file system."""
    filler = path / name
    size = free_bytes(path) - leave
    assert size > 0, f"{path} has only {free_bytes(path)} bytes free, less than {leave}"
    with filler.open("ab") as handle:
        chunk = b"\0" * (1 << 20)
        while size > 0:
            size -= handle.write(chunk[:size])
    return filler


def redis_servers_of(op: OperatorRedis) -> set[int]:
    """Pids of the redis-server processes that run in the instance's directories (started by anyone)."""
    from bdr.runtime import procfs

    roots = {str(op.base.resolve()), str(op.data_dir.resolve())}
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        facts = procfs.read_process(int(entry.name))
        if facts is None or facts.comm != "redis-server" or not facts.cwd:
            continue
        if any(facts.cwd == root or facts.cwd.startswith(root + "/") for root in roots):
            found.add(facts.pid)
    return found


def start_again(op: OperatorRedis, args: str = "") -> None:
    """Start a Redis of the ``shell`` way again as its operator did (after it was shut down)."""
    subprocess.run(["bash", "-c", f"cd {op.base} && redis-server redis.conf {args} >> out.log 2>&1 &"], check=True,
                   timeout=30, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    op.wait_up()


def journal_files(repository: Path) -> list[str]:
    """Open restore journals (an interrupted or running restore each)."""
    root = repository / "journal"
    return sorted(p.name for p in root.glob("*.json")) if root.is_dir() else []


def read_markers(repository: Path) -> list[str]:
    root = repository / "locks"
    return sorted(p.name for p in root.glob("read-*.json")) if root.is_dir() else []


def resp(*args: bytes) -> bytes:
    """One command in Redis's protocol, as an AOF holds it."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
