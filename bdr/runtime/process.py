"""Redis as a process on this host, started and stopped by bdr itself (``runtime: process``).

Two ways to get a :class:`RedisProcess`:

- :func:`spawn_redis` starts a new, private ``redis-server`` (demo, tests, drills, the
  temporary instance of a selective restore) on a free loopback port, its password (if
  any) on its stdin;
- :func:`attach` wraps a configured instance bdr did not start. While it runs, bdr reads
  how it was launched (:mod:`bdr.runtime.launch`: binary, working directory, argv rebuilt
  from its config file and running settings, owner) and starts it again exactly that way
  after a stop; when it is down, the launch comes from the restore journal (a
  :class:`~bdr.runtime.base.Launch` recorded before the stop) or from ``config_file`` /
  ``start_args`` in bdr.yaml. Without any, bdr refuses to start it: it never starts a
  Redis with no arguments (port 6379 on every interface, no password).

A Redis that a supervisor keeps alive (a systemd unit, supervisord, a container: see
:mod:`bdr.runtime.supervision`) is refused by ``preflight`` and ``stop``: stopping it
behind the supervisor's back starts a race for its port and its files.

``start`` runs the server with ``--daemonize no`` in a session of its own, stdout and
stderr appended to one log file per instance (``log_file`` in bdr.yaml; default
``/var/log/bdr/redis-<name>.log`` as root, else ``~/.local/state/bdr/redis-<name>.log``),
and waits until it answers PING and finished loading; when it exits or times out, the
whole process group is killed and the error carries the log's tail. ``stop`` is
``SHUTDOWN NOSAVE`` (SIGTERM when refused) and waits until the process is gone and the
port is free.
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
from typing import Any

import redis

from bdr.clients import redis_errors
from bdr.config import RedisInstance
from bdr.errors import NoLaunch, ServiceError, ServiceUnavailable, StartFailed, Supervised, UnsafeLaunch
from bdr.runtime import preflight as checks
from bdr.runtime import procfs, register_runtime
from bdr.runtime.base import Launch, Needs, command_line, service_log_file
from bdr.runtime.launch import ReadLaunch, configured_launch, read_launch
from bdr.runtime.redis_base import RedisBase
from bdr.runtime.server import REDIS_SERVER, kill_group, popen_server, stdin_config, tail, version
from bdr.runtime.settings import LaunchConfig, read_launch_config
from bdr.runtime.supervision import supervisor_of
from bdr.util.host import free_port

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 60.0


def redis_binary(name: str = REDIS_SERVER) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServiceError(
            detail=f"{name} not found on PATH; install it with `apt-get install redis-server redis-tools`"
        )
    return path


def default_log_file(instance: RedisInstance) -> Path:
    """One log per instance, appended to by every start (never one per run)."""
    return service_log_file("redis", instance.name, instance.log_file)


@dataclass
class RedisProcess(RedisBase):
    """A redis-server process on this host (one bdr spawned, or one it attached to)."""

    argv: list[str] = field(default_factory=list)
    """How it is (re)started, executable first; empty until known (see :meth:`launch`)."""
    cwd: Path | None = None
    log_path: Path | None = None
    stdin_settings: tuple[str, ...] = ()
    kind: str = "process"
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _pid: int | None = None
    _launch: Launch | None = field(default=None, repr=False)
    _read: ReadLaunch | None = field(default=None, repr=False)
    spawned: bool = False
    private: bool = False
    """A throw-away server of bdr's own (a temporary instance): it dies with the bdr that started it."""

    # --- state ------------------------------------------------------------------------------------

    def running(self) -> bool:
        if self._proc is not None and self._proc.poll() is None:
            return True
        return self.answering()

    def pid(self) -> int | None:
        """Its pid on this host (None when it does not run here)."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        pid = self.host_pid()
        if pid is not None:
            self._pid = pid
        return pid

    def how_started(self) -> str:
        launch = self._launch
        return launch.describe() if launch else "process"

    # --- how it is launched -------------------------------------------------------------------------

    def launch(self) -> Launch:
        """How to start it again: read from the running server (cached), else the journal's or bdr.yaml's."""
        if self.spawned and self.argv:
            return self._remember(Launch(runtime="process", data_dir=self.instance.data_dir or "",
                                         argv=tuple(self.argv), cwd=str(self.cwd) if self.cwd else None,
                                         stdin_settings=self.stdin_settings, pid=self.pid()))
        if self.answering():
            return self._remember(self._read_running().launch)
        return self._down_launch()

    def _down_launch(self) -> Launch:
        """The launch of a server that is down: remembered (or the journal's), the argv it was given, or bdr.yaml's."""
        if self._launch is not None and not self.spawned:
            return self._launch
        if self.argv:
            return Launch(runtime="process", data_dir=self.instance.data_dir or "", argv=tuple(self.argv),
                          cwd=str(self.cwd) if self.cwd else None, stdin_settings=self.stdin_settings)
        configured = configured_launch(self.instance, redis_binary())
        if configured is None:
            raise NoLaunch(name=self.name, fix=f"set config_file (or start_args) of redis.{self.name} in bdr.yaml, "
                           "or runtime: systemd/command to start it the way this host runs it")
        return self._remember(configured)

    def _read_running(self) -> ReadLaunch:
        with redis_errors(self.instance, "describe itself"):
            info = self.client(timeout=10.0, retries=1).info("server")
        pid = self.host_pid()
        facts = procfs.read_process(pid) if pid is not None else None
        if facts is None:
            raise ServiceError(detail=f"Redis {self.name} at {self.instance.url} is not a process of this host (pid "
                               f"{info.get('process_id')} does not listen on its port here): use runtime: docker, "
                               "systemd or command for it in bdr.yaml")
        running = self.all_settings()
        self._read = read_launch(self.instance, facts, info, running, self.instance.password())
        return self._read

    def _remember(self, launch: Launch) -> Launch:
        self._launch = launch
        self.argv = list(launch.argv)
        self.cwd = Path(launch.cwd) if launch.cwd else None
        self.stdin_settings = launch.stdin_settings
        return launch

    def remember_launch(self) -> None:
        """Deprecated: :meth:`launch` reads and remembers it (kept for the engines until the new restore lands)."""
        self.launch()

    def _stdin_values(self, launch: Launch) -> dict[str, str]:
        values = {}
        for name in launch.stdin_settings:
            if name == "requirepass":
                password = self.instance.password()
                if not password:
                    raise UnsafeLaunch(name=self.name, how=launch.describe(), detail="it runs with a password bdr "
                                       "passes on its stdin, and bdr has none: set password_env or password_file "
                                       f"of redis.{self.name} in bdr.yaml")
                values[name] = password
        return values

    def launch_config(self, launch: Launch | None = None) -> LaunchConfig:
        """What the launch configures (its settings while the server is down)."""
        launch = launch or self.launch()
        stdin = self._stdin_values(launch) if launch.stdin_settings else None
        return read_launch_config(launch.argv, launch.cwd, stdin)

    def down_settings(self, names: Sequence[str]) -> dict[str, str]:
        return self.launch_config(self._down_launch()).settings(names)

    # --- stop and start -----------------------------------------------------------------------------

    def _refuse_supervised(self, pid: int | None) -> None:
        if pid is None or self.spawned:
            return
        found = supervisor_of(pid)
        if found is not None:
            raise Supervised(detail=found.message(self.name, pid))

    def _check_address(self, launch: Launch) -> None:
        """Never start it where it was not configured to listen (and never with no arguments)."""
        if len(launch.argv) < 2:
            raise UnsafeLaunch(name=self.name, how=launch.describe(), detail="no config file and no arguments: it "
                               "would listen on port 6379 on every interface with no password; set config_file of "
                               f"redis.{self.name} in bdr.yaml")
        config = read_launch_config(launch.argv, launch.cwd)
        host, port = self.address()
        if str(port) != config.get("port") and not self.instance.url.startswith("unix"):
            raise UnsafeLaunch(name=self.name, how=launch.describe(), detail=f"it would listen on port "
                               f"{config.get('port')}, and bdr.yaml says {self.instance.url}: fix config_file/"
                               f"start_args (or the url) of redis.{self.name}")
        binds = checks.bind_addresses(config.get("bind"))
        if self.local and not any(b in ("0.0.0.0", "::", host) or (host == "localhost" and b == "127.0.0.1")
                                  for b in binds):
            raise UnsafeLaunch(name=self.name, how=launch.describe(), detail=f"it would listen on {' '.join(binds)}, "
                               f"not on {host} as bdr.yaml says ({self.instance.url})")

    def start(self, timeout: float = 60.0, overrides: Sequence[str] = ()) -> None:
        """Start it the way it was launched and wait until it is ready (see the module docstring).

        ``overrides`` (extra server arguments for this start only) is deprecated: the new
        restore never needs them; kept until the engines stop passing it.
        """
        if self.running():
            self.wait_ready(timeout, dead=self._exited, context=self._log_tail)
            return
        launch = self._down_launch()
        if not self.spawned:
            self._check_address(launch)
        argv = [*launch.argv, *overrides]
        stdin = self._stdin_values(launch)
        log = self.log_path or default_log_file(self.instance)
        self.log_path = log
        log.parent.mkdir(parents=True, exist_ok=True)
        logger.info("starting Redis %s: %s", self.name, command_line(argv))
        with log.open("ab") as out:
            out.write(f"--- bdr starts Redis {self.name}: {command_line(argv)}\n".encode())
            out.flush()
            try:
                self._proc = popen_server(argv, cwd=launch.cwd, log=out, stdin=stdin_config(stdin) if stdin else None,
                                          uid=launch.uid, gid=launch.gid, groups=launch.groups,
                                          die_with_parent=self.private)
            except OSError as exc:
                raise StartFailed(name=self.name, how=command_line(argv), detail=f"{exc.strerror or exc}; fix how it "
                                  "is launched (config_file/start_args in bdr.yaml)") from exc
        self._pid = self._proc.pid
        try:
            self.wait_ready(timeout, dead=self._exited, context=self._log_tail)
        except BaseException:
            kill_group(self._proc)
            raise

    def _exited(self) -> str | None:
        if self._proc is None or self._proc.poll() is None:
            return None
        return f"exited with code {self._proc.returncode}: {self._log_tail() or 'no output'} (log: {self.log_path})"

    def _log_tail(self) -> str:
        own = tail(self.log_path)
        with contextlib.suppress(ServiceError, OSError):
            if self._launch is not None:
                logfile = read_launch_config(self._launch.argv, self._launch.cwd).path("logfile")
                if logfile is not None:
                    return " | ".join(t for t in (own, tail(logfile)) if t)
        return own

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SHUTDOWN NOSAVE (SIGTERM when refused); waits until the process is gone and the port is free."""
        if not self.running():
            self._reap()
            return
        pid = self.pid()
        self._refuse_supervised(pid)
        if not self.spawned and self._launch is None:
            with contextlib.suppress(ServiceError):
                self.launch()  # remembered: start() brings it back the same way
        try:
            self.client(timeout=5.0, retries=0).shutdown(nosave=True)
        except (redis.ConnectionError, redis.TimeoutError):
            pass
        except redis.ResponseError as exc:
            logger.warning("Redis %s refused SHUTDOWN NOSAVE (%s); sending SIGTERM", self.name, exc)
            with contextlib.suppress(redis.RedisError):
                self.client(timeout=5.0, retries=0).config_set("shutdown-on-sigterm", "nosave")
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        self._reap_soon()
        self.wait_gone(pid, timeout, how="SHUTDOWN NOSAVE")
        self._reap()

    def _reap_soon(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=0.5)

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL: the crash the drills inject."""
        pid = self.pid() or self._pid
        if pid is None or not procfs.alive(pid):
            raise ServiceUnavailable(service="Redis", address=self.instance.url, detail="no process to kill")
        os.kill(pid, signal.SIGKILL)
        if self._proc is not None and self._proc.pid == pid:
            self._proc.wait(timeout=10)
        from bdr.util.waiting import wait_for

        wait_for(lambda: not procfs.alive(pid), 10.0, interval=0.01)

    # --- preflight ------------------------------------------------------------------------------

    def preflight(self, needs: Needs) -> list[str]:
        problems: list[str] = []
        up = self.running()
        pid = self.pid() if up else None
        if pid is not None and not self.spawned:
            found = supervisor_of(pid)
            if found is not None:
                problems.append(found.message(self.name, pid))
        try:
            launch = self.launch() if up else self._down_launch()
        except (ServiceError, NoLaunch) as exc:
            return [*problems, exc.message]
        if self._read is not None and pid is not None:
            problems += self._read.problems
        who = checks.Identity(launch.uid, launch.gid, launch.groups)
        if not self.spawned:
            try:
                self._check_address(launch)
            except UnsafeLaunch as exc:
                problems.append(exc.message)
        try:
            stdin = self._stdin_values(launch)
        except UnsafeLaunch as exc:
            return [*problems, exc.message]
        launch_found, config = checks.launch_problems(self.name, launch.argv, launch.cwd, who, stdin or None)
        problems += launch_found
        _, port = self.address()
        problems += checks.port_problems(self.name, port, checks.bind_addresses(config.get("bind")), pid)
        data = Path(self.instance.data_dir) if self.instance.data_dir else Path(
            (self.running_settings(["dir"]).get("dir") if up else None) or config.dir)
        problems += checks.data_dir_problems(self.name, data, needs, who)
        return problems

    # --- data (deprecated: the new restore places files itself) ------------------------------------

    def replace_data(self, source: Path, clear: Iterable[str] = ()) -> None:
        """Deprecated (kept for the engines): remove ``clear`` names from the data directory, then move the
        files of ``source`` in."""
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
        facts = {"runtime": "process"}
        launch = self._launch
        if launch is not None:
            facts["binary"] = launch.argv[0]
            facts["launch"] = launch.describe()
        elif self.argv:
            facts["binary"] = self.argv[0]
        if self._read is not None and self._read.notes:
            facts["notes"] = "; ".join(self._read.notes)
        if self.log_path:
            facts["log"] = str(self.log_path)
        with contextlib.suppress(redis.RedisError):
            info = self.client(timeout=2.0, retries=0).info("server")
            facts.update(version=str(info.get("redis_version")), pid=str(info.get("process_id")))
        if "version" not in facts and "binary" in facts:
            found, _ = version(facts["binary"])
            if found:
                facts["version"] = found
        return facts


def attach(instance: RedisInstance, launch: Launch | None = None, **_: Any) -> RedisProcess:
    """The process runtime of a configured instance (running or not), or of a recorded launch."""
    process = RedisProcess(instance=instance)
    if launch is not None:
        process._remember(launch)
    return process


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
    private: bool = False,
) -> RedisProcess:
    """Start (unless ``start`` is false) a new redis-server on 127.0.0.1 with its data in ``data_dir``.

    ``private``: a throw-away server (a temporary instance) that dies with the thread that starts it.

    A password goes to the server's stdin, never to its argv; bdr's client finds it in
    ``$BDR_SPAWNED_REDIS_<port>_PASSWORD``.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = [
        redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
        "--appendonly", "yes" if appendonly else "no", "--save", "", "--logfile", "",
        "--protected-mode", "no", "--enable-debug-command", "local",
    ]
    env_name = None
    stdin: tuple[str, ...] = ()
    if password:
        env_name = f"BDR_SPAWNED_REDIS_{port}_PASSWORD"
        os.environ[env_name] = password
        stdin = ("requirepass",)
    argv += list(extra)
    log = data_dir.parent / f"redis-{port}.log"
    instance = RedisInstance(
        name=name, url=f"redis://127.0.0.1:{port}/0", data_dir=str(data_dir), password_env=env_name,
        start_args=tuple(argv[1:]), log_file=str(log),
    )
    process = RedisProcess(instance=instance, argv=argv, log_path=log, stdin_settings=stdin, spawned=True,
                           private=private)
    if start:
        process.start(timeout=timeout)
    return process


register_runtime("redis/process", attach)

__all__ = ["RedisProcess", "attach", "default_log_file", "redis_binary", "spawn_redis"]
