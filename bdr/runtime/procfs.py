"""What ``/proc`` tells about a process on this host: its binary, arguments, directory, owner, cgroup.

The process runtime reproduces how a Redis it did not start was launched, and finds who
else holds its port, from these facts alone:

- :func:`read_process` gathers one process's facts (:class:`ProcessFacts`): the binary
  (``/proc/PID/exe``, which names a replaced binary ``<path> (deleted)``), the raw
  ``cmdline``, the working directory, the environment (empty for a Redis that set its
  process title: it overwrites its argv and environment area), uid/gid and groups, the
  pid inside its own pid namespace (``NSpid``: what ``INFO process_id`` says in a
  container) and its cgroup lines;
- :func:`ancestors` walks the parent chain (a supervisor is the parent, or further up);
- :func:`listeners` maps a TCP port to the processes listening on it, from
  ``/proc/net/tcp{,6}`` socket inodes to the ``socket:[inode]`` links in ``/proc/*/fd``.

Nothing here raises for a process that vanished or that this user may not inspect: the
fact is ``None`` (or empty) and the caller says what it could not read.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
DELETED = " (deleted)"
LISTEN = "0A"


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """One process as ``/proc`` shows it; ``None`` where it could not be read."""

    pid: int
    ppid: int | None = None
    comm: str = ""
    cmdline: tuple[str, ...] = ()
    """The NUL-separated arguments (a process that rewrote its title shows one string with spaces)."""
    exe: str | None = None
    """The binary, ``/proc/PID/exe`` without a ``(deleted)`` suffix."""
    exe_deleted: bool = False
    """The binary was replaced or removed since the process started (a package upgrade)."""
    cwd: str | None = None
    environ: dict[str, str] = field(default_factory=dict)
    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] = ()
    nspid: int | None = None
    """The pid in the process's own (innermost) pid namespace."""
    cgroups: tuple[str, ...] = ()
    state: str = ""

    @property
    def argv0(self) -> str:
        return self.cmdline[0].split(" ")[0] if self.cmdline else self.comm

    def describe(self) -> str:
        """``pid 812 (redis-server 127.0.0.1:6379)`` for messages."""
        shown = " ".join(self.cmdline).strip() or self.comm or "?"
        return f"pid {self.pid} ({shown[:80]})"


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def read_process(pid: int) -> ProcessFacts | None:
    """The facts of ``pid``, or None when there is no such process."""
    base = PROC / str(pid)
    status_raw = _read(base / "status")
    if status_raw is None:
        return None
    status: dict[str, str] = {}
    for line in status_raw.decode(errors="replace").splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()
    raw_cmd = (_read(base / "cmdline") or b"").rstrip(b"\0")
    cmdline = tuple(part.decode(errors="replace") for part in raw_cmd.split(b"\0")) if raw_cmd else ()
    exe: str | None = None
    deleted = False
    with contextlib.suppress(OSError):
        exe = os.readlink(base / "exe")
        if exe.endswith(DELETED):
            exe, deleted = exe[: -len(DELETED)], True
    cwd: str | None = None
    with contextlib.suppress(OSError):
        cwd = os.readlink(base / "cwd")
    environ: dict[str, str] = {}
    for item in (_read(base / "environ") or b"").split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep and key:
            environ[key] = value
    uids, gids = status.get("Uid", "").split(), status.get("Gid", "").split()
    nspids = status.get("NSpid", "").split()
    cgroups = tuple((_read(base / "cgroup") or b"").decode(errors="replace").splitlines())
    return ProcessFacts(
        pid=pid,
        ppid=int(status["PPid"]) if status.get("PPid", "").isdigit() else None,
        comm=(_read(base / "comm") or b"").decode(errors="replace").strip(),
        cmdline=cmdline,
        exe=exe,
        exe_deleted=deleted,
        cwd=cwd,
        environ=environ,
        uid=int(uids[0]) if uids else None,
        gid=int(gids[0]) if gids else None,
        groups=tuple(int(g) for g in status.get("Groups", "").split() if g.isdigit()),
        nspid=int(nspids[-1]) if nspids and nspids[-1].isdigit() else None,
        cgroups=cgroups,
        state=status.get("State", "").split(" ")[0],
    )


def alive(pid: int | None) -> bool:
    """The process exists and is not a zombie (a zombie holds no port and no file)."""
    if pid is None:
        return False
    facts = read_process(pid)
    return facts is not None and facts.state not in ("Z", "X")


def ancestors(pid: int, limit: int = 32) -> list[ProcessFacts]:
    """The parent, its parent ... up to pid 1 (included), nearest first."""
    chain: list[ProcessFacts] = []
    current = read_process(pid)
    while current is not None and current.ppid and len(chain) < limit:
        parent = read_process(current.ppid)
        if parent is None:
            break
        chain.append(parent)
        if parent.pid == 1:
            break
        current = parent
    return chain


@dataclass(frozen=True, slots=True)
class Listener:
    """A listening TCP socket: its address, port, and the processes holding it open."""

    address: str
    port: int
    inode: int
    pids: tuple[int, ...] = ()

    @property
    def wildcard(self) -> bool:
        return self.address in ("0.0.0.0", "::")

    def overlaps(self, address: str) -> bool:
        """Whether a bind of ``address`` on the same port would collide with this socket."""
        if self.wildcard or address in ("0.0.0.0", "::", "*"):
            return True
        with contextlib.suppress(ValueError):
            return ipaddress.ip_address(self.address) == ipaddress.ip_address(address)
        return self.address == address


def _hex_address(text: str) -> tuple[str, int]:
    host, _, port = text.partition(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        address = str(ipaddress.IPv4Address(raw[::-1]))
    else:  # four little-endian 32-bit words
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        v6 = ipaddress.IPv6Address(words)
        address = str(v6.ipv4_mapped) if v6.ipv4_mapped else str(v6)
    return address, int(port, 16)


def listening_sockets(port: int | None = None) -> list[tuple[str, int, int]]:
    """``(address, port, inode)`` of every listening TCP socket (of ``port``) in this network namespace."""
    found: list[tuple[str, int, int]] = []
    for table in ("tcp", "tcp6"):
        raw = _read(PROC / "net" / table)
        if raw is None:
            continue
        for line in raw.decode().splitlines()[1:]:
            cols = line.split()
            if len(cols) < 10 or cols[3] != LISTEN:
                continue
            address, local_port = _hex_address(cols[1])
            if port is None or local_port == port:
                found.append((address, local_port, int(cols[9])))
    return found


def socket_owners(inodes: set[int]) -> dict[int, set[int]]:
    """inode -> pids that hold the socket open (only processes this user may inspect)."""
    owners: dict[int, set[int]] = {inode: set() for inode in inodes}
    if not inodes:
        return owners
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(entry / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(entry / "fd" / fd)
            except OSError:
                continue
            inode = wanted.get(target)
            if inode is not None:
                owners[inode].add(int(entry.name))
    return owners


def listeners(port: int) -> list[Listener]:
    """Who listens on TCP ``port`` here (any address), with the pids holding each socket."""
    sockets = listening_sockets(port)
    owners = socket_owners({inode for _, _, inode in sockets})
    return [Listener(address, p, inode, tuple(sorted(owners.get(inode, ())))) for address, p, inode in sockets]


def port_free(port: int) -> bool:
    """Nothing listens on TCP ``port`` on any address of this network namespace."""
    return not listening_sockets(port)
