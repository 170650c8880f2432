"""How the drill stack's Redis instances live: one :class:`Services` per runtime, and the service handle.

:class:`RedisService` is one instance as the scenarios drive it (start, stop, kill, its data
directory, a client), whichever runtime runs it; :class:`ProcessServices` runs
``redis-server`` from the host's PATH, :class:`drills.containers.ContainerServices` runs it
in containers. :data:`drills.stack.RUNTIMES` picks one by ``--dr-runtime`` name.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis

from bdr.clients import redis_client
from bdr.config import RedisInstance
from bdr.errors import ContainerNotFound
from bdr.runtime.base import Runtime
from bdr.runtime.process import spawn_redis

logger = logging.getLogger(__name__)


def service_name(name: str) -> str:
    """``redis`` for the production instance, ``redis-<name>`` for the others (``redis-test``)."""
    return "redis" if name == "production" else f"redis-{name}"


@dataclass
class RedisService:
    """One Redis instance of the stack as the scenarios drive it, whichever runtime runs it.

    ``runtime`` is its :class:`~bdr.runtime.base.Runtime` (a local process or a container)
    and ``instance`` its entry in the configuration bdr gets; :meth:`client` hands out a
    redis-py client (as every Redis runtime's ``client`` does; a container's engine is ``engine``).
    """

    runtime: Runtime
    instance: RedisInstance

    @property
    def name(self) -> str:
        return self.instance.name

    def client(self, db: int = 0, timeout: float = 30.0, retries: int = 2) -> redis.Redis:
        return redis_client(self.instance, db=db, timeout=timeout, retries=retries)

    def running(self) -> bool:
        """Its process (or container) is up; False when the container itself is gone."""
        try:
            return self.runtime.running()
        except ContainerNotFound:
            return False

    def start(self, timeout: float = 60.0, overrides: Sequence[str] = ()) -> None:
        if overrides:  # deprecated: only the process and docker runtimes still take them
            self.runtime.start(timeout=timeout, overrides=overrides)  # type: ignore[call-arg]
        else:
            self.runtime.start(timeout=timeout)

    def stop(self, timeout: float = 60.0) -> None:
        self.runtime.stop(timeout=timeout)

    def kill(self) -> None:
        """The crash: SIGKILL to redis-server, or ``docker kill``."""
        self.runtime.kill()

    def data_path(self) -> Path:
        """Its data directory on this host (for a container: the volume's mountpoint, read as root)."""
        return self.runtime.data_path()

    def describe(self) -> dict[str, str]:
        try:
            return self.runtime.describe()
        except ContainerNotFound:
            return {"runtime": self.instance.runtime, "container": str(self.instance.container), "state": "removed"}


class Services(Protocol):
    """How one runtime brings up the stack's Redis instances, destroys their data, and cleans up."""

    runtime: str
    qdrant_note: str
    """Why Qdrant runs the way it does on this runtime (for the evidence)."""

    def spawn_redis(self, name: str, args: Sequence[str]) -> RedisService:
        """A new, running Redis instance ``name`` with AOF on and the server arguments ``args``."""
        ...

    def lose_redis(self, service: RedisService) -> str:
        """Every file of the (killed) instance gone, as a lost volume; what was done."""
        ...

    def recreate_redis(self, service: RedisService) -> str:
        """What the operator does before ``bdr restore`` on a rebuilt host; what was done."""
        ...

    def facts(self) -> dict[str, Any]:
        """Runtime-wide facts for the evidence (image, engine version ...)."""
        ...

    def close(self, services: Sequence[RedisService]) -> None:
        """Stop what was spawned and remove what the runtime created, whatever state it is in."""
        ...


class ServicesKind(Protocol):
    def open(self, root: Path) -> Services:
        """The runtime, ready to spawn (pytest.skip when it cannot run here)."""
        ...

    def environment(self) -> dict[str, Any]:
        """Facts for the run's environment section (images, engine version)."""
        ...


@dataclass
class ProcessServices:
    """``redis-server`` processes from the host's PATH, data in directories under the drill's root."""

    root: Path
    runtime: str = "process"
    qdrant_note: str = "embedded (qdrant-client local mode)"

    @classmethod
    def open(cls, root: Path) -> ProcessServices:
        return cls(root)

    @classmethod
    def environment(cls) -> dict[str, Any]:
        return {}

    def spawn_redis(self, name: str, args: Sequence[str]) -> RedisService:
        process = spawn_redis(self.root / service_name(name) / "data", name=name, appendonly=True, extra=args)
        return RedisService(process, process.instance)

    def lose_redis(self, service: RedisService) -> str:
        path = service.data_path()
        wipe(path)
        return f"data directory {path} emptied"

    def recreate_redis(self, service: RedisService) -> str:
        return "nothing to recreate: redis-server runs from the host's binaries and its (empty) data directory is there"

    def facts(self) -> dict[str, Any]:
        return {}

    def close(self, services: Sequence[RedisService]) -> None:
        for server in services:
            try:
                server.stop()
            except Exception:  # a drill may leave a server broken on purpose
                logger.debug("could not stop %s cleanly; killing it", server.name)
                with contextlib.suppress(Exception):
                    server.kill()


def wipe(path: Path) -> None:
    """Delete a directory's contents (the 'all volumes deleted' disaster), keeping the directory.

    The directory itself stays, with its owner and mode: a volume's mountpoint belongs to the
    service's user (uid 999 for Redis), and a root-owned replacement would lock Redis out.
    """
    path.mkdir(parents=True, exist_ok=True)
    for item in path.iterdir():
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item)
        else:
            item.unlink()
