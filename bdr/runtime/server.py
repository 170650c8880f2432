"""Running a ``redis-server`` binary: the exact argv, its stdin, its owner, its own session.

Shared by the process runtime (which starts an instance again the way it was launched)
and the preflight's dry start:

- :func:`exec_argv`: Debian installs ``redis-server`` as a symlink to ``redis-check-rdb``
  (one binary that picks its mode from ``argv[0]``), so ``/proc/PID/exe`` of a running
  server names ``redis-check-rdb``; run that file with ``argv[0] = redis-server``;
- :func:`stdin_config`: settings that never go into an argv (``requirepass``) are given
  as config lines on the server's stdin (``redis-server [conf] [--opts] -``), quoted the
  way Redis's config parser unquotes them;
- :func:`popen_server`: a new session (``start_new_session``: the server and anything it
  forks are one process group bdr can kill), stdout and stderr to a log file, and, when
  bdr runs as root, the uid, gid and groups the instance ran as;
- :func:`kill_group`: SIGKILL to that process group, then reap;
- ``die_with_parent``: a private server (a temporary instance loaded from a backup) gets
  ``PR_SET_PDEATHSIG`` so that a bdr killed with ``-9`` does not leave it running; never for
  an instance the operator runs, which must outlive bdr.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

REDIS_SERVER = "redis-server"


def exec_argv(argv: Sequence[str]) -> tuple[str, list[str]]:
    """(file to execute, argv to give it): ``argv[0]`` says ``redis-server`` even when the file is named otherwise."""
    binary = argv[0]
    args = list(argv)
    if "redis-check" in os.path.basename(binary):
        args[0] = REDIS_SERVER
    return binary, args


def quote_config(value: str) -> str:
    """``value`` as one double-quoted argument of a redis.conf line."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def stdin_config(settings: Mapping[str, str]) -> str:
    """Config lines for the server's stdin."""
    return "".join(f"{name} {quote_config(value)}\n" for name, value in settings.items())


def identity(uid: int | None, gid: int | None, groups: Sequence[int] = ()
             ) -> tuple[int | None, int | None, list[int] | None]:
    """(user, group, extra_groups) for Popen: the child runs as ``uid``/``gid`` only when bdr is root and that
    is someone else; (None, None, None) otherwise."""
    if uid is None or os.geteuid() != 0 or uid == 0:
        return None, None, None
    return uid, gid, list(groups)


def _dying_with_parent(binary: str, args: list[str]) -> tuple[str, list[str]]:
    """The same command under ``setpriv --pdeathsig KILL`` (util-linux): the kernel kills the server
    when the thread that started it ends, bdr killed with -9 included. No ``preexec_fn``: it is
    not safe in a process with threads."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return binary, args
    server = binary if os.path.basename(binary) == REDIS_SERVER else (shutil.which(REDIS_SERVER) or binary)
    return setpriv, ["setpriv", "--pdeathsig", "KILL", "--", server, *args[1:]]


def popen_server(argv: Sequence[str], *, cwd: str | Path | None, log: IO[bytes] | int,
                 stdin: str | None = None, uid: int | None = None, gid: int | None = None,
                 groups: Sequence[int] = (), die_with_parent: bool = False) -> subprocess.Popen[bytes]:
    """Start ``argv`` (redis-server) in its own session; ``stdin`` (config lines) written and closed."""
    binary, args = exec_argv(argv)
    if stdin is not None and args[-1] != "-":
        args.append("-")
    if die_with_parent:
        binary, args = _dying_with_parent(binary, args)
    user, group, extra_groups = identity(uid, gid, groups)
    proc: subprocess.Popen[bytes] = subprocess.Popen(
        args, executable=binary, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL, start_new_session=True,
        user=user, group=group, extra_groups=extra_groups,
    )
    if stdin is not None and proc.stdin is not None:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(stdin.encode())
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    return proc


def kill_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGKILL the process group ``proc`` leads (the server and its forks), then reap ``proc``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)


def version(binary: str, timeout: float = 10.0) -> tuple[str | None, str]:
    """(version, output) of ``binary --version``; version None when it does not run as redis-server."""
    file, args = exec_argv([binary])
    try:
        done = subprocess.run([*args, "--version"], executable=file, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    out = (done.stdout + done.stderr).strip()
    for word in out.split():
        if word.startswith("v="):
            return word[2:], out
    return None, out or f"exit code {done.returncode}"


def tail(path: Path | str | None, lines: int = 6) -> str:
    """The last ``lines`` lines of a log, joined with `` | `` for a one-line message."""
    if not path:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


__all__ = ["REDIS_SERVER", "exec_argv", "kill_group", "popen_server", "quote_config", "stdin_config", "tail",
           "version"]
