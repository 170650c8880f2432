"""Services as Docker containers: Redis and Qdrant with their data in named volumes.

Production runs ``agentic-redis`` and ``agentic-qdrant`` from docker compose, each with a
named volume (``<project>_redis_data`` at ``/data``). With ``runtime: docker`` and
``container:`` in bdr.yaml, bdr drives those containers through the Docker engine's API
(the ``docker`` SDK), never through the ``docker`` command line:

- :class:`RedisContainer` is the :class:`~bdr.runtime.base.Runtime` of a Redis container,
  the container twin of :class:`~bdr.runtime.process.RedisProcess`: ``stop`` shuts Redis
  down *without saving* (``shutdown-on-sigterm nosave``, then the container's stop),
  ``kill`` is ``docker kill`` (SIGKILL, the crash), ``restart`` is ``docker restart``;
  ``launch`` records the container (``docker start`` brings it back with its own command),
  ``settings`` is ``CONFIG GET`` while it runs and its command (and config file, read
  through the engine's archive API, which works on a stopped container) while it does
  not, with paths inside the container; ``preflight`` checks the data mount (room, when
  this host can see it) and, for a stopped container, that nobody took its port.
  ``client()`` is the Redis client; the Docker engine's client is ``engine``.
- :class:`QdrantContainer` does the same for Qdrant (ready when ``/readyz`` answers).
- :func:`spawn_redis_container` / :func:`spawn_qdrant_container` start new, labelled
  containers for tests, drills and recovery: on the *host* network listening on
  127.0.0.1:<free port> (tests, CI), or on a *bridge* network with the port published on
  127.0.0.1 only (what users run).

Where the data is, for a container runtime:

- :meth:`ContainerService.data_path` is the data directory **on the engine's host**: the
  volume's ``Mountpoint`` (or a bind mount's source). It is a live view, the same thing
  the process runtime returns, and readable only when bdr runs as root on the engine's
  host; otherwise it raises, and the caller copies what it needs with
  :meth:`ContainerService.export_data`.
- :meth:`ContainerService.export_data` copies the data directory (or some names in it)
  to a host directory through the engine's archive API: works on a stopped or running
  container, for a local or a remote engine. A copy of a running Redis is consistent only
  for files Redis replaces atomically (the RDB after ``BGSAVE``): export *after* the save.
- :meth:`ContainerService.replace_data` swaps the directory's contents with a host
  directory's while the container is stopped, through helper containers (``rm`` and the
  archive API), keeping the owner of the volume's root (uid 999 for Redis images).

Deprecated, kept until the lead removes it (the new restore places an AOF directory whose
base is the restored RDB, and never needs overrides): a container's command cannot
change between two starts, so ``start(overrides=...)`` runs Redis once
in a short-lived *twin* of the container (same image, command, mounts) with the
overrides, lets it load, sets the overridden settings back to the container's own values
(which rewrites the AOF) and shuts it down; the container itself then starts with its
own command and loads what the twin left.

The classic volume procedures (:func:`volume_backup`, :func:`volume_restore`,
:func:`run_in_volume`, :func:`remove_volume`) live in
:mod:`bdr.runtime.docker_volumes` and are re-exported here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import secrets
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import docker.errors
import redis
from docker.models.containers import Container

from bdr.clients import redis_address, redis_client
from bdr.config import QdrantInstance, RedisInstance, TlsSettings
from bdr.errors import (
    BdrError,
    ConfigError,
    ImageNotFound,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
    VolumeInUse,
    VolumeNotFound,
)
from bdr.runtime import preflight as checks
from bdr.runtime import register_runtime
from bdr.runtime.base import Launch, Needs
from bdr.runtime.docker_engine import (
    DataMount,
    NetworkMode,
    Role,
    container_state,
    data_mount_of,
    docker_client,
    docker_errors,
    get_container,
    helper,
    host_readable,
    labels_for,
    logs_tail,
    mounts_of,
    remove_labelled,
    wait_exited,
)
from bdr.runtime.docker_volumes import (
    VolumeArchive,
    clear_mount,
    create_volume,
    export_mount,
    mount_owner,
    remove_volume,
    run_in_volume,
    tool_images,
    upload_dir,
    volume_backup,
    volume_exists,
    volume_restore,
)
from bdr.runtime.images import REDIS_GID, REDIS_UID, resolve_qdrant_image, resolve_redis_image
from bdr.runtime.redis_base import is_local
from bdr.runtime.settings import LaunchConfig, read_launch_config, running_settings, split_command
from bdr.util.host import free_port
from bdr.util.waiting import wait_for

logger = logging.getLogger(__name__)

REDIS_DATA_DIR = "/data"
QDRANT_DATA_DIR = "/qdrant/storage"
AUTH_CONF = "/etc/bdr/redis-auth.conf"
"""Where a spawned Redis container finds its password: a 0600 file in the container's own
layer (not in the volume, so never in a volume backup; never in argv or the environment)."""
TWIN_PORT = 6379
LIVE_STATES = ("running", "restarting", "paused")


@dataclass
class ContainerService:
    """What every service container has: a name, an engine, a data directory in a mount."""

    container_name: str
    data_dir: str
    volume: str | None = None
    image: str | None = None
    kind: str = "docker"
    engine: docker.DockerClient = field(default_factory=docker_client, repr=False)
    """The Docker engine's client (the service's own client is :meth:`RedisContainer.client`)."""
    service: str = "service"

    # --- the container ---------------------------------------------------------------------------

    def container(self) -> Container:
        return get_container(self.engine, self.container_name, where=f"{self.service} {self.name}")

    @property
    def name(self) -> str:
        return self.container_name

    def state(self) -> str:
        """The container's state: ``running``, ``exited``, ``created``, ``restarting`` ..."""
        return container_state(self.container())

    def running(self) -> bool:
        """The container's process is up (it may still be loading its data: see ``ready``)."""
        return self.state() in LIVE_STATES

    def ready(self) -> bool:
        raise NotImplementedError

    def network_mode(self) -> NetworkMode:
        mode = str(self.container().attrs.get("HostConfig", {}).get("NetworkMode", "bridge"))
        return NetworkMode.HOST if mode == "host" else NetworkMode.BRIDGE

    def _wait_ready(self, container: Container, timeout: float) -> None:
        def up_or_dead() -> bool:
            return self.ready() or container_state(container) in ("exited", "dead")

        wait_for(up_or_dead, timeout, interval=0.05)
        state = container_state(container)
        if state in ("exited", "dead"):
            code = container.attrs.get("State", {}).get("ExitCode")
            raise ServiceError(detail=f"container {container.name} exited with code {code} at start: "
                               f"{logs_tail(container)}")
        if not self.ready():
            raise ServiceTimeout(service=f"{self.service} container {container.name}", what="become ready",
                                 seconds=timeout, detail=logs_tail(container) or "no log output")

    def start_container(self, timeout: float = 60.0) -> None:
        container = self.container()
        if container_state(container) not in LIVE_STATES:
            logger.info("starting container %s", container.name)
            with docker_errors(f"start container {container.name}"):
                container.start()
        elif container.attrs.get("State", {}).get("Paused"):
            with docker_errors(f"unpause container {container.name}"):
                container.unpause()
        self._wait_ready(container, timeout)

    def stop_container(self, timeout: float = 60.0) -> None:
        container = self.container()
        if container_state(container) not in LIVE_STATES:
            return
        logger.info("stopping container %s", container.name)
        with docker_errors(f"stop container {container.name}"):
            container.stop(timeout=int(timeout))
        wait_exited(container, timeout + 10)

    def kill(self) -> None:
        """``docker kill``: SIGKILL to the container's process, the crash the drills inject."""
        container = self.container()
        if container_state(container) not in LIVE_STATES:
            raise ServiceUnavailable(service=self.service, address=f"container {container.name}",
                                     detail="it is not running, nothing to kill")
        with docker_errors(f"kill container {container.name}"):
            container.kill()
        wait_exited(container, 30.0)

    def restart(self, timeout: float = 60.0) -> None:
        """``docker restart``: the container's own stop (SIGTERM; Redis saves as configured), then start."""
        container = self.container()
        with docker_errors(f"restart container {container.name}"):
            container.restart(timeout=int(timeout))
        self._wait_ready(container, timeout)

    def remove(self, volumes: bool = False) -> None:
        """Remove the container (and its anonymous volumes with ``volumes``); named volumes stay."""
        with docker_errors(f"remove container {self.container_name}"):
            try:
                container = self.engine.containers.get(self.container_name)
            except docker.errors.NotFound:
                return
            container.remove(force=True, v=volumes)

    # --- its data --------------------------------------------------------------------------------

    def data_mount(self) -> DataMount:
        return data_mount_of(self.container(), self.data_dir, self.volume)

    def helper_image(self) -> str:
        """The image helpers run: the container's own (present by definition)."""
        return str(self.container().attrs["Image"])

    def tool_images(self) -> list[str]:
        """Images to run ``rm`` in, in order: the container's own, the configured one, a Redis image."""
        return tool_images(self.engine, self.helper_image(), self.image)

    def data_path(self) -> Path:
        """The data directory on the engine's host (live view); see the module docstring."""
        mount = self.data_mount()
        path = host_readable(mount.host_path)
        if path is None:
            raise ServiceError(
                detail=f"the data of container {self.container_name} is in {mount.describe()} at "
                f"{mount.host_path or '(unknown)'}, which this process cannot read (bdr must run as root on the "
                "Docker host for that); copy the files out with export_data instead"
            )
        return path

    def export_data(self, dest: Path, names: Sequence[str] = ()) -> list[str]:
        """Copy the data directory (or ``names`` in it) into ``dest`` on this host; the names copied."""
        return export_mount(self.engine, self.helper_image(), self.data_mount(), Path(dest), names)

    def replace_data(self, source: Path, clear: Iterable[str] = ()) -> None:
        """Make the data directory hold the files under ``source``; container stopped.

        ``clear`` names are removed first, and so is every name ``source`` brings (a
        directory is replaced, not merged). ``source`` itself is left as it was.
        """
        if self.running():
            raise ServiceError(detail=f"container {self.container_name} is running: stop it before its data is "
                               "replaced")
        source = Path(source)
        names = sorted({*clear, *(item.name for item in source.iterdir())})
        mount = self.data_mount()
        logger.info("replacing %s in %s of %s", ", ".join(names), mount.describe(), self.container_name)
        clear_mount(self.engine, self.tool_images(), mount, names)
        upload_dir(self.engine, self.helper_image(), mount, source)

    def launch(self) -> Launch:
        return Launch(runtime="docker", data_dir=self.data_mount().host_path, container=self.container_name)

    def preflight(self, needs: Needs) -> list[str]:
        """The container exists and its data mount (when this host can see it) is writable with room."""
        try:
            mount = self.data_mount()
        except BdrError as exc:
            return [exc.message]
        path = host_readable(mount.host_path)
        if path is None:
            return []
        return checks.data_dir_problems(self.name, path, needs, checks.Identity())

    def describe(self) -> dict[str, str]:
        facts = {"runtime": "docker", "container": self.container_name}
        with contextlib.suppress(ServiceError, docker.errors.DockerException):
            container = self.container()
            facts["container_id"] = str(container.id)[:12]
            facts["image_id"] = str(container.attrs.get("Image", ""))
            facts["image"] = str(container.attrs.get("Config", {}).get("Image", ""))
            facts["network"] = str(self.network_mode())
            mount = self.data_mount()
            facts["volume" if mount.kind == "volume" else "bind"] = mount.source
        return facts


