"""Redis run by something bdr drives with the operator's own commands (``runtime: command``).

For supervisord, s6, runit, monit, a Kubernetes scale, or any wrapper script:
``commands: {start: [...], stop: [...], status: [...]}`` in bdr.yaml, each an argv list
(or a string, split like a shell would, never run through one).

- ``stop`` runs the stop command, Redis first told not to save on the way down
  (``shutdown-on-sigterm nosave``), and waits until Redis is gone (not answering, its
  process gone, its port free); an explicit stop is what a supervisor does not undo
  (supervisord's ``autorestart`` only restarts a process that exited on its own);
- ``start`` runs the start command and waits until Redis answers and finished loading;
- ``running``: the status command exits 0 (without one: Redis answers PING);
- ``kill``: SIGKILL to the Redis process on this host (the crash; the supervisor then
  restarts it).

While Redis runs on this host, bdr also reads how its process was launched (as the
process runtime does) for the preflight's dry start and for its settings while it is
down; without that, ``config_file``/``start_args`` in bdr.yaml tell them.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bdr.config import RedisInstance
from bdr.errors import CommandFailed, ConfigError, NoLaunch, ServiceError, ServiceUnavailable, StartFailed
from bdr.runtime import preflight as checks
from bdr.runtime import procfs, register_runtime
from bdr.runtime.base import CommandRun, Launch, Needs, command_line, run_command
from bdr.runtime.launch import ReadLaunch, read_launch
from bdr.runtime.redis_base import RedisBase, nosave_on_signals
from bdr.runtime.settings import LaunchConfig, read_launch_config

logger = logging.getLogger(__name__)

COMMAND_TIMEOUT = 120.0


@dataclass
class CommandRedis(RedisBase):
    """A Redis instance started, stopped and checked by operator-given commands."""

    commands: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    kind: str = "command"
    _launch: Launch | None = field(default=None, repr=False)
    _read: ReadLaunch | None = field(default=None, repr=False)
    last_output: str = ""

    def _run(self, which: str, timeout: float = COMMAND_TIMEOUT, check: bool = True) -> CommandRun:
        argv = list(self.commands.get(which, ()))
        if not argv:
            raise ConfigError(path="bdr.yaml", detail=f"redis.{self.name}.commands has no {which} command")
        logger.info("Redis %s: %s", self.name, command_line(argv))
        try:
            done = run_command(argv, where=f"redis.{self.name}.commands.{which}", timeout=timeout, check=check)
        except CommandFailed as exc:
            self.last_output = str(exc.fields.get("output", ""))
            raise
        self.last_output = done.output
        return done

    def how_started(self) -> str:
        return command_line(self.commands.get("start", ()))

    def running(self) -> bool:
        if self.commands.get("status"):
            return self._run("status", timeout=30.0, check=False).returncode == 0
        return self.answering()

    def start(self, timeout: float = 60.0) -> None:
        if self.ready():
            return
        try:
            self._run("start", timeout=max(timeout, 30.0))
        except CommandFailed as exc:
            raise StartFailed(name=self.name, how=self.how_started(), detail=exc.message) from exc
        self.wait_ready(timeout, context=lambda: self.last_output)

    def stop(self, timeout: float = 60.0) -> None:
        if not self.answering() and not self.running():
            return
        pid = self.host_pid()
        if pid is not None and self._launch is None:
            self.launch()
        with nosave_on_signals(self):
            self._run("stop", timeout=max(timeout, 30.0))
            self.wait_gone(pid, timeout, how=command_line(self.commands.get("stop", ())))

    def kill(self) -> None:
        pid = self.host_pid()
        if pid is None:
            raise ServiceUnavailable(service="Redis", address=self.instance.url, detail="no process of this host to "
                                     "kill")
        os.kill(pid, signal.SIGKILL)
        from bdr.util.waiting import wait_for

        wait_for(lambda: not procfs.alive(pid), 10.0, interval=0.01)

    # --- how it is launched ---------------------------------------------------------------------

    def _read_running(self) -> ReadLaunch | None:
        pid = self.host_pid()
        facts = procfs.read_process(pid) if pid is not None else None
        if facts is None:
            return None
        try:
            info = self.client(timeout=10.0, retries=0).info("server")
        except redis.RedisError:
            return None
        try:
            self._read = read_launch(self.instance, facts, info, self.all_settings(),
                                     self.instance.password())
        except ServiceError as exc:
            logger.info("cannot read how Redis %s was launched: %s", self.name, exc.message)
            return None
        return self._read

    def launch(self) -> Launch:
        argv: tuple[str, ...] = ()
        cwd: str | None = None
        pid = None
        read = self._read_running() if self.answering() else None
        if read is not None:
            argv, cwd, pid = read.launch.argv, read.launch.cwd, read.launch.pid
        elif self._launch is not None:
            return self._launch
        elif self.instance.config_file or self.instance.start_args:
            argv = (shutil.which("redis-server") or "redis-server",
                    *([self.instance.config_file] if self.instance.config_file else []), *self.instance.start_args)
            cwd = os.getcwd()
        data = self.instance.data_dir or (read.launch.data_dir if read else "") or (
            read_launch_config(argv, cwd).dir if argv else "")
        self._launch = Launch(runtime="command", data_dir=data, commands=dict(self.commands), argv=argv, cwd=cwd,
                              pid=pid, uid=read.launch.uid if read else None, gid=read.launch.gid if read else None,
                              groups=read.launch.groups if read else ())
        return self._launch

    def launch_config(self) -> LaunchConfig:
        launch = self._launch or self.launch()
        if not launch.argv:
            raise NoLaunch(name=self.name, fix=f"bdr cannot read its settings while it is down: set config_file of "
                           f"redis.{self.name} in bdr.yaml")
        return read_launch_config(launch.argv, launch.cwd)

    def down_settings(self, names: Sequence[str]) -> dict[str, str]:
        return self.launch_config().settings(names)

    # --- preflight ------------------------------------------------------------------------------

    def preflight(self, needs: Needs) -> list[str]:
        problems: list[str] = []
        for which in ("start", "stop", "status"):
            argv = self.commands.get(which)
            if argv and shutil.which(argv[0]) is None and not os.path.isfile(argv[0]):
                problems.append(f"{which} command of Redis {self.name} ({argv[0]}) is not found on PATH: fix "
                                f"redis.{self.name}.commands.{which} in bdr.yaml")
        if problems:
            return problems
        try:
            launch = self.launch()
        except ServiceError as exc:
            return [exc.message]
        who = checks.Identity(launch.uid, launch.gid, launch.groups)
        config: LaunchConfig | None = None
        if launch.argv:
            found, config = checks.launch_problems(self.name, launch.argv, launch.cwd, who)
            problems += found
        if self.local:
            bind = config.get("bind") if config else None
            problems += checks.port_problems(self.name, self.address()[1], checks.bind_addresses(bind),
                                             launch.pid)
        data = self.instance.data_dir or launch.data_dir
        if data:
            problems += checks.data_dir_problems(self.name, Path(data), needs, who)
        return problems

    def describe(self) -> dict[str, str]:
        facts = {"runtime": "command", "start": command_line(self.commands.get("start", ())),
                 "stop": command_line(self.commands.get("stop", ()))}
        try:
            info = self.client(timeout=2.0, retries=0).info("server")
            facts.update(version=str(info.get("redis_version")), pid=str(info.get("process_id")))
        except redis.RedisError:
            pass
        if self._launch is not None and self._launch.argv:
            facts["binary"] = self._launch.argv[0]
        return facts


def attach(instance: RedisInstance, launch: Launch | None = None, **_: Any) -> CommandRedis:
    commands = dict(launch.commands) if launch and launch.commands else dict(instance.commands)
    if not commands.get("start") or not commands.get("stop"):
        raise ConfigError(path="bdr.yaml", detail=f"redis.{instance.name}: runtime command needs commands: with "
                          "start and stop (and status), e.g. {start: supervisorctl start redis, stop: supervisorctl "
                          "stop redis, status: supervisorctl status redis}")
    runtime = CommandRedis(instance=instance, commands=commands)
    runtime._launch = launch
    return runtime


register_runtime("redis/command", attach)

__all__ = ["CommandRedis", "attach"]
