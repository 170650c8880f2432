"""A Redis Cluster on 127.0.0.1: masters and replicas started the ordinary way, for drills and tests.

Each node is a ``redis-server --cluster-enabled yes`` process started by
:func:`~bdr.runtime.process.spawn_redis` on a free loopback port whose cluster bus port
(port + 10000) is free too, with its own data directory (``nodes.conf`` beside the data
files, as an operator runs it). The cluster is made the way operators make one:
``redis-cli --cluster create ... --cluster-replicas N --cluster-yes``. A short
``cluster-node-timeout`` makes a failover take a second, not fifteen.

Nothing here is bdr: bdr discovers the topology itself. Teardown kills every process that
listens on a node's port, whoever started it (bdr restarts nodes during a restore).

:class:`ClusterStack` is what the cluster drills run on: that cluster with AOF on
(``appendfsync everysec``, as the runbook configures production), the agent workload loaded
through a cluster client, the bdr configuration that names one node of it, and an
acknowledging writer of sessions and RBAC grants (each write to the master of its slot).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import socket
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bdr.config import Config, RedisInstance
from bdr.drill.workload import load_redis_workload
from bdr.runtime.process import RedisProcess, spawn_redis
from bdr.util.waiting import wait_for
from drills.writer import AckWriter, Channel

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


@dataclass(frozen=True, slots=True)
class NodeView:
    """One line of ``CLUSTER NODES``."""

    id: str
    port: int
    role: str
    master: str
    slots: tuple[tuple[int, int], ...]
    failed: bool


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
        """Start the nodes and create the cluster; nothing is left running when that fails."""
        count = self.masters * (1 + self.replicas)
        self.ports = cluster_ports(count)
        try:
            for port in self.ports:
                self.nodes.append(self.spawn(port))
            self.create()
        except BaseException:
            self.stop()
            raise
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

    def view(self) -> dict[int, NodeView]:
        """Every node as the seed sees it (``CLUSTER NODES``), by port."""
        raw = client_at(self.seed).execute_command("CLUSTER", "NODES")
        out: dict[int, NodeView] = {}
        for line in (raw.decode() if isinstance(raw, bytes) else str(raw)).splitlines():
            parts = line.split()
            if len(parts) < 8:
                continue
            port = int(parts[1].split("@")[0].rpartition(":")[2] or 0)
            ranges = []
            for spec in parts[8:]:
                if not spec.startswith("["):
                    low, _, high = spec.partition("-")
                    ranges.append((int(low), int(high or low)))
            flags = set(parts[2].split(","))
            out[port] = NodeView(parts[0], port, "master" if "master" in flags else "replica", parts[3],
                                 tuple(ranges), bool(flags & {"fail", "fail?"}))
        return out

    def role(self, port: int) -> str:
        return str(_info(port, "replication").get("role", "?"))

    def master_ports(self) -> list[int]:
        """The live masters that serve slots, in slot order."""
        view = self.view()
        masters = [v for v in view.values() if v.role == "master" and v.slots and not v.failed]
        return [v.port for v in sorted(masters, key=lambda v: v.slots[0][0])]

    def replica_of(self, master: int) -> list[int]:
        view = self.view()
        master_id = view[master].id
        return [v.port for v in view.values() if v.role == "replica" and v.master == master_id and not v.failed]

    def owner_of(self, slot: int) -> int | None:
        for view in self.view().values():
            if view.role == "master" and not view.failed and any(lo <= slot <= hi for lo, hi in view.slots):
                return view.port
        return None

    def client(self, port: int | None = None) -> redis.RedisCluster:
        """A cluster-aware client (follows MOVED), as the application uses."""
        return redis.RedisCluster(host="127.0.0.1", port=port or self.seed, socket_timeout=10.0,
                                  require_full_coverage=False)

    def keys_total(self) -> int:
        return sum(int(client_at(p).dbsize()) for p in self.master_ports())

    # --- breaking it ---------------------------------------------------------------------------

    def answers(self, port: int) -> bool:
        return bool(_info(port, "server"))

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



# --- the drills' cluster: the loopback cluster, the bdr configuration, a workload and a writer ---------


@dataclass
class ClusterStack:
    """A loopback cluster as the cluster drills drive it, and the bdr configuration that protects it."""

    cluster: LoopbackCluster
    config: Config
    writer: AckWriter | None = None
    loaded: int = 0

    @classmethod
    def start(cls, root: Path, base: Config, users: int) -> ClusterStack:
        cluster = LoopbackCluster(root / "cluster", masters=3, replicas=1, appendonly=True,
                                  extra=("--appendfsync", "everysec")).start()
        config = dataclasses.replace(base, path=None, repository=str(root / "backups"),
                                     redis={"production": cluster.instance("production")},
                                     redis_default="production")
        stack = cls(cluster, config)
        try:
            client = cluster.client()
            load_redis_workload(client, users=users, sessions=users * 2, caches=users,  # type: ignore[arg-type]
                                conversations=max(1, users // 10))
            client.close()
            stack.loaded = cluster.keys_total()
        except BaseException:
            cluster.stop()
            raise
        return stack

    def stop(self) -> None:
        try:
            if self.writer is not None:
                self.writer.stop()
        finally:
            self.cluster.stop()

    def channels(self) -> list[Channel]:
        """Sessions and RBAC grants written through a cluster client (each key to the master of its slot)."""
        client = redis.RedisCluster(host="127.0.0.1", port=self.cluster.seed, socket_timeout=1.0,
                                    socket_connect_timeout=1.0, require_full_coverage=False,
                                    retry=Retry(NoBackoff(), 1))

        def write_session(seq: int, at: float) -> None:
            client.set(f"session:drill:{seq:09d}", repr(at), ex=86400)

        def write_rbac(seq: int, at: float) -> None:
            client.hset(f"rbac:grant:drill:{seq:09d}", mapping={"role": "viewer", "at": repr(at)})

        def exists(prefix: str) -> Callable[[Sequence[int]], list[bool]]:
            def check(seqs: Sequence[int]) -> list[bool]:
                reader = self.cluster.client()
                try:
                    return [bool(reader.exists(f"{prefix}{seq:09d}")) for seq in seqs]
                finally:
                    reader.close()

            return check

        return [Channel("sessions", write_session, exists("session:drill:")),
                Channel("rbac", write_rbac, exists("rbac:grant:drill:"))]

    def start_writer(self, interval: float = 0.02) -> AckWriter:
        self.writer = AckWriter(self.channels(), interval).start()
        self.writer.wait_for_acks()
        return self.writer

    def fingerprint(self) -> dict[str, dict[str, Any]]:
        """Per shard (slot order): its master's key count and DEBUG DIGEST."""
        out: dict[str, dict[str, Any]] = {}
        for index, port in enumerate(self.cluster.master_ports()):
            client = client_at(port, timeout=60.0)
            raw = client.execute_command("DEBUG", "DIGEST")
            out[f"redis/production shard {index}"] = {"keys": int(client.dbsize()),
                                                      "digest": raw.decode() if isinstance(raw, bytes) else raw}
        return out

    def describe(self) -> dict[str, Any]:
        view = self.cluster.view()
        return {"redis/production": {"runtime": "process", "kind": "cluster",
                                     "nodes": {str(p): {"id": v.id[:8], "role": v.role} for p, v in view.items()},
                                     "version": str(_info(self.cluster.seed, "server").get("redis_version"))}}
