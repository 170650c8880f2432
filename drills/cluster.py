"""A Redis Cluster on 127.0.0.1: masters and replicas started the ordinary way, for drills and tests.

Each node is a ``redis-server --cluster-enabled yes`` process started by
:func:`~bdr.runtime.process.spawn_redis` on a free loopback port whose cluster bus port
(port + 10000) is free too, with its own data directory (``nodes.conf`` beside the data
files, as an operator runs it). The cluster is made the way operators make one:
``redis-cli --cluster create ... --cluster-replicas N --cluster-yes``. A short
``cluster-node-timeout`` makes a failover take a second, not fifteen.

Nothing here is bdr: bdr discovers the topology itself. Teardown kills every process that
listens on a node's port, whoever started it (bdr restarts nodes during a restore).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bdr.config import RedisInstance
from bdr.runtime.process import RedisProcess, spawn_redis
from bdr.waiting import wait_for

BUS_OFFSET = 10000
NODE_TIMEOUT_MS = 1000
SLOTS = 16384
PORT_RANGE = (20000, 40000)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int, taken: Sequence[int] = ()) -> list[int]:
    """``count`` loopback ports that are free, and whose cluster bus ports (+10000) are free too."""
    ports: list[int] = []
    rng = random.Random()
    while len(ports) < count:
        port = rng.randrange(*PORT_RANGE)
        if port in ports or port in taken or port + BUS_OFFSET in ports:
            continue
        if _bindable(port) and _bindable(port + BUS_OFFSET):
            ports.append(port)
    return ports


def node_args(timeout_ms: int = NODE_TIMEOUT_MS) -> list[str]:
    """The cluster settings of every node (besides its port and dir, which spawn_redis sets)."""
    return ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(timeout_ms), "--cluster-require-full-coverage", "yes",
            "--repl-diskless-sync-delay", "0"]


def client_at(port: int, timeout: float = 10.0) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=2.0,
                       retry=Retry(NoBackoff(), 0))


def _info(port: int, section: str) -> dict[str, object]:
    try:
        return dict(client_at(port, 2.0).info(section))
    except redis.RedisError:
        return {}


def cluster_ok(port: int) -> bool:
    info = _info(port, "cluster")
    if not info:
        return False
    try:
        raw = client_at(port, 2.0).execute_command("CLUSTER", "INFO")
    except redis.RedisError:
        return False
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    facts = dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)
    return facts.get("cluster_state") == "ok" and facts.get("cluster_slots_ok") == str(SLOTS)


@dataclass
class LoopbackCluster:
    """N masters with R replicas each on 127.0.0.1 (see the module docstring)."""

    root: Path
    masters: int = 3
    replicas: int = 1
    appendonly: bool = False
    extra: tuple[str, ...] = ()
    timeout_ms: int = NODE_TIMEOUT_MS
    nodes: list[RedisProcess] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    # --- making it -----------------------------------------------------------------------------

    def start(self) -> LoopbackCluster:
        count = self.masters * (1 + self.replicas)
        self.ports = cluster_ports(count)
        for port in self.ports:
            self.nodes.append(self.spawn(port))
        self.create()
        return self

    def spawn(self, port: int, *, wipe: bool = False) -> RedisProcess:
        """Start (again) the node of ``port``, with an empty data directory when ``wipe``."""
        data = self.data_dir(port)
        if wipe:
            import shutil

            shutil.rmtree(data, ignore_errors=True)
        return spawn_redis(data, name=f"node-{port}", port=port, appendonly=self.appendonly,
                           extra=[*node_args(self.timeout_ms), *self.extra])

    def data_dir(self, port: int) -> Path:
        return self.root / f"node-{port}" / "data"

    def create(self, ports: Sequence[int] | None = None, replicas: int | None = None) -> None:
        """``redis-cli --cluster create`` over ``ports`` (default: every node), then wait for ``cluster_state:ok``."""
        ports = list(ports or self.ports)
        replicas = self.replicas if replicas is None else replicas
        argv = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas", str(replicas), "--cluster-yes"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
        self.wait_ok(ports)

    def wait_ok(self, ports: Sequence[int] | None = None, timeout: float = 60.0) -> None:
        """Every node in ``ports`` sees ``cluster_state:ok`` with all slots, and every replica is in sync."""
        ports = list(ports or self.ports)

        def settled() -> bool:
            if not all(cluster_ok(p) for p in ports):
                return False
            for port in ports:
                repl = _info(port, "replication")
                if repl.get("role") == "slave" and (repl.get("master_link_status") != "up"
                                                    or int(str(repl.get("master_sync_in_progress", 1))) != 0):
                    return False
            return True

        if not wait_for(settled, timeout, 0.05):
            raise RuntimeError(f"the loopback cluster on {ports} did not settle within {timeout:.0f}s")

    # --- looking at it -------------------------------------------------------------------------

    @property
    def seed(self) -> int:
        """A node that answers (the first live one)."""
        for port in self.ports:
            if _info(port, "server"):
                return port
        raise RuntimeError("no node of the loopback cluster answers")

    def instance(self, name: str = "production") -> RedisInstance:
        """What bdr.yaml says about the cluster: one node's url (bdr finds the rest)."""
        return RedisInstance(name=name, url=f"redis://127.0.0.1:{self.seed}/0", password_env=None)

    def role(self, port: int) -> str:
        return str(_info(port, "replication").get("role", "?"))

    def master_ports(self) -> list[int]:
        return [p for p in self.ports if self.role(p) == "master" and self.slots_of(p)]

    def replica_of(self, master: int) -> list[int]:
        out = []
        for port in self.ports:
            repl = _info(port, "replication")
            if repl.get("role") == "slave" and int(str(repl.get("master_port", 0))) == master:
                out.append(port)
        return out

    def slots_of(self, port: int) -> int:
        info = client_at(port).execute_command("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        myself = client_at(port).execute_command("CLUSTER", "MYID")
        me = myself.decode() if isinstance(myself, bytes) else str(myself)
        nodes = client_at(port).execute_command("CLUSTER", "NODES")
        lines = (nodes.decode() if isinstance(nodes, bytes) else str(nodes)).splitlines()
        del text
        for line in lines:
            parts = line.split()
            if parts and parts[0] == me:
                total = 0
                for spec in parts[8:]:
                    if spec.startswith("["):
                        continue
                    low, _, high = spec.partition("-")
                    total += int(high or low) - int(low) + 1
                return total
        return 0

    def client(self, port: int | None = None) -> redis.RedisCluster:
        """A cluster-aware client (follows MOVED), as the application uses."""
        return redis.RedisCluster(host="127.0.0.1", port=port or self.seed, socket_timeout=10.0,
                                  require_full_coverage=False)

    def keys_total(self) -> int:
        return sum(int(client_at(p).dbsize()) for p in self.master_ports())

    # --- breaking it ---------------------------------------------------------------------------

    def pid(self, port: int) -> int | None:
        info = _info(port, "server")
        return int(str(info["process_id"])) if info.get("process_id") else None

    def kill(self, port: int) -> None:
        """SIGKILL the node of ``port`` (whoever started it), and wait until its port is free."""
        pid = self.pid(port)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: _bindable(port), 10.0, 0.02)
        for node in self.nodes:
            if node.instance.url.endswith(f":{port}/0") and node._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node._proc.wait(timeout=5)

    def stop(self) -> None:
        """Remove every node (SIGKILL: nothing is worth saving)."""
        for port in self.ports:
            with contextlib.suppress(Exception):
                self.kill(port)
        for node in self.nodes:
            if node._proc is not None and node._proc.poll() is None:
                node._proc.kill()
                node._proc.wait(timeout=5)


def wait_settled(seconds: float) -> None:
    time.sleep(seconds)
