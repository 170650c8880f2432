"""What every Redis runtime does the same way: the client, up and ready, its pid, waiting.

:class:`RedisBase` holds the instance's entry of bdr.yaml and answers from the server
itself: ``answering`` (PING, ``LOADING`` counts as up), ``ready`` (answering and
``loading:0``), the server's pid (``INFO process_id``) and its running settings. The
runtimes (process, systemd, command) add how it is stopped and started.

Waiting is one place too: :meth:`RedisBase.wait_ready` returns when the server is ready
(or raises with what the runtime knows: a log tail, a unit's status), and
:meth:`RedisBase.wait_gone` when it stopped answering, its process is gone and, for a
server on this host, nothing listens on its port any more (a new server can bind it).

:func:`nosave_on_signals` makes a server that a supervisor stops exit without saving
(``shutdown-on-sigterm nosave``, no save points): the files on disk are what a restore
replaces; if the stop fails the settings are put back.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from bdr.clients import redis_address, redis_client, redis_errors
from bdr.config import RedisInstance
from bdr.errors import ServiceTimeout
from bdr.runtime import procfs
from bdr.runtime.settings import all_running_settings, running_settings

logger = logging.getLogger(__name__)

PROBE_INTERVAL = 0.02


def is_local(host: str) -> bool:
    """Whether ``host`` is an address of this machine (loopback, or one of its own names)."""
    if host in ("localhost", socket.gethostname()):
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


@dataclass
class RedisBase:
    """A Redis instance of bdr.yaml, reached through its url."""

    instance: RedisInstance
    service: str = "redis"

    @property
    def name(self) -> str:
        return self.instance.name

    def url(self) -> str:
        return self.instance.url

    def client(self, db: int = 0, timeout: float = 30.0, retries: int = 2) -> redis.Redis:
        return redis_client(self.instance, db=db, timeout=timeout, retries=retries)

    def address(self) -> tuple[str, int]:
        host, port, _ = redis_address(self.instance.url)
        return host, port

    @property
    def local(self) -> bool:
        """The url points at this host (its processes and ports can be inspected)."""
        return is_local(self.address()[0])

    def answering(self) -> bool:
        """The server answers PING (a server still loading its data answers ``LOADING``)."""
        try:
            return bool(self.client(timeout=2.0, retries=0).ping())
        except redis.AuthenticationError:
            return True
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        except redis.ResponseError as exc:
            return "LOADING" in str(exc) or "NOAUTH" in str(exc)

    def ready(self) -> bool:
        """Answering and done loading its data."""
        try:
            info = self.client(timeout=2.0, retries=0).info("persistence")
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return False
        return int(info.get("loading", 0)) == 0

    def server_pid(self) -> int | None:
        """``INFO process_id``: the pid in the server's own pid namespace; None when it does not answer."""
        with contextlib.suppress(redis.RedisError):
            return int(self.client(timeout=2.0, retries=0).info("server")["process_id"])
        return None

    def host_pid(self) -> int | None:
        """The server's pid on this host: the process listening on its port whose pid (in its own
        namespace) is ``INFO process_id``; None when it is not a process of this host."""
        pid = self.server_pid()
        if pid is None or not self.local:
            return None
        port = self.address()[1]
        holders = {p for listener in procfs.listeners(port) for p in listener.pids}
        if pid in holders:
            return pid
        for candidate in sorted(holders):
            facts = procfs.read_process(candidate)
            if facts is not None and facts.nspid == pid:
                return candidate
        return pid if procfs.read_process(pid) is not None and not holders else None

    def settings(self, names: Sequence[str]) -> dict[str, str]:
        """The effective settings: ``CONFIG GET`` while it answers, else what its launch configures."""
        if self.answering():
            return self.running_settings(names)
        return self.down_settings(names)

    def down_settings(self, names: Sequence[str]) -> dict[str, str]:
        """The settings of the server while it is down (from its config file and launch arguments)."""
        raise NotImplementedError

    def data_path(self) -> Path:
        if self.instance.data_dir:
            return Path(self.instance.data_dir)
        return Path(self.settings(["dir"])["dir"])

    def running_settings(self, names: Sequence[str]) -> dict[str, str]:
        with redis_errors(self.instance, "show its configuration"):
            return running_settings(self.client(timeout=10.0, retries=1), names)

    def all_settings(self) -> dict[str, str]:
        """``CONFIG GET *`` of the running server, normalised."""
        with redis_errors(self.instance, "show its configuration"):
            return all_running_settings(self.client(timeout=10.0, retries=1))

    def wait_ready(self, timeout: float, dead: Callable[[], str | None] | None = None,
                   context: Callable[[], str] | None = None) -> None:
        """Until ready; ``dead()`` returns why the server cannot come up any more (it exited), which is raised."""
        from bdr.errors import StartFailed

        deadline = time.monotonic() + timeout
        while True:
            if self.ready():
                return
            why = dead() if dead else None
            if why:
                raise StartFailed(name=self.name, how=self.how_started(), detail=why)
            if time.monotonic() >= deadline:
                raise ServiceTimeout(service=f"Redis {self.name}", what="become ready", seconds=timeout,
                                     detail=(context() if context else "") or "no log output")
            time.sleep(PROBE_INTERVAL)

    def how_started(self) -> str:
        return self.instance.runtime

    def gone(self, pid: int | None) -> bool:
        """Not answering, no process ``pid`` (host pid) and, on this host, nobody listening on the port."""
        if self.answering():
            return False
        if pid is not None and procfs.alive(pid):
            return False
        return not self.local or procfs.port_free(self.address()[1])

    def wait_gone(self, pid: int | None, timeout: float, how: str) -> None:
        deadline = time.monotonic() + timeout
        while not self.gone(pid):
            if time.monotonic() >= deadline:
                from bdr.errors import StopFailed

                holders = ", ".join(
                    str(p) for listener in procfs.listeners(self.address()[1]) for p in listener.pids
                ) if self.local else ""
                raise StopFailed(name=self.name, how=how, detail=f"still up after {timeout:.0f}s"
                                 + (f" (port {self.address()[1]} held by pid {holders})" if holders else ""))
            time.sleep(PROBE_INTERVAL)


@contextlib.contextmanager
def nosave_on_signals(runtime: RedisBase) -> Iterator[None]:
    """While a supervisor stops it: the server exits without writing an RDB.

    ``shutdown-on-sigterm``/``shutdown-on-sigint nosave`` (Redis 7: a SIGTERM saves when
    save points are set) and no save points (a stop command that sends ``SHUTDOWN``
    saves when there are). Put back when the block fails (the server still runs); a
    server that accepts no CONFIG SET (renamed, ACL) is stopped as it is, with a warning.
    """
    changed: dict[str, str] = {}
    try:
        client = runtime.client(timeout=5.0, retries=0)
        for name, quiet in (("shutdown-on-sigterm", "nosave"), ("shutdown-on-sigint", "nosave"), ("save", "")):
            with contextlib.suppress(redis.ResponseError):
                before = str(client.config_get(name).get(name, ""))
                if before != quiet and (before or name == "save"):
                    client.config_set(name, quiet)
                    changed[name] = before
    except redis.RedisError as exc:
        logger.warning("cannot tell Redis %s not to save when it is stopped (%s); it may write an RDB on the way "
                       "down", runtime.name, exc)
    try:
        yield
    except BaseException:
        with contextlib.suppress(redis.RedisError):
            client = runtime.client(timeout=5.0, retries=0)
            for name, value in changed.items():
                client.config_set(name, value)
        raise


__all__ = ["RedisBase", "is_local", "nosave_on_signals"]
