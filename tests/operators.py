"""Redis as operators start it, not through bdr: the instances bdr must attach to without breaking them.

Each way is what a person or a service manager does on a Debian host, on a free loopback
port (``bdr.util.host.free_port``), in a world-traversable temp directory (so that a Redis
running as the ``redis`` user can read its config):

- ``shell``: from PATH in a shell, with a *relative* config file and ``dir ./``
  (``cd /srv/x && redis-server redis.conf &``): Redis rewrites its argv to
  ``redis-server 127.0.0.1:N`` and ``INFO executable`` names ``<cwd>/redis-server``;
- ``args``: only command-line arguments (``redis-server --port N --dir ./data ...``);
- ``daemon``: ``daemonize yes`` with a (relative) pidfile and logfile;
- ``password``: ``requirepass`` in the config file (bdr gets it from ``password_env``);
- ``user``: as the ``redis`` user (``setpriv``), its data directory owned by it;
- ``supervisord``: a program of a private supervisord (``autorestart=true``);
- ``cgroup``: ``shell``, then moved into a real cgroup ``system.slice/bdr-test-<random>.service``
  of the v1 ``name=systemd`` hierarchy, as systemd would have placed it.

The ``operators`` fixture starts them (``operators.start("shell")``) and removes every
process and file afterwards, whatever bdr did to them (it may have restarted one).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bdr.config import RedisInstance
from bdr.runtime import procfs
from bdr.util.host import free_port
from tests.supervisor import Supervisord

WAYS = ("shell", "args", "daemon", "password", "user", "supervisord", "cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup/systemd")
REDIS_USER = "redis"


def redis_user_or_skip() -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam(REDIS_USER)
    except KeyError:
        pytest.skip("no redis user on this host (apt-get install redis-server creates it)")
    if os.geteuid() != 0:
        pytest.skip("starting Redis as another user needs root")
    return entry.pw_uid, entry.pw_gid


@dataclass
class OperatorRedis:
    """One Redis an operator started, and what bdr.yaml would say about it."""

    way: str
    base: Path
    port: int
    password: str | None = None
    password_env: str | None = None
    supervisord: Supervisord | None = None
    cgroup: Path | None = None
    config_file: Path | None = None
    data_dir: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def instance(self, **changes: object) -> RedisInstance:
        """``redis.production`` of bdr.yaml: its url and credentials only (no config_file, no data_dir)."""
        settings: dict[str, object] = {"name": "production", "url": self.url, "password_env": self.password_env,
                                       "log_file": str(self.base / "bdr-redis.log")}
        if self.supervisord is not None:
            settings.update(runtime="command", commands={k: tuple(v) for k, v in
                                                         self.supervisord.commands("redis").items()})
        settings.update(changes)
        return RedisInstance(**settings)  # type: ignore[arg-type]

    def client(self, timeout: float = 5.0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=timeout,
                           socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))

    def pid(self) -> int | None:
        """The pid listening on its port (None: nothing listens)."""
        pids = {p for listener in procfs.listeners(self.port) for p in listener.pids}
        return min(pids) if pids else None

    def wait_up(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(redis.RedisError):
                if self.client(timeout=1.0).ping():
                    return
            if time.monotonic() > deadline:
                logs = " | ".join(p.read_text(errors="replace")[-300:] for p in self.base.glob("*.log"))
                raise RuntimeError(f"operator Redis ({self.way}) on port {self.port} did not come up: {logs}")
            time.sleep(0.01)

    def fill(self, keys: int = 50) -> dict[bytes, bytes]:
        client = self.client()
        data = {f"user:{i}".encode(): f"value-{i}".encode() for i in range(keys)}
        client.mset(data)  # type: ignore[arg-type]
        return data

    def close(self) -> None:
        """Stop everything of this instance (supervisor first, so nothing restarts it) and remove its files."""
        if self.supervisord is not None:
            self.supervisord.shutdown()
        if self.cgroup is not None:
            for line in (self.cgroup / "cgroup.procs").read_text().split() if self.cgroup.is_dir() else []:
                with contextlib.suppress(OSError):
                    (CGROUP_ROOT / "cgroup.procs").write_text(line)
        for _ in range(50):
            pid = self.pid()
            if pid is None or pid == os.getpid():
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        if self.cgroup is not None:
            for _ in range(50):
                try:
                    self.cgroup.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
        if self.password_env:
            os.environ.pop(self.password_env, None)
        shutil.rmtree(self.base, ignore_errors=True)


def _conf(op: OperatorRedis, *lines: str) -> Path:
    text = "\n".join([f"port {op.port}", "bind 127.0.0.1", "protected-mode yes", "appendfsync always", *lines, ""])
    path = op.base / "redis.conf"
    path.write_text(text)
    path.chmod(0o644)
    op.config_file = path
    return path


def _shell(op: OperatorRedis, command: str) -> None:
    """Run ``command`` from a shell in the instance's directory, as an operator's terminal would."""
    subprocess.run(["bash", "-c", f"cd {op.base} && {command}"], check=True, timeout=30,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_operator_redis(way: str, base: Path, data_dir: Path | None = None, args: str = "",
                         password: str | None = None) -> OperatorRedis:
    """Start Redis ``way`` (see the module docstring) in ``base``; returns it running, with no data yet.

    ``shell`` only: ``data_dir`` is its ``dir`` (default ``./``), ``args`` more command-line arguments
    (``password``: the one they give it).
    """
    op = OperatorRedis(way=way, base=base, port=free_port(), password=password)
    op.data_dir = base
    if way == "shell":
        if data_dir is not None:
            op.data_dir = data_dir
        _conf(op, f"dir {data_dir or './'}", 'save ""', "appendonly yes", "logfile redis.log")
        _shell(op, f"redis-server redis.conf {args} >> out.log 2>&1 &")
    elif way == "args":
        (base / "data").mkdir()
        op.data_dir = base / "data"
        _shell(op, f"redis-server --port {op.port} --bind 127.0.0.1 --dir ./data --save '' --appendonly yes "
               "--appendfsync always >> out.log 2>&1 &")
    elif way == "daemon":
        _conf(op, "dir ./", 'save ""', "appendonly yes", "daemonize yes", "pidfile redis.pid", "logfile redis.log")
        _shell(op, "redis-server redis.conf")
    elif way == "password":
        op.password = secrets.token_hex(12)
        op.password_env = f"BDR_TEST_OPERATOR_{op.port}_PASSWORD"
        os.environ[op.password_env] = op.password
        _conf(op, "dir ./", 'save ""', "appendonly yes", f'requirepass "{op.password}"')
        _shell(op, "redis-server redis.conf >> out.log 2>&1 &")
    elif way == "user":
        uid, gid = redis_user_or_skip()
        data = base / "data"
        data.mkdir()
        os.chown(data, uid, gid)
        op.data_dir = data
        _conf(op, "dir ./data", 'save ""', "appendonly yes", "logfile redis.log")
        _shell(op, f"setpriv --reuid={REDIS_USER} --regid={REDIS_USER} --init-groups redis-server redis.conf "
               ">> out.log 2>&1 &")
    elif way == "supervisord":
        conf = _conf(op, f"dir {base}", 'save ""', "appendonly yes")
        sup = Supervisord(base / "supervisor")
        sup.root.mkdir()
        sup.add("redis", ["redis-server", str(conf)])
        op.supervisord = sup
        sup.start()
    elif way == "cgroup":
        if not os.access(CGROUP_ROOT / "cgroup.procs", os.W_OK):
            pytest.skip(f"{CGROUP_ROOT} (the v1 name=systemd cgroup hierarchy) is not writable here")
        _conf(op, "dir ./", 'save ""', "appendonly yes")
        _shell(op, "redis-server redis.conf >> out.log 2>&1 &")
    else:
        raise ValueError(f"unknown way {way!r} (known: {', '.join(WAYS)})")
    op.wait_up()
    if way == "cgroup":
        cgroup = CGROUP_ROOT / "system.slice" / f"bdr-test-{secrets.token_hex(4)}.service"
        try:
            cgroup.mkdir(parents=True)
            (cgroup / "cgroup.procs").write_text(str(op.pid()))
        except OSError as exc:
            op.close()
            pytest.skip(f"cannot create a cgroup in {CGROUP_ROOT}: {exc}")
        op.cgroup = cgroup
    return op


@dataclass
class Operators:
    """Starts operator Redis instances for one test and removes them afterwards."""

    started: list[OperatorRedis] = field(default_factory=list)

    def start(self, way: str, data_dir: Path | None = None, args: str = "", password: str | None = None
              ) -> OperatorRedis:
        base = Path(tempfile.mkdtemp(prefix=f"bdr-op-{way}-"))
        base.chmod(0o755)
        try:
            op = start_operator_redis(way, base, data_dir, args, password)
        except BaseException:
            self._kill_in(base)
            shutil.rmtree(base, ignore_errors=True)
            raise
        self.started.append(op)
        return op

    @staticmethod
    def _kill_in(base: Path) -> None:
        """Kill what a start that failed half-way left running in ``base`` (its processes' cwd is there)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            facts = procfs.read_process(int(entry.name))
            if facts is not None and facts.cwd and facts.cwd.startswith(str(base)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(facts.pid, signal.SIGKILL)

    def close(self) -> None:
        for op in reversed(self.started):
            op.close()


@pytest.fixture
def operators() -> Iterator[Operators]:
    """``operators.start(way)``: a Redis started the way operators do; all of them gone after the test."""
    found = Operators()
    try:
        yield found
    finally:
        found.close()


__all__ = ["WAYS", "OperatorRedis", "Operators", "operators", "redis_user_or_skip", "start_operator_redis"]


# --- Redis under Debian's own redis-server.service, systemd as PID 1 of a container --------------------


SYSTEMD = Path("/lib/systemd/systemd")
UNIT_FILE = Path("/usr/lib/systemd/system/redis-server.service")
SYSTEMD_IMAGE = "bdr-test/systemd-root:1"
ROOT_LINKS = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}


@dataclass
class SystemdRedis:
    """A container running the host's systemd as PID 1 and Debian's redis-server.service, on the host network.

    The container shares the host's /usr (read-only: systemd, the unit file, redis-server)
    and network; its /etc/redis and /var/lib/redis are host directories under ``root``.
    bdr drives it with ``systemctl: [docker, exec, <container>, systemctl]``.
    """

    container: str
    root: Path
    port: int
    unit: str = "redis-server.service"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def systemctl(self) -> tuple[str, ...]:
        return ("docker", "exec", self.container, "systemctl")

    @property
    def data_dir(self) -> Path:
        return self.root / "var-lib-redis"

    @property
    def config_file(self) -> Path:
        return self.root / "etc-redis" / "redis.conf"

    def instance(self, **changes: object) -> RedisInstance:
        settings: dict[str, object] = {
            "name": "production", "url": self.url, "password_env": None, "runtime": "systemd", "unit": self.unit,
            "systemctl": self.systemctl, "data_dir": str(self.data_dir), "config_file": str(self.config_file),
        }
        settings.update(changes)
        return RedisInstance(**settings)  # type: ignore[arg-type]

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=5,
                           retry=Retry(NoBackoff(), 0))

    def systemctl_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.systemctl, *args], capture_output=True, text=True, timeout=60, check=False)

    def show(self, *props: str) -> dict[str, str]:
        out = self.systemctl_run("show", *(f"--property={p}" for p in props), self.unit).stdout
        return dict(line.partition("=")[::2] for line in out.splitlines() if "=" in line)

    def pid(self) -> int | None:
        pids = {p for listener in procfs.listeners(self.port) for p in listener.pids}
        return min(pids) if pids else None


