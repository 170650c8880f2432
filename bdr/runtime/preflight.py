"""Proving an instance can be started again, before anything is stopped.

Every runtime's ``preflight(needs)`` is built from these checks; each returns problems,
one line each with its fix, and changes nothing:

- :func:`binary_problems`: the exact executable runs as redis-server (``--version``);
- :func:`config_problems`: the config file, its includes, the ``aclfile`` and TLS files
  exist and are readable by the user Redis runs as (mode bits along the path; bdr as
  root can read anything, Redis as ``redis`` cannot), and Redis would accept every line;
- :func:`dry_start`: the same binary with the same config and launch arguments, but
  ``--port 0 --unixsocket <scratch>/s --dir <scratch> --pidfile '' --logfile ''
  --daemonize no --supervised no --save '' --appendonly no --cluster-enabled no`` (and
  relative ``aclfile``/TLS paths made absolute against the real data directory), as the
  user it runs as, answers PING on its unix socket, then is killed: the configuration
  parses and the server starts, without touching its port or its data (~20-60 ms);
- :func:`port_problems`: nobody but the instance's own process listens on its port on an
  address it binds (``/proc/net/tcp{,6}`` inodes to ``/proc/*/fd``), naming who does;
- :func:`data_dir_problems`: the data directory exists, bdr can create and delete a file
  in it, Redis's user can write it, and it has ``needs.free_bytes`` free (statvfs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bdr.runtime import procfs
from bdr.runtime.base import Needs, command_line
from bdr.runtime.server import identity, kill_group, popen_server, stdin_config, tail, version
from bdr.runtime.settings import LaunchConfig, read_launch_config
from bdr.util.units import format_bytes

logger = logging.getLogger(__name__)

DRY_START_TIMEOUT = 10.0
TLS_FILES = ("tls-cert-file", "tls-key-file", "tls-ca-cert-file", "tls-dh-params-file", "tls-client-cert-file",
             "tls-client-key-file")
ABSOLUTE_FOR_DRY_START = ("aclfile", *TLS_FILES, "tls-ca-cert-dir")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the server runs as (None: whoever starts it)."""

    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] = ()

    def describe(self) -> str:
        if self.uid is None:
            return "the user bdr runs as"
        with contextlib.suppress(KeyError, ImportError):
            import pwd

            return f"{pwd.getpwuid(self.uid).pw_name} (uid {self.uid})"
        return f"uid {self.uid}"


def _allows(st: os.stat_result, who: Identity, bit: int) -> bool:
    """``bit`` (4 r, 2 w, 1 x) allowed to ``who`` by the mode bits of ``st``."""
    if who.uid is None or who.uid == 0:
        return True
    if st.st_uid == who.uid:
        return bool(st.st_mode & (bit << 6))
    if st.st_gid == who.gid or st.st_gid in who.groups:
        return bool(st.st_mode & (bit << 3))
    return bool(st.st_mode & bit)


def accessible(path: Path, who: Identity, bit: int) -> bool:
    """Whether ``who`` may reach ``path`` (x on every directory above) and has ``bit`` on it."""
    path = Path(os.path.abspath(path))
    try:
        for parent in reversed(path.parents):
            if not _allows(parent.stat(), who, 1):
                return False
        return _allows(path.stat(), who, bit)
    except OSError:
        return False


def binary_problems(name: str, binary: str) -> list[str]:
    found, output = version(binary)
    if found is None:
        return [f"{binary} --version does not run as redis-server ({output[:120]}): reinstall redis-server, or fix "
                f"how Redis {name} is launched"]
    return []


def config_problems(name: str, config: LaunchConfig, who: Identity) -> list[str]:
    """Files the server reads at start: present, readable by ``who``, lines Redis accepts."""
    problems = [f"{problem}: Redis {name} could not start again; fix the file (or its permissions)"
                for problem in config.problems]
    for file in config.files:
        if os.path.exists(file) and not accessible(Path(file), who, 4):
            problems.append(f"config file {file} is not readable by {who.describe()}, the user Redis {name} runs as: "
                            "it could not start again; chmod/chown it (e.g. chgrp redis and chmod 640)")
    for setting in ("aclfile", *TLS_FILES):
        path = config.path(setting)
        if path is None:
            continue
        if not path.exists():
            problems.append(f"{setting} {path} of Redis {name} does not exist: it could not start again; restore "
                            "the file or fix the setting")
        elif not accessible(path, who, 4):
            problems.append(f"{setting} {path} is not readable by {who.describe()}, the user Redis {name} runs as: "
                            "chmod/chown it")
    return problems


def _dry_args(config: LaunchConfig, scratch: Path) -> list[str]:
    args = [
        "--port", "0", "--tls-port", "0", "--unixsocket", str(scratch / "s"), "--unixsocketperm", "700",
        "--dir", str(scratch), "--pidfile", "", "--logfile", "", "--daemonize", "no", "--supervised", "no",
        "--save", "", "--appendonly", "no", "--cluster-enabled", "no",
    ]
    for setting in ABSOLUTE_FOR_DRY_START:
        value = config.get(setting)
        if value and not os.path.isabs(value):
            args += [f"--{setting}", str(Path(config.dir) / value)]
    tls = config.get("tls-port") not in (None, "0") or config.get("tls-replication") == "yes"
    if tls:  # make it load its certificates without listening on a TLS port
        args += ["--tls-replication", "yes"]
    return args


