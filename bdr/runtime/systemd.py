"""Redis run by a systemd unit (``runtime: systemd``, ``unit: redis-server.service``).

systemd owns the process: bdr never signals it behind systemd's back. ``stop`` is
``systemctl stop UNIT`` (an explicit stop is never undone by ``Restart=always``), after
telling Redis not to save on the way down (``shutdown-on-sigterm nosave``: the files on
disk are what a restore replaces), and waits until Redis is gone; ``start`` is
``systemctl start UNIT`` and waits until Redis answers and finished loading; ``running``
reads ``systemctl show -p ActiveState,MainPID``; ``kill`` is ``systemctl kill
--signal=SIGKILL --kill-who=main`` (the crash: systemd restarts it, as it would after an
OOM kill).

``systemctl`` is an argv prefix (default ``[systemctl]``): ``[systemctl, --user]``,
``[sudo, systemctl]``, ``[systemctl, -M, machine]`` or ``[docker, exec, <container>,
systemctl]`` for a unit inside a container. What comes before ``systemctl`` in it also
runs the preflight's commands on the unit's host (the binary's ``--version``, the dry
start), unless it names another machine (``-M``/``-H``).

While Redis is down, its settings come from the unit's ``ExecStart`` (and
``WorkingDirectory``); ``config_file`` in bdr.yaml, when set, is the same file as bdr
reads it (for a unit in a container: its path on this host).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdr.config import RedisInstance
from bdr.errors import CommandFailed, ConfigError, ServiceError, StartFailed
from bdr.runtime import preflight as checks
from bdr.runtime import register_runtime
from bdr.runtime.base import Launch, Needs, command_line
from bdr.runtime.redis_base import RedisBase, nosave_on_signals
from bdr.runtime.remote import remote_dry_start, remote_version
from bdr.runtime.server import version
from bdr.runtime.settings import LaunchConfig, read_launch_config, split_command

logger = logging.getLogger(__name__)

LIVE_STATES = ("active", "activating", "reloading", "deactivating")
SHOWN = ("LoadState", "ActiveState", "SubState", "UnitFileState", "MainPID", "ExecStart", "WorkingDirectory",
         "User", "Group", "Restart", "Result")


def runner_of(systemctl: Sequence[str]) -> tuple[str, ...] | None:
    """The prefix that runs a command on the unit's host (``()``: here); None when bdr cannot run one there."""
    for index, arg in enumerate(systemctl):
        if os.path.basename(arg) == "systemctl":
            after = systemctl[index + 1:]
            if any(a in ("-M", "-H") or a.startswith(("--machine", "--host")) for a in after):
                return None
            before = tuple(systemctl[:index])
            if before in (("sudo",), ("sudo", "-n")) and os.geteuid() == 0:
                return ()
            return before
    return None


def exec_start_argv(value: str) -> list[str]:
    """The argv of ``systemctl show -p ExecStart`` (``{ path=... ; argv[]=... ; ... }``)."""
    marker = "argv[]="
    if marker not in value:
        return []
    text = value.split(marker, 1)[1].split(" ; ", 1)[0]
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