# --- Redis -----------------------------------------------------------------------------------------


@dataclass
class RedisContainer(ContainerService):
    """A Redis server in a container: the docker twin of :class:`~bdr.runtime.process.RedisProcess`."""

    instance: RedisInstance = field(default_factory=lambda: RedisInstance(name="docker"))
    service: str = "redis"
    _config: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.instance.name

    def url(self) -> str:
        return self.instance.url

    def client(self, db: int = 0, timeout: float = 30.0, retries: int = 2) -> redis.Redis:
        """A redis-py client of the Redis in the container (the engine's client is ``engine``)."""
        return redis_client(self.instance, db=db, timeout=timeout, retries=retries)

    def client_for(self, db: int = 0, timeout: float = 30.0, retries: int = 2) -> redis.Redis:
        """Deprecated name of :meth:`client` (kept until every caller moved)."""
        return self.client(db=db, timeout=timeout, retries=retries)

    def command(self) -> list[str]:
        """The container's command (entrypoint + cmd) from ``redis-server`` on, with paths inside the container."""
        config = self.container().attrs.get("Config", {})
        argv = [str(a) for a in [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]]
        for index, arg in enumerate(argv):
            if PurePosixPath(arg).name == "redis-server":
                return argv[index:]
        return argv

    def launch_config(self) -> LaunchConfig:
        """What the container's command configures (inside the container), its config file read through the
        engine (works on a stopped container; includes are not followed)."""
        container = self.container()
        argv = self.command()
        workdir = str(container.attrs.get("Config", {}).get("WorkingDir") or REDIS_DATA_DIR)
        conf, _, _ = split_command(argv)
        with tempfile.TemporaryDirectory(prefix="bdr-container-conf-") as scratch:
            if conf is not None:
                inside = str(PurePosixPath(workdir) / conf)
                local = Path(scratch) / "redis.conf"
                with docker_errors(f"read {inside} of container {self.container_name}"):
                    try:
                        stream, _ = container.get_archive(inside)
                    except docker.errors.NotFound:
                        stream = None
                if stream is not None:
                    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                        member = next((m for m in tar.getmembers() if m.isfile()), None)
                        extracted = tar.extractfile(member) if member else None
                        local.write_bytes(extracted.read() if extracted else b"")
                argv = [argv[0], str(local), *argv[2:]]
            config = read_launch_config(argv, workdir)
        return config

    def settings(self, names: Sequence[str]) -> dict[str, str]:
        """``CONFIG GET`` while it runs; else what the container's command configures (paths inside it)."""
        if self.running():
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                return running_settings(self.client(timeout=10.0, retries=1), names)
        return self.launch_config().settings(names)

    def launch(self) -> Launch:
        """``docker start <container>``: the container keeps its command; the data directory on the engine's host."""
        container = self.container()
        return Launch(runtime="docker", data_dir=self.data_mount().host_path, container=self.container_name,
                      argv=tuple(self.command()), pid=int(container.attrs.get("State", {}).get("Pid") or 0) or None)

    def preflight(self, needs: Needs) -> list[str]:
        """The container exists, its data mount has room (when bdr can see it), nobody else holds its port."""
        problems = ContainerService.preflight(self, needs)
        if problems:
            return problems
        host, port = redis_address(self.instance.url)[:2]
        if not self.running() and is_local(host):
            problems += checks.port_problems(self.name, port, ["0.0.0.0"], None)
        return problems

    @property
    def argv(self) -> list[str]:
        """The container's command (entrypoint + cmd) as seen from this host.

        Engines read the persistence layout of a stopped server from it (``--dir``,
        ``--appendonly`` ...): ``--dir`` is therefore the data mount's directory on this
        host (set when the command has none), when this process can read it.
        """
        config = self.container().attrs.get("Config", {})
        argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
        host = host_readable(self.data_mount().host_path)
        if host is None:
            return argv
        if "--dir" in argv[:-1]:
            argv[argv.index("--dir") + 1] = str(host)
        else:
            argv += ["--dir", str(host)]
        return argv

    def ready(self) -> bool:
        """Answering and done loading its data."""
        return _redis_ready(self.instance)

    def remember_launch(self) -> None:
        """Remember the running server's settings: a start with overrides sets them back."""
        with contextlib.suppress(redis.RedisError):
            config = self.client(timeout=5.0, retries=0).config_get("*")
            self._config = {str(k): str(v) for k, v in config.items()}

    def start(self, timeout: float = 60.0, overrides: Sequence[str] = ()) -> None:
        """``docker start`` and wait until Redis is ready.

        Deprecated: ``overrides`` runs the data through a short-lived *twin* container first
        (see the module docstring); the new restore places an AOF whose base is the restored
        RDB and never needs it. Kept, with the twin machinery, until the lead removes it.
        """
        if overrides and not self.running():
            self._load_with(list(overrides), timeout)
        self.start_container(timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop Redis without saving (``shutdown-on-sigterm nosave``), then stop the container.

        The container's own stop marks it stopped for the engine, so a ``restart:`` policy
        does not bring it back in the middle of a restore.
        """
        if not self.running():
            return
        self.remember_launch()
        try:
            client = self.client(timeout=5.0, retries=0)
            try:
                client.config_set("shutdown-on-sigterm", "nosave")
            except redis.ResponseError:  # Redis < 7: no save points, no save on SIGTERM
                client.config_set("save", "")
        except redis.RedisError as exc:
            logger.warning("cannot tell Redis %s not to save on stop (%s); it may write an RDB on the way down",
                           self.name, exc)
        self.stop_container(timeout)

    # --- a start with overrides: the twin container -------------------------------------------

    def _twin_spec(self, extra_args: Sequence[str]) -> tuple[dict[str, Any], int]:
        """Arguments for ``containers.create`` of a twin: same image, command, user, env and mounts."""
        container = self.container()
        config = container.attrs.get("Config", {})
        entrypoint, cmd = list(config.get("Entrypoint") or []), list(config.get("Cmd") or [])
        if not any(PurePosixPath(arg).name == "redis-server" for arg in [*entrypoint, *cmd][:2]):
            raise ServiceError(detail=f"cannot start container {self.container_name} with extra arguments: its "
                               f"command ({' '.join([*entrypoint, *cmd])}) does not run redis-server directly")
        port = free_port()
        kwargs: dict[str, Any] = {
            "image": str(container.attrs["Image"]), "entrypoint": entrypoint or None,
            "environment": list(config.get("Env") or []), "user": config.get("User") or None,
            "working_dir": config.get("WorkingDir") or None, "labels": labels_for(Role.HELPER),
        }
        if self.network_mode() is NetworkMode.HOST:
            kwargs["network_mode"] = "host"
            net_args = ["--port", str(port), "--bind", "127.0.0.1"]
        else:
            kwargs["ports"] = {f"{TWIN_PORT}/tcp": ("127.0.0.1", port)}
            net_args = ["--port", str(TWIN_PORT), "--bind", "0.0.0.0", "--protected-mode", "no"]
        kwargs["command"] = [*cmd, *extra_args, *net_args]
        read_only = {str(m.get("Destination")) for m in container.attrs.get("Mounts", []) if not m.get("RW", True)}
        kwargs["volumes"] = {
            m.source: {"bind": m.destination, "mode": "ro" if m.destination in read_only else "rw"}
            for m in mounts_of(container)
        }
        return kwargs, port

    def _twin(self, extra_args: Sequence[str], timeout: float, data: bool = True) -> tuple[Container, RedisInstance]:
        kwargs, port = self._twin_spec(extra_args)
        if not data:  # an empty scratch directory owned like the real one, instead of the data
            mount = self.data_mount()
            with helper(self.engine, self.helper_image(), mount, read_only=True) as probe:
                uid, gid = mount_owner(probe)
            kwargs["volumes"].pop(mount.source, None)
            kwargs["tmpfs"] = {mount.destination: f"uid={uid},gid={gid},mode=0755"}
        twin_instance = dataclasses.replace(self.instance, url=f"redis://127.0.0.1:{port}/0", tls=TlsSettings())
        with docker_errors(f"start a twin of container {self.container_name}"):
            twin = self.engine.containers.create(**kwargs)
        try:
            with docker_errors(f"start a twin of container {self.container_name}"):
                twin.start()

            def up_or_dead() -> bool:
                return _redis_ready(twin_instance) or container_state(twin) in ("exited", "dead")

            wait_for(up_or_dead, timeout, interval=0.05)
            if not _redis_ready(twin_instance):
                raise ServiceError(detail=f"Redis did not load the data of {self.container_name} with "
                                   f"{' '.join(extra_args) or 'its own settings'}: {logs_tail(twin)}")
        except BaseException:
            with contextlib.suppress(docker.errors.DockerException):
                twin.remove(force=True)
            raise
        return twin, twin_instance

    def _own_settings(self, names: Sequence[str], timeout: float) -> dict[str, str]:
        """The container's own values of ``names``: remembered from when it ran, else asked from a
        twin started on an empty scratch directory (the real data untouched)."""
        if all(n in self._config for n in names):
            return {n: self._config[n] for n in names}
        twin, twin_instance = self._twin((), timeout, data=False)
        try:
            client = redis_client(twin_instance, timeout=10.0, retries=0)
            values: dict[str, str] = {}
            for n in names:
                values.update({str(k): str(v) for k, v in client.config_get(n).items()})
            return values
        except redis.RedisError as exc:
            raise ServiceError(detail=f"cannot read the settings of container {self.container_name}: {exc}") from exc
        finally:
            with contextlib.suppress(docker.errors.DockerException):
                twin.remove(force=True)

    def _load_with(self, overrides: list[str], timeout: float) -> None:
        """Load the data once with ``overrides`` in a twin, then persist it the container's own way."""
        names = [overrides[i][2:].lower() for i in range(0, len(overrides) - 1, 2) if overrides[i].startswith("--")]
        own = self._own_settings([*names, "appendonly"], timeout)
        started = time.monotonic()
        twin, twin_instance = self._twin(overrides, timeout)
        try:
            client = redis_client(twin_instance, timeout=max(timeout, 30.0), retries=0)
            for name in names:
                if name in own and client.config_get(name).get(name) != own[name]:
                    client.config_set(name, own[name])

            def rewritten() -> bool:
                info = client.info("persistence")
                return not int(info.get("aof_rewrite_in_progress", 0)) and not int(
                    info.get("aof_rewrite_scheduled", 0))

            if not wait_for(rewritten, timeout, 0.05):
                raise ServiceTimeout(service=f"Redis {self.name}", what="rewrite its AOF", seconds=timeout,
                                     detail=logs_tail(twin))
            info = client.info("persistence")
            if own.get("appendonly") == "yes" and info.get("aof_last_bgrewrite_status", "ok") != "ok":
                raise ServiceError(detail=f"Redis failed to write the AOF of {self.name}: {logs_tail(twin)}")
            if own.get("appendonly") != "yes":
                client.save()
            with contextlib.suppress(redis.ConnectionError):
                client.shutdown(nosave=True)
            wait_exited(twin, timeout)
        except redis.RedisError as exc:
            raise ServiceError(detail=f"loading the data of {self.name} with {' '.join(overrides)} failed: "
                               f"{exc}; {logs_tail(twin)}") from exc
        finally:
            with contextlib.suppress(docker.errors.DockerException):
                twin.remove(force=True)
        logger.info("loaded %s with %s in a twin container in %.2fs", self.name, " ".join(overrides),
                    time.monotonic() - started)

    def describe(self) -> dict[str, str]:
        facts = ContainerService.describe(self)
        with contextlib.suppress(redis.RedisError):
            info = self.client(timeout=2.0, retries=0).info("server")
            facts["version"] = str(info.get("redis_version"))
        return facts


def _redis_ready(instance: RedisInstance) -> bool:
    try:
        info = redis_client(instance, timeout=2.0, retries=0).info("persistence")
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
        return False
    return int(info.get("loading", 0)) == 0


def attach(instance: RedisInstance, launch: Launch | None = None, **options: Any) -> RedisContainer:
    """The docker runtime of a configured instance (``runtime: docker`` with ``container:``)."""
    container = (launch.container if launch else None) or instance.container
    if not container:
        raise ConfigError(path="bdr.yaml", detail=f"redis.{instance.name}: runtime docker needs container: (the name "
                          "of the Redis container, e.g. agentic-redis)")
    client = options.get("client") or docker_client()
    data_dir = instance.container_dir or (None if instance.volume else REDIS_DATA_DIR)
    return RedisContainer(container_name=container, data_dir=data_dir or REDIS_DATA_DIR,
                          volume=instance.volume, image=instance.image, engine=client, instance=instance)


# --- Qdrant ----------------------------------------------------------------------------------------


@dataclass
class QdrantContainer(ContainerService):
    """A Qdrant server in a container; ready when ``GET /readyz`` answers 200."""

    instance: QdrantInstance = field(default_factory=lambda: QdrantInstance(name="docker"))
    service: str = "qdrant"

    @property
    def name(self) -> str:
        return self.instance.name

    def url(self) -> str:
        return self.instance.url or "http://127.0.0.1:6333"

    def ready(self) -> bool:
        request = urllib.request.Request(f"{self.url().rstrip('/')}/readyz")
        key = self.instance.api_key()
        if key:
            request.add_header("api-key", key)
        try:
            with urllib.request.urlopen(request, timeout=2.0) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def start(self, timeout: float = 60.0, overrides: Sequence[str] = ()) -> None:
        if overrides:
            raise ServiceError(detail="a Qdrant container cannot be started with extra arguments")
        self.start_container(timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """The container's stop: SIGTERM, Qdrant flushes its WAL and exits."""
        self.stop_container(timeout)

    def describe(self) -> dict[str, str]:
        facts = ContainerService.describe(self)
        with contextlib.suppress(urllib.error.URLError, OSError, ValueError), \
                urllib.request.urlopen(self.url(), timeout=2.0) as response:
            facts["version"] = str(json.loads(response.read()).get("version", ""))
        return facts


def attach_qdrant(instance: QdrantInstance, launch: Launch | None = None, **options: Any) -> QdrantContainer:
    if not instance.container:
        raise ConfigError(path="bdr.yaml", detail=f"qdrant.{instance.name}: runtime docker needs container: (the "
                          "name of the Qdrant container, e.g. agentic-qdrant)")
    client = options.get("client") or docker_client()
    data_dir = instance.container_dir or (None if instance.volume else QDRANT_DATA_DIR)
    return QdrantContainer(container_name=instance.container, data_dir=data_dir or QDRANT_DATA_DIR,
                           volume=instance.volume, image=instance.image, engine=client, instance=instance)


# --- new containers --------------------------------------------------------------------------------


def _secret_file(path: str, content: str, uid: int, gid: int) -> bytes:
    """A tar holding one 0600 file (and its directory), for ``put_archive`` at /."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        parent = PurePosixPath(path).parent
        info = tarfile.TarInfo(str(parent).lstrip("/"))
        info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, 0o755, 0, 0, int(time.time())
        tar.addfile(info)
        data = content.encode()
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o600, uid, gid, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _new_volume(client: docker.DockerClient, volume: str | None, default: str,
                labels: Mapping[str, str] | None) -> str:
    name = volume or default
    if not volume_exists(client, name):
        create_volume(client, name, dict(labels or {}))
    return name


def spawn_redis_container(
    volume: str | None = None,
    *,
    name: str = "bdr",
    container_name: str | None = None,
    image: str | None = None,
    network: NetworkMode | str = NetworkMode.BRIDGE,
    port: int | None = None,
    appendonly: bool = False,
    extra: Sequence[str] = (),
    password: str | None = None,
    labels: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    start: bool = True,
    client: docker.DockerClient | None = None,
) -> RedisContainer:
    """Create (and start, unless ``start`` is false) a labelled Redis container on volume ``volume``.

    The volume is created when missing (a fresh one when None). ``network`` is ``bridge``
    (port 6379 published on 127.0.0.1:``port``) or ``host`` (Redis listens on
    127.0.0.1:``port`` itself). A password goes into a 0600 file inside the container,
    never into its command line or environment.
    """
    client = client or docker_client()
    network = NetworkMode(network)
    image = resolve_redis_image(client, image)
    port = port or free_port()
    token = secrets.token_hex(3)
    container_name = container_name or f"bdr-redis-{name}-{token}"
    all_labels = {"bdr.instance": name, **(labels or {})}
    created = volume is None or not volume_exists(client, volume)
    volume = _new_volume(client, volume, f"bdr-redis-{name}-{token}-data", labels)
    args = ["--dir", REDIS_DATA_DIR, "--appendonly", "yes" if appendonly else "no", "--save", "",
            "--enable-debug-command", "yes"]
    if network is NetworkMode.HOST:
        args = ["--port", str(port), "--bind", "127.0.0.1", *args]
        network_kwargs: dict[str, Any] = {"network_mode": "host"}
    else:
        args = ["--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no", *args]
        network_kwargs = {"ports": {"6379/tcp": ("127.0.0.1", port)}}
    command = ["redis-server", *([AUTH_CONF] if password else []), *args, *extra]
    env_name = None
    if password:
        env_name = f"BDR_SPAWNED_REDIS_{port}_PASSWORD"
        os.environ[env_name] = password
    with docker_errors(f"create Redis container {container_name}"):
        container = client.containers.create(
            image, command=command, name=container_name, labels=labels_for(Role.SERVICE, all_labels),
            volumes={volume: {"bind": REDIS_DATA_DIR, "mode": "rw"}}, **network_kwargs,
        )
        if password:
            container.put_archive("/", _secret_file(AUTH_CONF, f"requirepass {password}\n", REDIS_UID, REDIS_GID))
    instance = RedisInstance(
        name=name, url=f"redis://127.0.0.1:{port}/0", password_env=env_name, runtime="docker",
        container=container_name, volume=volume, image=image, container_dir=REDIS_DATA_DIR,
    )
    runtime = RedisContainer(container_name=container_name, data_dir=REDIS_DATA_DIR, volume=volume, image=image,
                             engine=client, instance=instance)
    if start:
        try:
            runtime.start_container(timeout)
        except BaseException:
            _discard(runtime, volume if created else None)
            raise
    return runtime


def _discard(runtime: ContainerService, volume: str | None) -> None:
    """Remove a container that did not come up (and the volume made for it)."""
    runtime.remove()
    if volume:
        with contextlib.suppress(ServiceError, VolumeNotFound, VolumeInUse):
            remove_volume(volume, client=runtime.engine)


def spawn_qdrant_container(
    volume: str | None = None,
    *,
    name: str = "bdr",
    container_name: str | None = None,
    image: str | None = None,
    network: NetworkMode | str = NetworkMode.BRIDGE,
    port: int | None = None,
    api_key: str | None = None,
    labels: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    start: bool = True,
    client: docker.DockerClient | None = None,
) -> QdrantContainer:
    """Create (and start) a labelled Qdrant container; needs a local Qdrant image (none is built)."""
    client = client or docker_client()
    network = NetworkMode(network)
    found = resolve_qdrant_image(client, image)
    if found is None:
        raise ImageNotFound(ref=image or "qdrant/qdrant", hint="load a Qdrant image (docker load -i qdrant.tar) or "
                            "set image: in bdr.yaml; bdr cannot build one offline")
    port = port or free_port()
    token = secrets.token_hex(3)
    container_name = container_name or f"bdr-qdrant-{name}-{token}"
    created = volume is None or not volume_exists(client, volume)
    volume = _new_volume(client, volume, f"bdr-qdrant-{name}-{token}-data", labels)
    if network is NetworkMode.HOST:
        env = {"QDRANT__SERVICE__HOST": "127.0.0.1", "QDRANT__SERVICE__HTTP_PORT": str(port),
               "QDRANT__SERVICE__GRPC_PORT": str(free_port())}
        network_kwargs: dict[str, Any] = {"network_mode": "host"}
    else:
        env = {}
        network_kwargs = {"ports": {"6333/tcp": ("127.0.0.1", port)}}
    env["QDRANT__TELEMETRY_DISABLED"] = "true"
    with docker_errors(f"create Qdrant container {container_name}"):
        container = client.containers.create(
            found, name=container_name, environment=env, labels=labels_for(Role.SERVICE, {"bdr.instance": name,
                                                                                         **(labels or {})}),
            volumes={volume: {"bind": QDRANT_DATA_DIR, "mode": "rw"}}, **network_kwargs,
        )
        if api_key:
            user = str(client.images.get(found).attrs.get("Config", {}).get("User") or "0").split(":")[0]
            uid = int(user) if user.isdigit() else 0
            container.put_archive("/", _secret_file("/qdrant/config/local.yaml",
                                                    f"service:\n  api_key: {json.dumps(api_key)}\n", uid, uid))
    key_env = None
    if api_key:
        key_env = f"BDR_SPAWNED_QDRANT_{port}_API_KEY"
        os.environ[key_env] = api_key
    instance = QdrantInstance(name=name, url=f"http://127.0.0.1:{port}", path=None, api_key_env=key_env,
                              runtime="docker", container=container_name, volume=volume, image=found,
                              container_dir=QDRANT_DATA_DIR)
    runtime = QdrantContainer(container_name=container_name, data_dir=QDRANT_DATA_DIR, volume=volume, image=found,
                              engine=client, instance=instance)
    if start:
        try:
            runtime.start_container(timeout)
        except BaseException:
            _discard(runtime, volume if created else None)
            raise
    return runtime


register_runtime("redis/docker", attach)
register_runtime("qdrant/docker", attach_qdrant)  # type: ignore[arg-type]

__all__ = [
    "ContainerService",
    "NetworkMode",
    "QdrantContainer",
    "RedisContainer",
    "VolumeArchive",
    "attach",
    "attach_qdrant",
    "remove_labelled",
    "remove_volume",
    "run_in_volume",
    "spawn_qdrant_container",
    "spawn_redis_container",
    "volume_backup",
    "volume_restore",
]