def systemd_image(client: object) -> str:
    """A tiny root (merged-usr links, an /etc with root and the host's redis user) imported as an image."""
    import io
    import pwd
    import tarfile

    import docker

    engine: docker.DockerClient = client  # type: ignore[assignment]
    with contextlib.suppress(docker.errors.ImageNotFound):
        engine.images.get(SYSTEMD_IMAGE)
        return SYSTEMD_IMAGE
    entry = pwd.getpwnam(REDIS_USER)
    files = {
        "etc/passwd": f"root:x:0:0:root:/root:/bin/sh\n{REDIS_USER}:x:{entry.pw_uid}:{entry.pw_gid}::/var/lib/redis:"
                      "/usr/sbin/nologin\n",
        "etc/group": f"root:x:0:\n{REDIS_USER}:x:{entry.pw_gid}:\n",
        "etc/machine-id": "",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("etc", "etc/redis", "etc/systemd/system", "var", "var/lib", "var/lib/redis", "var/log",
                          "run", "tmp", "proc", "sys", "dev", "usr", "root"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        for name, target in {**ROOT_LINKS, "etc/os-release": "../usr/lib/os-release"}.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    engine.api.import_image_from_data(buffer.getvalue(), repository=SYSTEMD_IMAGE.split(":")[0],
                                      tag=SYSTEMD_IMAGE.split(":")[1])
    return SYSTEMD_IMAGE


def start_systemd_redis(client: object, root: Path, labels: dict[str, str]) -> SystemdRedis:
    """Boot the container and start redis-server.service in it; skips with the reason when that cannot work."""
    import docker

    engine: docker.DockerClient = client  # type: ignore[assignment]
    if not SYSTEMD.exists() or not UNIT_FILE.exists():
        pytest.skip(f"needs {SYSTEMD} and Debian's {UNIT_FILE} on this host (apt-get install systemd redis-server)")
    uid, gid = redis_user_or_skip()
    image = systemd_image(engine)
    port = free_port()
    (root / "etc-redis").mkdir(parents=True)
    data = root / "var-lib-redis"
    data.mkdir()
    os.chown(data, uid, gid)
    conf = root / "etc-redis" / "redis.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir /var/lib/redis\nsave \"\"\nappendonly yes\nlogfile \"\"\n"
                    "appendfsync always\npidfile /run/redis/redis-server.pid\n")
    conf.chmod(0o644)
    name = f"bdr-test-systemd-{secrets.token_hex(4)}"
    try:
        container = engine.containers.run(
            image, ["/lib/systemd/systemd", "--unit=multi-user.target"], name=name, detach=True,
            network_mode="host", cap_add=["ALL"], cap_drop=["SYS_RESOURCE"] if not _has_cap_sys_resource() else [],
            security_opt=["seccomp=unconfined", "apparmor=unconfined"], cgroupns="private",
            environment={"container": "docker"}, labels=labels,
            tmpfs={"/run": "", "/run/lock": "", "/tmp": ""},
            volumes={"/usr": {"bind": "/usr", "mode": "ro"}, str(root / "etc-redis"): {"bind": "/etc/redis",
                     "mode": "rw"}, str(data): {"bind": "/var/lib/redis", "mode": "rw"}},
        )
    except docker.errors.DockerException as exc:
        pytest.skip(f"cannot run systemd in a container here: {exc}")
    found = SystemdRedis(container=name, root=root, port=port)
    deadline = time.monotonic() + 60
    while True:
        state = found.systemctl_run("is-system-running").stdout.strip()
        if state in ("running", "degraded"):
            break
        container.reload()
        if container.status != "running" or time.monotonic() > deadline:
            logs = container.logs(tail=20).decode(errors="replace")
            container.remove(force=True)
            pytest.skip(f"systemd did not boot in a container here (state {state!r}, container {container.status}): "
                        f"{logs[-400:]}")
        time.sleep(0.1)
    done = found.systemctl_run("start", found.unit)
    if done.returncode != 0:
        status = found.systemctl_run("status", "--no-pager", found.unit).stdout
        container.remove(force=True)
        pytest.skip(f"Debian's redis-server.service does not start in a container here: {done.stderr} {status[-400:]}")
    return found


def _has_cap_sys_resource() -> bool:
    """Whether this process may hand CAP_SYS_RESOURCE to a container (not when it runs in one without it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return False