@dataclass
class SystemdRedis(RedisBase):
    """A Redis instance whose process belongs to a systemd unit."""

    unit: str = ""
    systemctl: tuple[str, ...] = ("systemctl",)
    kind: str = "systemd"
    _launch: Launch | None = field(default=None, repr=False)

    # --- systemctl ------------------------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [*self.systemctl, *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError as exc:
            raise ConfigError(path="bdr.yaml", detail=f"redis.{self.name}.systemctl: {argv[0]} not found "
                              f"({exc.strerror}); fix the systemctl prefix") from exc
        except subprocess.TimeoutExpired as exc:
            raise CommandFailed(command=command_line(argv), code="timeout", output=f"no answer in {timeout:.0f}s"
                                ) from exc
        if check and done.returncode != 0:
            raise CommandFailed(command=command_line(argv), code=done.returncode,
                                output=(done.stderr or done.stdout).strip()[-400:] or "no output")
        return done

    def show(self, *props: str) -> dict[str, str]:
        done = self._run("show", *(f"--property={p}" for p in props), self.unit, timeout=30.0)
        return dict(line.partition("=")[::2] for line in done.stdout.splitlines() if "=" in line)

    def status_tail(self) -> str:
        done = self._run("status", "--no-pager", "--lines=5", self.unit, timeout=30.0, check=False)
        return " | ".join(line.strip() for line in done.stdout.strip().splitlines()[-6:])

    # --- state ----------------------------------------------------------------------------------

    def running(self) -> bool:
        return self.show("ActiveState").get("ActiveState") in LIVE_STATES

    def how_started(self) -> str:
        return f"{command_line(self.systemctl)} start {self.unit}"

    def _failed(self) -> str | None:
        shown = self.show("ActiveState", "Result")
        if shown.get("ActiveState") == "failed" or (shown.get("ActiveState") == "inactive"
                                                      and shown.get("Result") not in ("success", "")):
            return f"unit {self.unit} is {shown.get('ActiveState')} ({shown.get('Result')}): {self.status_tail()}"
        return None

    def start(self, timeout: float = 60.0) -> None:
        if self.ready():
            return
        logger.info("starting Redis %s: %s", self.name, self.how_started())
        try:
            self._run("start", self.unit, timeout=timeout + 30.0)
        except CommandFailed as exc:
            raise StartFailed(name=self.name, how=self.how_started(), detail=f"{exc.message}; {self.status_tail()}"
                              ) from exc
        self.wait_ready(timeout, dead=self._failed, context=self.status_tail)

    def stop(self, timeout: float = 60.0) -> None:
        """``systemctl stop``, Redis told not to save first; waits until it is gone."""
        if not self.running() and not self.answering():
            return
        pid = self.host_pid()
        logger.info("stopping Redis %s: %s stop %s", self.name, command_line(self.systemctl), self.unit)
        with nosave_on_signals(self):
            self._run("stop", self.unit, timeout=timeout + 30.0)
            self.wait_gone(pid, timeout, how=f"{command_line(self.systemctl)} stop {self.unit}")

    def kill(self) -> None:
        """SIGKILL to the unit's main process (systemd restarts it when the unit says Restart=...)."""
        self._run("kill", "--signal=SIGKILL", "--kill-who=main", self.unit)

    # --- how it is launched ---------------------------------------------------------------------

    def _exec(self, shown: dict[str, str]) -> tuple[list[str], str]:
        """The unit's ExecStart argv and working directory, as the unit's host sees them."""
        return exec_start_argv(shown.get("ExecStart", "")), shown.get("WorkingDirectory") or "/"

    def _readable(self, argv: Sequence[str]) -> list[str]:
        """``argv`` with its config file as bdr reads it (``config_file`` of bdr.yaml, when set)."""
        out = list(argv)
        if out and self.instance.config_file and split_command(out)[0] is not None:
            out[1] = self.instance.config_file
        return out

    def launch(self) -> Launch:
        shown = self.show(*SHOWN)
        if shown.get("LoadState") != "loaded":
            raise ServiceError(detail=f"systemd unit {self.unit} of Redis {self.name} is {shown.get('LoadState')}: "
                               f"check unit: in bdr.yaml (`{command_line(self.systemctl)} list-units 'redis*'`)")
        argv, cwd = self._exec(shown)
        pid = int(shown.get("MainPID") or 0) or None
        data = self.instance.data_dir or (self.settings(["dir"]).get("dir") if self.answering() else None) or (
            read_launch_config(self._readable(argv), cwd).dir if argv else "")
        self._launch = Launch(runtime="systemd", data_dir=data, unit=self.unit, systemctl=self.systemctl,
                              argv=tuple(argv), cwd=cwd, pid=pid)
        return self._launch

    def launch_config(self) -> LaunchConfig:
        if self._launch is not None and self._launch.argv:
            return read_launch_config(self._readable(self._launch.argv), self._launch.cwd)
        argv, cwd = self._exec(self.show("ExecStart", "WorkingDirectory"))
        if not argv:
            raise ServiceError(detail=f"systemd unit {self.unit} has no ExecStart bdr can read: set config_file of "
                               f"redis.{self.name} in bdr.yaml")
        return read_launch_config(self._readable(argv), cwd)

    def down_settings(self, names: Sequence[str]) -> dict[str, str]:
        return self.launch_config().settings(names)

    # --- preflight ------------------------------------------------------------------------------

    def _identity(self, shown: dict[str, str]) -> checks.Identity:
        import grp
        import pwd

        user, group = shown.get("User") or "", shown.get("Group") or ""
        try:
            entry = pwd.getpwnam(user) if user and not user.isdigit() else (pwd.getpwuid(int(user)) if user else None)
        except KeyError:
            return checks.Identity()
        if entry is None:
            return checks.Identity()
        gid = entry.pw_gid
        if group:
            with contextlib.suppress(KeyError):
                gid = grp.getgrnam(group).gr_gid if not group.isdigit() else int(group)
        groups = tuple(g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem)
        return checks.Identity(entry.pw_uid, gid, groups)

    def preflight(self, needs: Needs) -> list[str]:
        try:
            shown = self.show(*SHOWN)
        except (CommandFailed, ConfigError) as exc:
            return [f"cannot ask systemd about {self.unit} of Redis {self.name}: {exc.message}"]
        problems: list[str] = []
        load = shown.get("LoadState")
        if load != "loaded" or shown.get("UnitFileState") == "masked":
            state = "masked" if shown.get("UnitFileState") == "masked" or load == "masked" else load
            return [f"systemd unit {self.unit} of Redis {self.name} is {state}: it could not be started again; "
                    f"{'unmask it' if state == 'masked' else 'check unit: in bdr.yaml'}"]
        argv, cwd = self._exec(shown)
        if not argv:
            return [f"systemd unit {self.unit} has no ExecStart bdr can read: check the unit"]
        main = int(shown.get("MainPID") or 0)
        server = self.server_pid()
        if server is not None and main != server:
            problems.append(f"the Redis at {self.instance.url} is pid {server}, but the main process of "
                            f"{self.unit} is {main or 'none'}: bdr.yaml points unit: (or the url) of redis.{self.name} "
                            "at another Redis; fix it")
        runner = runner_of(self.systemctl)
        stdin = None
        who = self._identity(shown) if runner == () else checks.Identity()
        if runner == ():
            found, config = checks.launch_problems(self.name, argv, cwd, who, stdin)
            problems += found
        elif runner is not None:
            config = read_launch_config(self._readable(argv), cwd)
            problems += remote_version(self.name, runner, argv[0])
            if not problems:
                problems += remote_dry_start(self.name, runner, argv, shown.get("User") or "", shown.get("Group") or "")
        else:
            config = read_launch_config(self._readable(argv), cwd)
        if self.local and runner == ():
            problems += checks.port_problems(self.name, self.address()[1], checks.bind_addresses(config.get("bind")),
                                             self.host_pid())
        if self.instance.data_dir or runner == ():
            data = Path(self.instance.data_dir) if self.instance.data_dir else Path(
                self.settings(["dir"]).get("dir") or config.dir)
            problems += checks.data_dir_problems(self.name, data, needs, who)
        return problems

    def describe(self) -> dict[str, str]:
        facts = {"runtime": "systemd", "unit": self.unit, "systemctl": command_line(self.systemctl)}
        try:
            shown = self.show("MainPID", "ActiveState", "ExecStart", "Restart")
        except (CommandFailed, ConfigError):
            shown = {}
        facts.update({k.lower(): v for k, v in shown.items() if k != "ExecStart"})
        argv = exec_start_argv(shown.get("ExecStart", ""))
        if argv:
            facts["binary"] = argv[0]
        import redis

        try:
            facts["version"] = str(self.client(timeout=2.0, retries=0).info("server").get("redis_version"))
        except redis.RedisError:
            if argv and runner_of(self.systemctl) == ():
                found, _ = version(argv[0])
                if found:
                    facts["version"] = found
        return facts


def attach(instance: RedisInstance, launch: Launch | None = None, **_: Any) -> SystemdRedis:
    unit = (launch.unit if launch else None) or instance.unit
    if not unit:
        raise ConfigError(path="bdr.yaml", detail=f"redis.{instance.name}: runtime systemd needs unit: (e.g. "
                          "redis-server.service)")
    systemctl = tuple(launch.systemctl) if launch and launch.systemctl else tuple(instance.systemctl)
    runtime = SystemdRedis(instance=instance, unit=unit, systemctl=systemctl or ("systemctl",))
    runtime._launch = launch
    return runtime


register_runtime("redis/systemd", attach)

__all__ = ["SystemdRedis", "attach", "exec_start_argv", "runner_of"]
