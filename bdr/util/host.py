"""Facts about this host that several layers need: a free loopback port, whether a pid lives."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int | str | None) -> bool:
    """Whether a process with this id exists on this host (a pid from a label may be a string)."""
    if pid is None or (isinstance(pid, str) and not pid.isdigit()):
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def process_start_time(pid: int | None) -> int | None:
    """When a process started, in clock ticks since boot (``/proc/PID/stat`` field 22), or None.

    A pid and its start time name one process for good: a pid reused by a later process has
    another start time.
    """
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_bytes()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after the last ')'
    fields = stat[stat.rfind(b")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None
