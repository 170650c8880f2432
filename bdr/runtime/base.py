"""The runtime interface: how one service instance lives, and how to start it again.

A runtime answers four questions for the engines, and nothing else does:

- is it up (``running``: the process or container exists; ``ready``: answering and done
  loading its data)?
- how is it stopped and started *the way the operator runs it* (a process bdr starts
  again exactly as it was launched, a systemd unit, the operator's own commands for
  supervisord, s6 or k8s, a container)?
- where is its data on this host (``data_path``)?
- can it be started again (``preflight``), proved *before* anything is stopped?

:class:`Launch` is the record of how an instance is started again. The restore journal
stores it before the instance is stopped, so ``bdr restore --resume`` / ``--abort`` can
bring the instance back after bdr itself was killed, with nothing from bdr.yaml but the
instance name. It never holds a secret: a setting that must not be in argv (the
password) is passed on the server's stdin and recorded by *name* only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import redis

    from bdr.config import RedisInstance


@dataclass(frozen=True, slots=True)
class Launch:
    """How an instance is started again, as recorded while it ran (or from bdr.yaml).

    Only the fields of its ``runtime`` kind are set: ``process`` has ``argv`` (the
    executable first, as ``/proc/PID/exe`` names it), ``cwd`` and ``stdin_settings``
    (names of settings given on the server's stdin, e.g. ``requirepass``, whose values
    come from the instance's credentials at start time); ``systemd`` has ``unit`` and
    ``systemctl``; ``command`` has ``commands`` (``start``/``stop``/``status`` argv);
    ``docker`` has ``container``. ``data_dir`` is the data directory on this host,
    ``pid`` the process id when it was recorded. ``uid``/``gid``/``groups`` (process) are
    who the server ran as: bdr, as root, starts it as them again. ``systemd`` and
    ``command`` may also set ``argv`` and ``cwd``: how the server itself is launched (the
    unit's ``ExecStart``, or the process bdr saw), to read its settings while it is down.
    """

    runtime: str
    data_dir: str
    argv: tuple[str, ...] = ()
    cwd: str | None = None
    stdin_settings: tuple[str, ...] = ()
    unit: str | None = None
    systemctl: tuple[str, ...] = ()
    commands: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    container: str | None = None
    pid: int | None = None
    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "data_dir": self.data_dir,
            "argv": list(self.argv),
            "cwd": self.cwd,
            "stdin_settings": list(self.stdin_settings),
            "unit": self.unit,
            "systemctl": list(self.systemctl),
            "commands": {k: list(v) for k, v in self.commands.items()},
            "container": self.container,
            "pid": self.pid,
            "uid": self.uid,
            "gid": self.gid,
            "groups": list(self.groups),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Launch:
        return cls(
            runtime=str(data["runtime"]),
            data_dir=str(data["data_dir"]),
            argv=tuple(str(a) for a in data.get("argv") or ()),
            cwd=data.get("cwd"),
            stdin_settings=tuple(str(s) for s in data.get("stdin_settings") or ()),
            unit=data.get("unit"),
            systemctl=tuple(str(a) for a in data.get("systemctl") or ()),
            commands={str(k): tuple(str(a) for a in v) for k, v in (data.get("commands") or {}).items()},
            container=data.get("container"),
            pid=int(data["pid"]) if data.get("pid") is not None else None,
            uid=int(data["uid"]) if data.get("uid") is not None else None,
            gid=int(data["gid"]) if data.get("gid") is not None else None,
            groups=tuple(int(g) for g in data.get("groups") or ()),
        )

    def describe(self) -> str:
        """One line for logs and errors: how bdr will start it."""
        if self.runtime == "process":
            return command_line([*self.argv, *(["-"] if self.stdin_settings else [])]) + (
                f" (cwd {self.cwd})" if self.cwd else "")
        if self.runtime == "systemd":
            return f"{' '.join(self.systemctl or ('systemctl',))} start {self.unit}"
        if self.runtime == "command":
            return command_line(self.commands.get("start", ()))
        return f"docker start {self.container}"


@dataclass(frozen=True, slots=True)
class Needs:
    """What a restore needs of the instance's host before it stops anything."""

    free_bytes: int = 0
    """Room the new data files (and an AOF base beside them) need on the data directory's file system,
    on top of the files already there (which stay until the restore is verified)."""


@runtime_checkable
class Runtime(Protocol):
    """A service instance that can be stopped, started again the way it is run, and have its data replaced.

    ``data_path`` is a host directory holding the instance's data files, a live view: for
    the docker runtime, the volume's ``Mountpoint`` on the engine's host, readable only when
    bdr runs as root there (it raises a :class:`~bdr.errors.ServiceError` otherwise). A
    container runtime also has ``export_data(dest, names=())`` and ``replace_data(source,
    clear)``, which go through the engine for any user.
    """

    service: str
    kind: str
    """The runtime kind: ``process``, ``systemd``, ``command``, ``docker``."""

    @property
    def name(self) -> str:
        """The instance name in bdr.yaml (``production``, ``test`` ...)."""
        ...

    def url(self) -> str: ...

    def running(self) -> bool:
        """The process (or container) is up; it may still be loading (see ``ready``)."""
        ...

    def ready(self) -> bool:
        """Answering and done loading its data."""
        ...

    def start(self, timeout: float = 60.0) -> None:
        """Start it the way it is run and wait until it is ready; a start that fails or times
        out leaves no process of bdr's running."""
        ...

    def stop(self, timeout: float = 60.0) -> None:
        """Stop it cleanly *without* saving (the files on disk are what is restored or kept), so
        that nothing starts it again on its own (a supervisor is told, not raced)."""
        ...

    def kill(self) -> None:
        """SIGKILL: the crash the drills inject."""
        ...

    def data_path(self) -> Path: ...

    def launch(self) -> Launch:
        """How to start it again: read from the running instance (or from bdr.yaml when it is down)."""
        ...

    def preflight(self, needs: Needs) -> list[str]:
        """Problems that would keep it from starting again after a stop (empty: none).

        Proves, without stopping anything: the binary runs, its configuration is readable,
        the port can be taken again (nobody else holds it), the data directory is writable
        with ``needs.free_bytes`` of room, and it is not run by a supervisor this runtime
        would fight. Each problem is one line with its fix.
        """
        ...

    def describe(self) -> dict[str, str]:
        """Facts for reports: runtime kind, version, image or binary, pid or container id."""
        ...


@runtime_checkable
class RedisRuntime(Runtime, Protocol):
    """A Redis instance's runtime: also its configuration entry and a client."""

    instance: RedisInstance

    def client(self, db: int = 0, timeout: float = 30.0, retries: int = 2) -> redis.Redis:
        """A redis-py client of the server (with the instance's credentials)."""
        ...

    def settings(self, names: Sequence[str]) -> dict[str, str]:
        """The server's effective settings ``names`` (``dir``, ``dbfilename``, ``appendonly`` ...).

        ``CONFIG GET`` when it runs; when it is down, from how it is launched: its config
        file read with Redis's own semantics (quoting, ``include``, the last directive wins,
        ``dir`` changing the directory at once), then its ``--name value`` options, then
        Redis's defaults; ``dir`` absolute, as Redis resolves it. Values are normalised as
        ``CONFIG GET`` prints them (see :mod:`bdr.runtime.settings`); a name bdr does not
        know the default of, and that is not set, is left out when the server is down.
        """
        ...


def service_log_file(service: str, instance: str, configured: str | None) -> Path:
    """Where a service bdr starts logs (appended to by every start, never one per run): ``configured``
    (bdr.yaml's ``log_file``), else ``/var/log/bdr/<service>-<instance>.log`` as root and
    ``$XDG_STATE_HOME/bdr/...`` (``~/.local/state``) otherwise."""
    if configured:
        return Path(configured)
    name = f"{service}-{instance}.log"
    if os.geteuid() == 0:
        return Path("/var/log/bdr") / name
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(state) / "bdr" / name


def command_line(argv: Sequence[str]) -> str:
    """argv as one shell-readable line (for messages)."""
    import shlex

    return " ".join(shlex.quote(a) for a in argv)


@dataclass(frozen=True, slots=True)
class CommandRun:
    """What an operator's command did: its exit status, what it printed, and the tail of its
    output and errors (for messages)."""

    returncode: int
    stdout: str
    output: str


def run_command(argv: Sequence[str], *, where: str, timeout: float, check: bool = True) -> CommandRun:
    """Run an operator's command (a manager's stop, start or status) with a time limit.

    ``where`` names the command in bdr.yaml (``redis.cache.commands.stop``) for the one-line
    :class:`~bdr.errors.ConfigError` when it cannot be found; a timeout, and with ``check`` a
    non-zero exit, is :class:`~bdr.errors.CommandFailed` with the tail of its output.
    """
    import subprocess

    from bdr.errors import CommandFailed, ConfigError

    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise ConfigError(path="bdr.yaml", detail=f"{where}: {argv[0]} not found on PATH; fix the command") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(command=command_line(argv), code="timeout",
                            output=f"still running after {timeout:.0f}s") from exc
    output = (done.stdout + done.stderr).strip()[-400:]
    if check and done.returncode != 0:
        raise CommandFailed(command=command_line(argv), code=done.returncode, output=output or "no output")
    return CommandRun(done.returncode, done.stdout, output)
