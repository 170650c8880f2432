"""What every fault test needs: bdr as the operator runs it (a CLI subprocess), a config that
names only what an operator would write, and a writer whose acknowledged writes are counted.

A fault is injected with a failpoint (``BDR_FAILPOINTS``, see :mod:`bdr.failpoints`): the bdr
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from bdr.failpoints import ENV, KNOWN
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
    from bdr.journal import Journal
    from bdr.manifest import from_iso

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
