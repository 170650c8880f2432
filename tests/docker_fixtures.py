"""Docker for tests: the engine, a Redis image built offline, and nothing left behind.

A pytest plugin (``pytest_plugins = ["tests.docker_fixtures"]`` in the top-level conftest,
or ``-p tests.docker_fixtures``):

- ``docker_engine`` (session): a client for the local engine, or a *skip* that says why
  there is none and how to start one. At the start of the session it removes what a
  killed earlier run left behind (containers and volumes labelled ``bdr.test=1`` whose
  pytest process, ``bdr.test.pid``, is gone: a run going on at the same time keeps its
  own), and at the end whatever this session still has.
- ``docker_scope`` (per test): everything bdr creates during the test, helper containers
  included, carries ``bdr.test=1`` and a label of its own (through ``$BDR_DOCKER_LABELS``);
  the finalizer removes all of it, whether the test passed, failed or errored.
- ``redis_image`` (session): ``redis:7-alpine`` when it is there, else ``bdr/redis:<version>``
  built from the host's binaries (built once, kept between sessions: it is not test data).
- ``qdrant_image`` (session): a local ``qdrant/qdrant`` image, or a skip saying none is loaded.

Containers in tests use the host network (listening on 127.0.0.1) or a port published on
127.0.0.1 only; no test sends traffic to a bridge address.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import docker.errors
import pytest

from bdr.runtime.docker_engine import docker_client, engine_available, remove_labelled, remove_orphans
from bdr.runtime.images import UPSTREAM_REDIS_IMAGES, build_redis_image, find_local, resolve_qdrant_image

logger = logging.getLogger(__name__)

TEST_SELECTOR = "bdr.test=1"
RUN_LABEL = "bdr.test.id"
PID_LABEL = "bdr.test.pid"
"""The pid of the pytest process that made the object: alive means the object is not a leftover."""


@dataclass(frozen=True, slots=True)
class DockerScope:
    """The engine for one test, and the label that marks what the test created."""

    client: docker.DockerClient
    label: str

    @property
    def selector(self) -> str:
        return f"{RUN_LABEL}={self.label}"

    def leftovers(self) -> tuple[list[str], list[str]]:
        """Names of the containers and volumes with this test's label that still exist."""
        client = self.client
        containers = [str(c.name) for c in client.containers.list(all=True, filters={"label": self.selector})]
        volumes = [str(v.name) for v in client.volumes.list(filters={"label": self.selector})]
        return containers, volumes


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[docker.DockerClient]:
    """The local Docker engine's client; skips with the reason when there is none."""
    ok, detail = engine_available()
    if not ok:
        pytest.skip(f"no Docker engine: {detail}")
    client = docker_client()
    removed = remove_leftovers(client)
    if any(removed.values()):
        logger.warning("removed leftovers of an earlier, killed test run: %s", removed)
    yield client
    remove_labelled(client, f"{PID_LABEL}={os.getpid()}")


def remove_leftovers(client: docker.DockerClient) -> dict[str, int]:
    """Remove test objects (``bdr.test=1``) whose test process is gone; a concurrent run keeps its own."""
    return remove_orphans(client, TEST_SELECTOR, PID_LABEL)


@pytest.fixture
def docker_scope(docker_engine: docker.DockerClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[DockerScope]:
    """Label everything this test creates; remove it all afterwards, pass or fail."""
    label = f"{int(time.time())}-{secrets.token_hex(4)}"
    monkeypatch.setenv("BDR_DOCKER_LABELS", f"{TEST_SELECTOR},{PID_LABEL}={os.getpid()},{RUN_LABEL}={label}")
    scope = DockerScope(client=docker_engine, label=label)
    yield scope
    remove_labelled(docker_engine, scope.selector)


@pytest.fixture(scope="session")
def redis_image(docker_engine: docker.DockerClient) -> str:
    """A Redis image to run: upstream when present, else built offline from the host's binaries."""
    upstream = find_local(docker_engine, UPSTREAM_REDIS_IMAGES)
    if upstream:
        return upstream
    if shutil.which("redis-server") is None:
        pytest.skip("no Redis image on the engine and no redis-server on this host to build bdr/redis from")
    return build_redis_image(docker_engine).tag


@pytest.fixture(scope="session")
def qdrant_image(docker_engine: docker.DockerClient) -> str:
    """A local Qdrant image; skips when none is loaded (bdr cannot build one offline)."""
    found = resolve_qdrant_image(docker_engine, os.environ.get("BDR_QDRANT_IMAGE"))
    if found is None:
        pytest.skip("no Qdrant image on this Docker engine (no registry here, and bdr cannot build one): load one "
                    "with `docker load -i qdrant.tar` or set BDR_QDRANT_IMAGE")
    return found
