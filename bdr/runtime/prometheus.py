"""How a Prometheus server lives: ``prometheus/process``, ``/systemd``, ``/command``, ``/docker``.

One class, :class:`PrometheusRuntime`, drives the four kinds; only start, stop and
"is it up" differ:

- ``process``: bdr attaches to the server listening on the instance's port (its pid from
  ``/proc``), records how it was launched (``/proc/PID/exe``, argv, cwd, owner) and starts
  it again exactly that way after a stop, in a session of its own, stdout and stderr
  appended to one log per instance; ``stop`` is SIGTERM (Prometheus closes its TSDB
  cleanly) and waits until the process is gone. A server a supervisor runs (systemd,
  supervisord, a container) is refused by the preflight, as for Redis;
- ``systemd``: ``systemctl stop|start|is-active UNIT`` (with the ``systemctl`` prefix);
- ``command``: the operator's ``start``/``stop``/``status`` argv;
- ``docker``: ``docker stop|start CONTAINER`` through the docker CLI; ``data_dir`` must be
  the volume's path on this host.

Readiness is ``/-/ready`` (the TSDB is open and the WAL replayed). The data directory is
``data_dir`` of bdr.yaml, else ``--storage.tsdb.path`` of the running server (its
``/api/v1/status/flags``, relative to its working directory), else of the recorded launch.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from bdr.config import PrometheusInstance
from bdr.engines.prometheus.client import PrometheusClient
from bdr.errors import BdrError, ConfigError, ServiceError, ServiceTimeout, StartFailed, StopFailed
from bdr.runtime import procfs, register_runtime
from bdr.runtime.base import CommandRun, Launch, Needs, command_line, run_command, service_log_file
from bdr.runtime.server import identity, tail
from bdr.util.host import pid_alive
from bdr.util.waiting import wait_for

TSDB_FLAG = "--storage.tsdb.path"
DEFAULT_TSDB = "data/"


def default_log_file(instance: PrometheusInstance) -> Path:
    return service_log_file("prometheus", instance.name, instance.log_file)


def tsdb_path_of(argv: tuple[str, ...], cwd: str | None) -> Path:
    """``--storage.tsdb.path`` of a prometheus argv (Prometheus's default ``data/``), absolute against ``cwd``."""
    value = DEFAULT_TSDB
    for index, arg in enumerate(argv):
        if arg.startswith(f"{TSDB_FLAG}="):
            value = arg.split("=", 1)[1]
        elif arg == TSDB_FLAG and index + 1 < len(argv):
            value = argv[index + 1]
    path = Path(value)
    return path if path.is_absolute() else Path(cwd or os.getcwd()) / path


@dataclass
class PrometheusRuntime:
    """A Prometheus server as bdr.yaml (or a restore journal's :class:`Launch`) says it is run."""

    instance: PrometheusInstance
    kind: str
    recorded: Launch | None = None
    service: str = "prometheus"
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.instance.name

    def url(self) -> str:
        return self.instance.url

    def client(self, timeout: float = 30.0) -> PrometheusClient:
        return PrometheusClient(self.instance.name, self.instance.url, timeout)

    @property
    def port(self) -> int:
        parsed = urlparse(self.instance.url)
        return parsed.port or (443 if parsed.scheme == "https" else 80)

    # --- what runs -----------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of the prometheus process listening on the instance's port here (process runtime)."""
        for listener in procfs.listeners(self.port):
            for pid in listener.pids:
                facts = procfs.read_process(pid)
                if facts is not None and "prometheus" in os.path.basename(facts.exe or facts.argv0):
                    return pid
        return None

    def _run(self, argv: list[str] | tuple[str, ...], what: str, timeout: float = 120.0, check: bool = True
             ) -> CommandRun:
        if not argv:
            raise ConfigError(path="bdr.yaml", detail=f"prometheus.{self.name}: no {what} command")
        return run_command(argv, where=f"prometheus.{self.name} ({what})", timeout=timeout, check=check)

    def _manager(self, verb: str) -> list[str]:
        """The systemd / command / docker argv of ``verb`` (start, stop, status)."""
        if self.kind == "systemd":
            unit = (self.recorded.unit if self.recorded else None) or self.instance.unit or ""
            prefix = list((self.recorded.systemctl if self.recorded else ()) or self.instance.systemctl)
            return [*prefix, "is-active" if verb == "status" else verb, unit]
        if self.kind == "docker":
            container = (self.recorded.container if self.recorded else None) or self.instance.container or ""
            return {"start": ["docker", "start", container], "stop": ["docker", "stop", "-t", "60", container],
                    "status": ["docker", "inspect", "-f", "{{.State.Running}}", container]}[verb]
        commands = (self.recorded.commands if self.recorded else None) or self.instance.commands
        return list(commands.get(verb, ()))

    def running(self) -> bool:
        if self.kind == "process":
            return self.pid() is not None
        if self.kind == "docker":
            done = self._run(self._manager("status"), "status", check=False)
            return done.returncode == 0 and done.stdout.strip() == "true"
        status = self._manager("status")
        if status:
            return self._run(status, "status", check=False).returncode == 0
        return self.ready()

    def ready(self) -> bool:
        return self.client(timeout=5.0).ready()

    # --- start and stop ------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        timeout = max(timeout, self.instance.timeout)
        if self.kind != "process":
            self._run(self._manager("start"), "start")
            if not wait_for(self.ready, timeout, 0.1):
                raise ServiceTimeout(service=f"Prometheus {self.name}", what="become ready (/-/ready)",
                                     seconds=timeout, detail=f"started with {command_line(self._manager('start'))}")
            return
        launch = self.launch()
        log_path = default_log_file(self.instance)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        user, group, groups = identity(launch.uid, launch.gid, launch.groups)
        log: IO[bytes]
        with log_path.open("ab") as log:
            self._proc = subprocess.Popen(list(launch.argv), cwd=launch.cwd, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True, user=user, group=group,
                                          extra_groups=groups)
        proc = self._proc
        if not wait_for(lambda: proc.poll() is not None or self.ready(), timeout, 0.1) or proc.poll() is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            what = f"exited with code {proc.returncode}" if proc.returncode is not None else \
                f"was not ready within {timeout:.0f}s"
            raise StartFailed(name=self.name, how=launch.describe(), detail=f"{what}; log {log_path}: "
                              f"{tail(log_path) or 'empty'}")

    def stop(self, timeout: float = 60.0) -> None:
        timeout = max(timeout, self.instance.timeout)
        if self.kind != "process":
            self._run(self._manager("stop"), "stop", timeout=timeout)
            if not wait_for(lambda: not self.running(), timeout, 0.1):
                raise StopFailed(name=self.name, how=command_line(self._manager("stop")), detail="still running")
            return
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        gone = wait_for(lambda: not pid_alive(pid) or self._reaped(pid), timeout, 0.05)
        if not gone:
            raise StopFailed(name=self.name, how=f"SIGTERM to pid {pid}", detail=f"still running after {timeout:.0f}s")
        wait_for(lambda: procfs.port_free(self.port), 10.0, 0.05)

    def _reaped(self, pid: int) -> bool:
        """A child bdr started itself is a zombie until waited for."""
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is not None
        facts = procfs.read_process(pid)
        return facts is None or facts.state.startswith("Z")

    def kill(self) -> None:
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not pid_alive(pid) or self._reaped(pid), 10.0, 0.05)

    # --- where and how -------------------------------------------------------------------------

    def data_path(self) -> Path:
        if self.instance.data_dir:
            return Path(os.path.expanduser(self.instance.data_dir)).absolute()
        if self.recorded is not None and self.recorded.data_dir:
            return Path(self.recorded.data_dir)
        if self.kind == "process":
            pid = self.pid()
            facts = procfs.read_process(pid) if pid is not None else None
            if facts is not None:
                return tsdb_path_of(facts.cmdline, facts.cwd)
            if self.instance.start_args:
                return tsdb_path_of(self.instance.start_args, None)
        elif self.kind != "docker":
            with contextlib.suppress(ServiceError):
                value = self.client(timeout=10.0).flags().get("storage.tsdb.path")
                if value and Path(value).is_absolute():
                    return Path(value)
        raise ConfigError(path="bdr.yaml", detail=f"prometheus.{self.name}: bdr cannot tell where its TSDB is: set "
                          "data_dir (its --storage.tsdb.path on this host)")

    def launch(self) -> Launch:
        """How to start it again: the running process as /proc shows it, else the recorded launch or bdr.yaml."""
        if self.kind != "process":
            return Launch(runtime=self.kind, data_dir=str(self.data_path()), unit=self.instance.unit,
                          systemctl=tuple(self.instance.systemctl), commands=dict(self.instance.commands),
                          container=self.instance.container)
        pid = self.pid()
        facts = procfs.read_process(pid) if pid is not None else None
        if facts is not None and facts.cmdline:
            exe = facts.exe if facts.exe and not facts.exe_deleted else facts.cmdline[0]
            argv = (exe, *facts.cmdline[1:])
            return Launch(runtime="process", data_dir=str(tsdb_path_of(facts.cmdline, facts.cwd)), argv=argv,
                          cwd=facts.cwd, pid=pid, uid=facts.uid, gid=facts.gid, groups=facts.groups)
        if self.recorded is not None:
            return self.recorded
        if self.instance.start_args:
            return Launch(runtime="process", data_dir=str(tsdb_path_of(self.instance.start_args, None)),
                          argv=self.instance.start_args)
        raise ConfigError(path="bdr.yaml", detail=f"Prometheus {self.name} is not running and bdr does not know how "
                          f"to start it: set prometheus.{self.name}.start_args (the full prometheus argv), or "
                          "restore a set taken while it ran (it records the launch)")

    def preflight(self, needs: Needs) -> list[str]:
        problems: list[str] = []
        try:
            launch = self.launch()
        except BdrError as exc:
            return [exc.message]
        if self.kind == "process":
            binary = launch.argv[0] if launch.argv else ""
            if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
                problems.append(f"Prometheus {self.name}: {binary or 'its binary'} is not an executable file")
            if launch.cwd and not os.path.isdir(launch.cwd):
                problems.append(f"Prometheus {self.name}: its working directory {launch.cwd} is gone")
            if launch.pid is not None:
                from bdr.runtime.supervision import supervisor_of

                supervisor = supervisor_of(launch.pid)
                if supervisor is not None:
                    problems.append(f"Prometheus {self.name} (pid {launch.pid}) {supervisor.describe()}: set runtime: "
                                    f"{'systemd' if supervisor.kind == 'systemd' else 'command'} in bdr.yaml")
        elif not shutil.which(self._manager("start")[0] if self._manager("start") else ""):
            problems.append(f"Prometheus {self.name}: {command_line(self._manager('start'))} cannot be run here")
        data = Path(launch.data_dir)
        parent = data if data.is_dir() else data.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            problems.append(f"Prometheus {self.name}: its data directory {parent} is not writable by bdr")
        else:
            info = os.statvfs(parent)
            free = info.f_bavail * info.f_frsize
            if free < needs.free_bytes:
                problems.append(f"Prometheus {self.name}: {free} bytes free on {parent}, the restore needs "
                                f"{needs.free_bytes}")
        return problems

    def describe(self) -> dict[str, str]:
        facts = {"runtime": self.kind}
        with contextlib.suppress(ServiceError):
            facts["version"] = str(self.client(timeout=5.0).buildinfo().get("version", "?"))
        if self.kind == "process":
            pid = self.pid()
            if pid is not None:
                facts["pid"] = str(pid)
        return facts


def _factory(kind: str) -> Any:
    def build(instance: PrometheusInstance, launch: Launch | None = None, **_: Any) -> PrometheusRuntime:
        return PrometheusRuntime(instance, launch.runtime if launch is not None else kind, launch)

    return build


for _kind in ("process", "systemd", "command", "docker"):
    register_runtime(f"prometheus/{_kind}", _factory(_kind))
