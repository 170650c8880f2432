"""The drill stack on a Docker engine: Redis production and test as containers, removed after.

With ``--dr-runtime docker`` the stack's Redis instances run the way production runs them:
a container from a Redis image (``redis:7-alpine`` when the engine has it, else
``bdr/redis:<version>`` built offline from the host's binaries, see :mod:`bdr.runtime.images`),
its data in a named volume (``<project>_redis_data``, ``<project>_redis-test_data``), the
production persistence settings on its command line. The containers share the host's
network and listen on 127.0.0.1 only: no drill traffic leaves the loopback.

bdr reaches them through ``runtime: docker`` entries (``container``, ``volume``, ``image``)
in its configuration, exactly what an operator's bdr.yaml holds, so that every backup,
restore, repair of a drill goes through :mod:`bdr.runtime.docker`.

Faults are those of a container host: ``docker kill`` (the crash); files damaged in the
volume, through its mountpoint on the engine's host (the drills run as root there); and the
loss of the volume itself (``docker compose down -v``), after which the operator recreates
the service on an empty volume (``docker compose up -d``) and restores.

Everything a stack creates, the helper and twin containers bdr starts during a restore
included, carries ``bdr.drill=1``, ``bdr.drill.project=<project>`` and
``bdr.drill.pid=<pid>`` (through ``$BDR_DOCKER_LABELS``). :meth:`ContainerServices.close`
removes all of it whatever the outcome, and the next stack removes what a killed run left
(objects whose pid is gone).

Qdrant stays embedded (qdrant-client local mode): bdr cannot build a Qdrant image offline,
and the drills do not run a Qdrant server container even when the engine has an image; the
evidence says which case it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from bdr.clients import redis_address
from bdr.errors import BdrError, ImageBuildFailed, ImageNotFound
from bdr.runtime.docker import RedisContainer, remove_volume, spawn_redis_container
from bdr.runtime.docker_engine import (
    LABELS_ENV,
    NetworkMode,
    docker_client,
    engine_available,
    remove_labelled,
    remove_orphans,
)
from bdr.runtime.images import resolve_qdrant_image, resolve_redis_image
from drills.services import RedisService, service_name

logger = logging.getLogger(__name__)

DRILL_LABEL = "bdr.drill"
PROJECT_LABEL = "bdr.drill.project"
PID_LABEL = "bdr.drill.pid"
"""The pid of the process that made the object: alive means it is not a leftover."""


def engine_or_skip() -> tuple[docker.DockerClient, str]:
    """The local engine's client and version, or a pytest skip that says why there is none and how to
    get one."""
    ok, detail = engine_available()
    if not ok:
        pytest.skip(f"--dr-runtime docker needs a Docker engine: {detail}")
    return docker_client(), detail


def redis_image_or_skip(client: docker.DockerClient) -> str:
    """redis:7-alpine when the engine has it, else bdr/redis built offline from the host's binaries
    (now, once); a skip when there is neither an image nor a redis-server to build one from."""
    try:
        return resolve_redis_image(client)
    except (ImageNotFound, ImageBuildFailed) as exc:
        if shutil.which("redis-server") is None:
            pytest.skip(f"--dr-runtime docker needs a Redis image: {exc.message}")
        raise


def remove_leftovers(client: docker.DockerClient) -> dict[str, int]:
    """Remove drill containers and volumes whose drill process is gone (a killed run's)."""
    removed = remove_orphans(client, f"{DRILL_LABEL}=1", PID_LABEL)
    if any(removed.values()):
        logger.warning("removed leftovers of an earlier, killed drill run: %s", removed)
    return removed


def _image_id(client: docker.DockerClient, ref: str) -> str:
    with contextlib.suppress(docker.errors.DockerException):
        return str(client.images.get(ref).id)
    return ""


def _qdrant_note(client: docker.DockerClient) -> str:
    image = resolve_qdrant_image(client)
    if image is None:
        return "embedded (qdrant-client local mode): no Qdrant image on the Docker engine, and bdr cannot build one"
    return f"embedded (qdrant-client local mode): the drills do not run Qdrant containers yet (image {image} present)"


@dataclass
class ContainerServices:
    """Redis containers for one stack, on the host network, each with its named volume."""

    client: docker.DockerClient
    project: str
    image: str
    engine_version: str
    qdrant_note: str
    runtime: str = "docker"
    _saved_labels: str | None = field(default=None, repr=False)
    _args: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, root: Path) -> ContainerServices:
        """Check the engine (skip without one), clear a killed run's leftovers, pick the Redis image."""
        client, version = engine_or_skip()
        remove_leftovers(client)
        image = redis_image_or_skip(client)
        project = f"bdr-drill-{secrets.token_hex(4)}"
        services = cls(client=client, project=project, image=image, engine_version=version,
                       qdrant_note=_qdrant_note(client))
        services._label_everything()
        logger.info("drill stack %s on Docker %s with %s", project, version, services.image)
        return services

    @classmethod
    def environment(cls) -> dict[str, Any]:
        ok, detail = engine_available()
        if not ok:
            return {"docker_engine": f"unavailable: {detail}"}
        client = docker_client()
        facts: dict[str, Any] = {"docker_engine": detail, "network": str(NetworkMode.HOST),
                                 "qdrant": _qdrant_note(client)}
        with contextlib.suppress(BdrError):
            image = resolve_redis_image(client, build=False)
            facts.update(redis_image=image, redis_image_id=_image_id(client, image))
        return facts

    # --- labels --------------------------------------------------------------------------

    @property
    def labels(self) -> dict[str, str]:
        return {DRILL_LABEL: "1", PROJECT_LABEL: self.project, PID_LABEL: str(os.getpid())}

    def _label_everything(self) -> None:
        """Every object bdr creates from now on (helpers, twins) carries this stack's labels."""
        self._saved_labels = os.environ.get(LABELS_ENV)
        ours = ",".join(f"{key}={value}" for key, value in self.labels.items())
        os.environ[LABELS_ENV] = f"{self._saved_labels},{ours}" if self._saved_labels else ours

    def _restore_labels(self) -> None:
        if self._saved_labels is None:
            os.environ.pop(LABELS_ENV, None)
        else:
            os.environ[LABELS_ENV] = self._saved_labels

    # --- Redis ---------------------------------------------------------------------------

    def volume_of(self, name: str) -> str:
        """``<project>_redis_data``: the volume name docker compose gives service ``redis``."""
        return f"{self.project}_{service_name(name)}_data"

    def container_of(self, name: str) -> str:
        return f"{self.project}-{service_name(name)}"

    def _spawn(self, name: str, args: Sequence[str], port: int | None = None) -> RedisContainer:
        return spawn_redis_container(
            self.volume_of(name), name=name, container_name=self.container_of(name), image=self.image,
            network=NetworkMode.HOST, port=port, appendonly=True, extra=args, labels=self.labels,
            client=self.client,
        )

    def spawn_redis(self, name: str, args: Sequence[str]) -> RedisService:
        self._args[name] = tuple(args)
        container = self._spawn(name, args)
        return RedisService(container, container.instance)

    def lose_redis(self, service: RedisService) -> str:
        """``docker compose down -v`` for the service: its container and its volume removed."""
        volume = self.volume_of(service.name)
        removed = remove_volume(volume, client=self.client, with_containers=True)
        return f"volume {volume} deleted (with container {', '.join(removed) or 'none'})"

    def recreate_redis(self, service: RedisService) -> str:
        """``docker compose up -d``: the same container on a new, empty volume, started."""
        _, port, _ = redis_address(service.instance.url)
        container = self._spawn(service.name, self._args[service.name], port=port)
        service.runtime = container
        return f"container {container.container_name} recreated on a new, empty volume {container.volume}"

    # --- evidence and cleanup ------------------------------------------------------------

    def facts(self) -> dict[str, Any]:
        return {"image": self.image, "image_id": _image_id(self.client, self.image),
                "docker_engine": self.engine_version, "network": str(NetworkMode.HOST), "project": self.project}

    def close(self, services: Sequence[RedisService]) -> None:
        """Remove the containers and volumes of this stack (and any helper it left), whatever their state."""
        try:
            for name in self._args:
                with contextlib.suppress(docker.errors.DockerException):
                    self.client.containers.get(self.container_of(name)).remove(force=True, v=True)
                with contextlib.suppress(docker.errors.DockerException):
                    self.client.volumes.get(self.volume_of(name)).remove(force=True)
            with contextlib.suppress(BdrError):  # helpers or twins a failed restore could not remove
                remove_labelled(self.client, f"{PROJECT_LABEL}={self.project}")
        finally:
            self._restore_labels()


__all__ = ["ContainerServices", "engine_or_skip", "remove_leftovers"]
