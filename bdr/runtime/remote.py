"""Preflight checks run on another host through a command prefix (``docker exec <c>``, ``ssh host``).

A service manager bdr drives through a prefix (``systemctl: [docker, exec, c, systemctl]``)
runs its Redis on the host behind that prefix: the binary and the config file are there,
not here. These checks run there with the same prefix, using only a POSIX shell and
coreutils on that host:

- :func:`remote_version`: ``<prefix> <binary> --version`` runs as redis-server;
- :func:`remote_dry_start`: the unit's own argv with a scratch socket, port 0 and a
  scratch ``dir`` (see :func:`bdr.runtime.preflight.dry_start`), as the unit's ``User=``
  (``setpriv``), until it logs ``Ready to accept connections``, then killed; the scratch
  directory is removed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from bdr.runtime.base import command_line

DRY_SCRIPT = r"""
d=$(mktemp -d /tmp/bdr-dry-XXXXXX) || exit 97
[ -n "$1" ] && chown "$1" "$d" 2>/dev/null
shift
: >"$d/log"
"$@" --unixsocket "$d/s" --dir "$d" >"$d/log" 2>&1 </dev/null &
p=$!
i=0
while [ $i -lt 1000 ]; do
  if grep -qi "ready to accept connections" "$d/log"; then kill -9 $p; wait $p 2>/dev/null; rm -rf "$d"; exit 0; fi
  if ! kill -0 $p 2>/dev/null; then tail -n 6 "$d/log"; rm -rf "$d"; exit 98; fi
  sleep 0.01; i=$((i+1))
done
kill -9 $p; tail -n 6 "$d/log"; rm -rf "$d"; exit 99
"""
DRY_OPTIONS = ("--port", "0", "--tls-port", "0", "--unixsocketperm", "700", "--pidfile", "", "--logfile", "",
               "--daemonize", "no", "--supervised", "no", "--save", "", "--appendonly", "no", "--cluster-enabled", "no")


def _run(argv: Sequence[str], timeout: float) -> tuple[int, str]:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, str(exc)
    return done.returncode, (done.stdout + done.stderr).strip()


def remote_version(name: str, runner: Sequence[str], binary: str) -> list[str]:
    code, out = _run([*runner, binary, "--version"], 30.0)
    if code != 0 or "v=" not in out:
        return [f"`{command_line([*runner, binary, '--version'])}` does not run as redis-server ({out[:120]}): "
                f"reinstall redis-server where Redis {name} runs"]
    return []


def remote_dry_start(name: str, runner: Sequence[str], argv: Sequence[str], user: str = "", group: str = ""
                     ) -> list[str]:
    """Dry start of ``argv`` where ``runner`` runs commands (as ``user``/``group`` when given)."""
    server = list(argv)
    if user:
        server = ["setpriv", f"--reuid={user}", f"--regid={group or user}", "--init-groups", *server]
    code, out = _run([*runner, "sh", "-c", DRY_SCRIPT, "bdr-dry-start", user, *server, *DRY_OPTIONS], 30.0)
    if code == 0:
        return []
    return [f"Redis {name} would not start again: a dry start of `{command_line(argv)}` "
            f"(through {command_line(runner)}) failed ({code}): {' | '.join(out.splitlines()[-6:]) or 'no output'}; "
            "fix its configuration before stopping it"]


__all__ = ["remote_dry_start", "remote_version"]