def _pings(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH", b"-LOADING"))


@dataclass(frozen=True, slots=True)
class DryStart:
    """What a dry start found, and how long it took."""

    problems: tuple[str, ...]
    seconds: float


def dry_start(name: str, argv: Sequence[str], cwd: str | None, config: LaunchConfig, who: Identity,
              stdin: Mapping[str, str] | None = None, timeout: float = DRY_START_TIMEOUT) -> DryStart:
    """Start ``argv`` with a scratch port, socket and directory; PING it; kill it (nothing of the instance touched)."""
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="bdr-dry-"))
    proc: subprocess.Popen[bytes] | None = None
    log = scratch / "out.log"
    try:
        if identity(who.uid, who.gid, who.groups)[0] is not None:
            os.chown(scratch, who.uid or 0, who.gid if who.gid is not None else -1)
        full = [*argv, *_dry_args(config, scratch)]
        with log.open("wb") as out:
            try:
                proc = popen_server(full, cwd=cwd, log=out, stdin=stdin_config(stdin) if stdin else None,
                                    uid=who.uid, gid=who.gid, groups=who.groups, die_with_parent=True)
            except OSError as exc:
                return DryStart((f"cannot run {argv[0]} for Redis {name}: {exc.strerror or exc}; fix how it is "
                                 "launched",), time.monotonic() - started)
        deadline = time.monotonic() + timeout
        while True:
            if _pings(scratch / "s"):
                return DryStart((), time.monotonic() - started)
            if proc.poll() is not None:
                return DryStart((f"Redis {name} would not start again: a dry start of `{command_line(argv)}` "
                                 f"exited with code {proc.returncode}: {tail(log) or 'no output'}; fix its "
                                 "configuration before stopping it",), time.monotonic() - started)
            if time.monotonic() > deadline:
                return DryStart((f"Redis {name}: a dry start of `{command_line(argv)}` did not answer within "
                                 f"{timeout:.0f}s: {tail(log) or 'no output'}",), time.monotonic() - started)
            time.sleep(0.003)
    finally:
        if proc is not None:
            kill_group(proc)
        shutil.rmtree(scratch, ignore_errors=True)
        logger.debug("dry start of %s took %.3fs", name, time.monotonic() - started)


def bind_addresses(bind: str | None) -> list[str]:
    """The addresses a ``bind`` setting listens on (``-`` marks an optional one; ``*`` any)."""
    out = []
    for word in (bind or "* -::*").split():
        word = word.lstrip("-")
        out.append({"*": "0.0.0.0", "::*": "::"}.get(word, word))
    return out


def port_problems(name: str, port: int, binds: Sequence[str], own: int | None) -> list[str]:
    """Listeners on ``port`` of another process than ``own`` that a restart on ``binds`` would collide with."""
    if port == 0:
        return []
    problems = []
    for listener in procfs.listeners(port):
        others = [pid for pid in listener.pids if pid != own]
        if not others or not any(listener.overlaps(address) for address in binds):
            continue
        who = ", ".join((facts.describe() if facts else f"pid {pid}")
                        for pid in others for facts in [procfs.read_process(pid)])
        problems.append(f"port {port} on {listener.address} is held by {who}, not by Redis {name}: after a stop "
                        "Redis could not bind it again; stop that process or move one of them to another port")
    return problems


def data_dir_problems(name: str, path: Path, needs: Needs, who: Identity) -> list[str]:
    if not path.is_dir():
        return [f"data directory {path} of Redis {name} does not exist: create it (owned by {who.describe()}) "
                "or fix dir in its configuration"]
    problems = []
    try:
        fd, probe = tempfile.mkstemp(prefix=".bdr-preflight-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        problems.append(f"bdr cannot write to the data directory {path} of Redis {name}: {exc.strerror or exc}; "
                        "run bdr as root or as the user Redis runs as")
    if not accessible(path, who, 2 | 1):
        problems.append(f"{who.describe()}, the user Redis {name} runs as, cannot write to {path}: chown it to that "
                        "user")
    with contextlib.suppress(OSError):
        vfs = os.statvfs(path)
        free = vfs.f_bavail * vfs.f_frsize
        if free < needs.free_bytes:
            problems.append(f"no room in {path}: {format_bytes(free)} free, the restore needs "
                            f"{format_bytes(needs.free_bytes)} beside what is there; free space or "
                            "move the data directory to a bigger file system")
    return problems


def owner_problems(name: str, who: Identity) -> list[str]:
    """bdr must be able to start the server as the user it runs as."""
    if who.uid is None or who.uid == os.geteuid() or os.geteuid() == 0:
        return []
    return [f"Redis {name} runs as {who.describe()} and bdr as uid {os.geteuid()}: bdr could not start it again as "
            "that user; run bdr as root or as that user"]


def launch_problems(name: str, argv: Sequence[str], cwd: str | None, who: Identity,
                    stdin: Mapping[str, str] | None = None) -> tuple[list[str], LaunchConfig]:
    """The binary runs, the config (and what it names) is readable by ``who``, a dry start answers."""
    problems = owner_problems(name, who)
    problems += binary_problems(name, argv[0])
    if cwd and not os.path.isdir(cwd):
        problems.append(f"Redis {name} starts in {cwd}, which no longer exists: recreate it, or set config_file "
                        f"of redis.{name} in bdr.yaml")
    config = read_launch_config(argv, cwd, stdin)
    problems += config_problems(name, config, who)
    if not problems:
        problems += dry_start(name, argv, cwd, config, who, stdin).problems
    return problems, config


__all__ = [
    "DryStart",
    "Identity",
    "accessible",
    "binary_problems",
    "bind_addresses",
    "config_problems",
    "data_dir_problems",
    "dry_start",
    "format_bytes",
    "launch_problems",
    "owner_problems",
    "port_problems",
]
