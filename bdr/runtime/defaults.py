"""The defaults of one redis-server binary, asked from the binary itself.

A running server's configuration (``CONFIG GET *``) says what it runs with, not what was
written where: to rebuild its launch, bdr keeps only the settings that differ from what
its config file and the binary's defaults give. :func:`binary_defaults` starts the exact
binary with no config file, on a scratch unix socket (no TCP port) in a scratch directory,
reads ``CONFIG GET *`` and kills it; the few settings that start changes are put back to
Redis's documented defaults (:data:`bdr.runtime.settings.DEFAULTS`). Cached per binary file
(path, size and mtime), so a bdr process asks once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
from functools import lru_cache
from pathlib import Path

from bdr.runtime.server import kill_group, popen_server
from bdr.runtime.settings import DEFAULTS, normalize

PROBE_TIMEOUT = 10.0
FORCED = ("port", "unixsocket", "unixsocketperm", "dir", "save", "appendonly", "logfile", "pidfile", "daemonize",
          "supervised")


def _command(path: Path, *args: str) -> list[bytes]:
    """One RESP command over the unix socket; the reply's bulk strings."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5.0)
        sock.connect(str(path))
        sock.sendall(b"".join([f"*{len(args)}\r\n".encode(),
                               *(f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args)]))
        buffer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
            parsed = _bulk_array(buffer)
            if parsed is not None:
                return parsed
    return []


def _bulk_array(data: bytes) -> list[bytes] | None:
    """The items of a complete RESP2 array of bulk strings (or a RESP3 map), None while incomplete."""
    if not data or data[:1] not in (b"*", b"%"):
        return []
    end = data.find(b"\r\n")
    if end < 0:
        return None
    count = int(data[1:end]) * (2 if data[:1] == b"%" else 1)
    pos, items = end + 2, []
    for _ in range(count):
        end = data.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(data[pos + 1:end])
        start = end + 2
        if len(data) < start + size + 2:
            return None
        items.append(data[start:start + size])
        pos = start + size + 2
    return items


@lru_cache(maxsize=8)
def _defaults(binary: str, _stamp: tuple[int, int]) -> dict[str, str]:
    scratch = Path(tempfile.mkdtemp(prefix="bdr-defaults-"))
    sock = scratch / "s"
    proc = None
    try:
        with open(os.devnull, "wb") as out:
            proc = popen_server([binary, "--port", "0", "--unixsocket", str(sock), "--dir", str(scratch), "--save", "",
                                 "--logfile", ""], cwd=scratch, log=out, die_with_parent=True)
        deadline = time.monotonic() + PROBE_TIMEOUT
        reply: list[bytes] = []
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                reply = _command(sock, "CONFIG", "GET", "*")
                if reply:
                    break
            time.sleep(0.003)
    finally:
        if proc is not None:
            kill_group(proc)
        shutil.rmtree(scratch, ignore_errors=True)
    found = {reply[i].decode(errors="replace").lower(): reply[i + 1].decode(errors="replace")
             for i in range(0, len(reply) - 1, 2)}
    values = {name: normalize(name, value) for name, value in found.items()}
    for name in FORCED:
        if name in DEFAULTS:
            values[name] = DEFAULTS[name]
    values.pop("dir", None)
    return values


def binary_defaults(binary: str) -> dict[str, str]:
    """``CONFIG GET *`` of ``binary`` started with no configuration (empty when it does not start)."""
    try:
        info = os.stat(binary)
    except OSError:
        return {}
    return dict(_defaults(os.path.realpath(binary), (info.st_size, int(info.st_mtime))))


__all__ = ["binary_defaults"]
