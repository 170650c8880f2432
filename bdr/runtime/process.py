"""Services as local processes: redis-server on 127.0.0.1, started and stopped by bdr.

Two ways to get a :class:`RedisProcess`:

- :func:`spawn_redis` starts a new ``redis-server`` (demo, tests, drills, the temporary
  instance of a selective restore) on a free loopback port;
- :func:`attach` wraps a configured instance that is already running: bdr reads how it was
  started (``/proc/<pid>/cmdline`` and cwd, or ``config_file``/``start_args`` from bdr.yaml)
  so that a restore can stop it and start it again the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bdr.clients import redis_address, redis_client
from bdr.config import RedisInstance
from bdr.errors import ConfigError, ServiceError, ServiceTimeout, ServiceUnavailable
from bdr.host import free_port
from bdr.runtime import register_runtime
from bdr.waiting import wait_for

logger = logging.getLogger(__name__)

REDIS_SERVER = "redis-server"


def redis_binary(name: str = REDIS_SERVER) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServiceError(
            detail=f"{name} not found on PATH; install it with `apt-get install redis-server redis-tools`"
        )
    return path


def _tail(path: Path | None, lines: int = 5) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:])


@dataclass
class RedisProcess:
    """A redis-server process on this host."""

    instance: RedisInstance
    argv: list[str] = field(default_factory=list)
    cwd: Path | None = None
    log_path: Path | None = None
    service: str = "redis"
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _pid: int | None = None
    _data_dir: Path | None = None

    @property
    def name(self) -> str:
        return self.instance.name

    def url(self) -> str:
        return self.instance.url

    def client(self, db: int = 0, timeout: float = 30.0, retries: int = 2) -> redis.Redis:
        return redis_client(self.instance, db=db, timeout=timeout, retries=retries)

    def address(self) -> tuple[str, int]:
        host, port, _ = redis_address(self.instance.url)
        return host, port

    def running(self) -> bool:
        try:
            return bool(self.client(timeout=2.0, retries=0).ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        except redis.ResponseError as exc:
            return "LOADING" in str(exc)

    def ready(self) -> bool:
        """Answering and done loading its data."""
        try:
            info = self.client(timeout=2.0, retries=0).info("persistence")
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return False
        return int(info.get("loading", 0)) == 0

    def pid(self) -> int | None:
        with contextlib.suppress(redis.RedisError):
            self._pid = int(self.client(timeout=2.0, retries=0).info("server")["process_id"])
        return self._pid

    def remember_launch(self) -> None:
        """Record how the running server was started, so :meth:`start` can do it again."""
        client = self.client(timeout=5.0)
        try:
            info = client.info("server")
            self._pid = int(info["process_id"])
            self._data_dir = Path(str(client.config_get("dir")["dir"]))
        except redis.RedisError as exc:
            raise ServiceUnavailable(service="Redis", address=self.instance.url, detail=str(exc)) from exc
        if self.argv:
            return
        proc = Path(f"/proc/{self._pid}")
        if proc.exists():
            raw = (proc / "cmdline").read_bytes().split(b"\0")
            argv = [a.decode() for a in raw if a]
            # redis-server rewrites its argv to "redis-server host:port"; rebuild from config when it did.
            config_file = info.get("config_file") or self.instance.config_file
            if len(argv) == 1 or (len(argv) == 2 and ":" in argv[1] and not argv[1].startswith("--")):
                argv = [str(info.get("executable") or redis_binary())]
                if config_file:
                    argv.append(str(config_file))
                argv += list(self.instance.start_args)
            self.argv = argv
            with contextlib.suppress(OSError):
                self.cwd = Path(os.readlink(proc / "cwd"))

    def _launch_argv(self) -> list[str]:
        if self.argv:
            return list(self.argv)
        if self.instance.config_file or self.instance.start_args:
            argv = [redis_binary()]
            if self.instance.config_file:
                argv.append(self.instance.config_file)
            return argv + list(self.instance.start_args)
        raise ConfigError(
            path="bdr.yaml",
            detail=f"redis.{self.name}: bdr does not know how to start this Redis; set config_file "
            "or start_args (or keep it running so bdr can read its command line)",
        )

    def start(self, timeout: float = 60.0, overrides: Sequence[str] = ()) -> None:
        if self.running():
            return
        argv = [*self._launch_argv(), "--daemonize", "no", *overrides]
        log = self.log_path
        if log is None:
            log = Path(f"/tmp/bdr-redis-{self.address()[1]}.log")
            self.log_path = log
        logger.info("starting %s: %s", self.name, " ".join(argv))
        out = log.open("ab")
        try:
            self._proc = subprocess.Popen(
                argv, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise ServiceError(detail=f"cannot start redis-server: {exc}") from exc
        finally:
            out.close()
        self._pid = self._proc.pid

        def up_or_dead() -> bool:
            return self.ready() or (self._proc is not None and self._proc.poll() is not None)

        wait_for(up_or_dead, timeout, interval=0.02)
        if self._proc.poll() is not None:
            raise ServiceError(
                detail=f"redis-server {self.name} exited with code {self._proc.returncode} at start: "
                f"{_tail(self._logfile())}"
            )
        if not self.ready():
            raise ServiceTimeout(service=f"Redis {self.name}", what="finish loading", seconds=timeout,
                                 detail=_tail(self._logfile()))

    def _logfile(self) -> Path | None:
        return self.log_path

    def stop(self, timeout: float = 60.0) -> None:
        """SHUTDOWN NOSAVE (SIGTERM when it does not answer) and wait until the process is gone."""
        if not self.running():
            self._reap()
            return
        pid = self.pid()
        with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
            try:
                self.client(timeout=5.0, retries=0).shutdown(nosave=True)
            except redis.ResponseError:
                if pid:
                    os.kill(pid, signal.SIGTERM)
        if not wait_for(lambda: not self._alive(pid), timeout, interval=0.02):
            raise ServiceTimeout(service=f"Redis {self.name}", what="stop", seconds=timeout, detail=f"pid {pid}")
        self._reap()

    def _alive(self, pid: int | None) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        if pid is None:
            return self.running()
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
            if state == "Z":
                return False
        return True

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)

    def kill(self) -> None:
        pid = self._pid if self._pid and self._alive(self._pid) else self.pid()
        if pid is None:
            raise ServiceUnavailable(service="Redis", address=self.instance.url, detail="no process to kill")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not self._alive(pid), 10.0, interval=0.01)
        self._reap()

    def data_path(self) -> Path:
        if self.instance.data_dir:
            return Path(self.instance.data_dir)
        if self._data_dir is None:
            self.remember_launch()
        assert self._data_dir is not None
        return self._data_dir

    def replace_data(self, source: Path, clear: Iterable[str] = ()) -> None:
        """Remove ``clear`` names from the data directory, then move the files of ``source`` in."""
        target = self.data_path()
        target.mkdir(parents=True, exist_ok=True)
        for name in clear:
            path = target / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        for item in source.iterdir():
            dest = target / item.name
            if dest.is_dir():
                shutil.rmtree(dest)
            shutil.move(str(item), str(dest))
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def describe(self) -> dict[str, str]:
        facts = {"runtime": "process", "binary": self.argv[0] if self.argv else REDIS_SERVER}
        with contextlib.suppress(redis.RedisError):
            info = self.client(timeout=2.0, retries=0).info("server")
            facts.update(version=str(info.get("redis_version")), pid=str(info.get("process_id")))
        return facts


def attach(instance: RedisInstance) -> RedisProcess:
    """The process runtime of a configured instance (running or not)."""
    return RedisProcess(instance=instance)


def spawn_redis(
    data_dir: Path,
    *,
    name: str = "bdr",
    port: int | None = None,
    appendonly: bool = False,
    extra: Sequence[str] = (),
    password: str | None = None,
    timeout: float = 60.0,
    start: bool = True,
) -> RedisProcess:
    """Start (unless ``start`` is false) a new redis-server on 127.0.0.1 with its data in ``data_dir``."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = [
        redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
        "--appendonly", "yes" if appendonly else "no", "--save", "", "--logfile", "",
        "--protected-mode", "no", "--enable-debug-command", "local",
    ]
    env_name = None
    if password:
        argv += ["--requirepass", password]
        env_name = f"BDR_SPAWNED_REDIS_{port}_PASSWORD"
        os.environ[env_name] = password
    argv += list(extra)
    instance = RedisInstance(
        name=name, url=f"redis://127.0.0.1:{port}/0", data_dir=str(data_dir), password_env=env_name,
        start_args=tuple(argv[1:]),
    )
    process = RedisProcess(instance=instance, argv=argv, log_path=data_dir.parent / f"redis-{port}.log")
    if start:
        process.start(timeout=timeout)
    return process


register_runtime("redis/process", attach)
