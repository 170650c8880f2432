"""The Docker engine as bdr sees it: a client, labels on what bdr creates, and helper containers.

Everything bdr creates on an engine carries the label ``bdr.managed=1`` and a role
(``service``: a Redis/Qdrant bdr started; ``helper``: a short-lived container that reads
or writes a volume; ``volume``), plus any labels in ``$BDR_DOCKER_LABELS``
(``key=value,key=value``). The test suite sets ``bdr.test=1`` there, so that
:func:`remove_labelled` can clear the leftovers of a killed run.

A *helper container* mounts a volume (or a bind-mounted directory) of a service and
either runs one command (``rm``, ``sync``, ``redis-check-aof`` ...) or is only *created*,
never started: the engine's archive API reads and writes the mounted files of a created
container, so copying data in and out needs no tool inside the image and works the same
on a local or a remote engine. Helpers have no network and are always removed.

Docker SDK exceptions never leave this package: :func:`docker_errors` turns them into
:mod:`bdr.errors` types with the engine's own message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import docker
import docker.errors
import requests
from docker.models.containers import Container

from bdr.errors import ContainerNotFound, DockerUnavailable, ServiceError, ServiceTimeout, VolumeNotFound
from bdr.util.host import pid_alive

logger = logging.getLogger(__name__)

LABEL_MANAGED = "bdr.managed"
LABEL_ROLE = "bdr.role"
LABEL_INSTANCE = "bdr.instance"
LABELS_ENV = "BDR_DOCKER_LABELS"
TEST_LABEL = "bdr.test"
HELPER_MOUNT = "/bdr-data"
"""Where a helper container sees the volume it works on."""


class Role(StrEnum):
    SERVICE = "service"
    HELPER = "helper"
    VOLUME = "volume"


class NetworkMode(StrEnum):
    """How a service container is reached from the host.

    ``bridge``: the container's port is published on 127.0.0.1 only (what users run);
    ``host``: the container shares the host's network and listens on 127.0.0.1:<port>
    itself (tests and CI: no bridge traffic at all).
    """

    BRIDGE = "bridge"
    HOST = "host"


def labels_for(role: Role, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The labels of a new object: bdr's own, those of ``$BDR_DOCKER_LABELS``, then ``extra``."""
    labels = {LABEL_MANAGED: "1", LABEL_ROLE: str(role)}
    for item in os.environ.get(LABELS_ENV, "").split(","):
        key, sep, value = item.strip().partition("=")
        if key and sep:
            labels[key] = value
    labels.update(extra or {})
    return labels


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


_CLIENT: docker.DockerClient | None = None


def docker_client(timeout: float = 120.0) -> docker.DockerClient:
    """A client for the engine of ``$DOCKER_HOST`` (the local socket by default), checked with a ping."""
    global _CLIENT
    if _CLIENT is not None:
        return _CLIENT
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(address=engine_address(), detail=_why_unreachable(exc)) from exc
    except requests.exceptions.RequestException as exc:
        raise DockerUnavailable(address=engine_address(), detail=str(exc)) from exc
    _CLIENT = client
    return client


def engine_available() -> tuple[bool, str]:
    """(True, version) when an engine answers; (False, why not) otherwise. Never raises."""
    try:
        client = docker_client()
        return True, str(client.version().get("Version", "?"))
    except DockerUnavailable as exc:
        return False, exc.message


def _why_unreachable(exc: BaseException) -> str:
    address = engine_address()
    if address.startswith("unix://"):
        socket_path = Path(address[len("unix://"):])
        if not socket_path.exists():
            return f"no engine socket at {socket_path} (is dockerd running?)"
        if not os.access(socket_path, os.R_OK | os.W_OK):
            return f"permission denied on {socket_path} (run as root or join the docker group)"
    return _short(exc)


def _short(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def docker_errors(action: str) -> Iterator[None]:
    """Translate Docker SDK errors raised inside the block into bdr's typed errors."""
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise ServiceError(detail=f"cannot {action}: image not found ({_short(exc)}); run `bdr images list`") from exc
    except docker.errors.NotFound as exc:
        raise ServiceError(detail=f"cannot {action}: {_short(exc)}") from exc
    except docker.errors.APIError as exc:
        raise ServiceError(detail=f"Docker engine refused to {action}: {_short(exc)}") from exc
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(address=engine_address(), detail=f"{action}: {_short(exc)}") from exc
    except requests.exceptions.RequestException as exc:
        raise DockerUnavailable(address=engine_address(), detail=f"{action}: {exc}") from exc


def get_container(client: docker.DockerClient, name: str, where: str = "the instance") -> Container:
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        raise ContainerNotFound(name=name, where=where) from None
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(address=engine_address(), detail=_short(exc)) from exc


def container_state(container: Container) -> str:
    """``running``, ``exited``, ``created``, ``restarting`` ... after a fresh inspect."""
    with docker_errors(f"inspect container {container.name}"):
        container.reload()
    return str(container.attrs.get("State", {}).get("Status", "unknown"))


def logs_tail(container: Container, lines: int = 5) -> str:
    with contextlib.suppress(docker.errors.DockerException):
        text = container.logs(tail=lines).decode(errors="replace").strip()
        return " | ".join(line.strip() for line in text.splitlines())
    return ""


def wait_exited(container: Container, timeout: float) -> int:
    """Wait until the container's process is gone; its exit code."""
    try:
        result = container.wait(timeout=timeout)
    except docker.errors.DockerException as exc:
        if container_state(container) in ("exited", "dead", "created"):
            return int(container.attrs["State"].get("ExitCode", 0))
        raise ServiceTimeout(service=f"container {container.name}", what="stop", seconds=timeout,
                             detail=_short(exc)) from exc
    except requests.exceptions.RequestException as exc:  # read timeout
        raise ServiceTimeout(service=f"container {container.name}", what="stop", seconds=timeout,
                             detail=str(exc)) from exc
    return int(result.get("StatusCode", 0))


# --- mounts ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataMount:
    """A service's data directory as the engine mounts it: a named volume or a host directory."""

    kind: str
    """``volume`` or ``bind``."""
    source: str
    """The volume's name, or the host directory of a bind mount."""
    destination: str
    """The path inside the service container (``/data``, ``/qdrant/storage``)."""
    host_path: str = ""
    """Where the files are on the engine's host (the volume's Mountpoint, or the bind source)."""

    def binding(self, at: str = HELPER_MOUNT, read_only: bool = False) -> dict[str, dict[str, str]]:
        """The ``volumes=`` argument that mounts the same data at ``at`` in a helper container.

        ``nocopy``: the engine must not "populate" an empty volume from the helper image's
        directory at ``at`` (that would also give the volume's root the owner of that
        directory, root, and the service could no longer write to it).
        """
        mode = "ro" if read_only else "rw"
        if self.kind == "volume":
            mode += ",nocopy"
        return {self.source: {"bind": at, "mode": mode}}

    def describe(self) -> str:
        return f"volume {self.source}" if self.kind == "volume" else f"directory {self.source}"


def volume_mount(client: docker.DockerClient, volume: str, destination: str = "/data") -> DataMount:
    """The mount of named volume ``volume`` (which must exist)."""
    try:
        attrs = client.volumes.get(volume).attrs
    except docker.errors.NotFound:
        raise VolumeNotFound(name=volume) from None
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(address=engine_address(), detail=_short(exc)) from exc
    return DataMount("volume", volume, destination, str(attrs.get("Mountpoint") or ""))


def mounts_of(container: Container) -> list[DataMount]:
    found: list[DataMount] = []
    for mount in container.attrs.get("Mounts", []):
        kind = str(mount.get("Type", ""))
        if kind == "volume":
            found.append(DataMount("volume", str(mount["Name"]), str(mount["Destination"]),
                                   str(mount.get("Source") or "")))
        elif kind == "bind":
            found.append(DataMount("bind", str(mount["Source"]), str(mount["Destination"]), str(mount["Source"])))
    return found


def data_mount_of(container: Container, destination: str | None, volume: str | None) -> DataMount:
    """The mount holding the service's data: the one of ``volume``, else the one at ``destination``."""
    mounts = mounts_of(container)
    if volume:
        for mount in mounts:
            if mount.kind == "volume" and mount.source == volume:
                return mount
        raise ServiceError(detail=f"container {container.name} does not mount volume {volume!r} (it mounts: "
                           f"{', '.join(m.source for m in mounts) or 'nothing'}); fix volume: in bdr.yaml")
    wanted = destination or "/data"
    for mount in mounts:
        if mount.destination.rstrip("/") == wanted.rstrip("/"):
            return mount
    raise ServiceError(detail=f"container {container.name} has no volume at {wanted}: its data lives in the "
                       "container's own layer, which bdr cannot back up safely; mount a volume there")


def containers_using(client: docker.DockerClient, volume: str) -> list[Container]:
    with docker_errors(f"list the containers of volume {volume}"):
        return list(client.containers.list(all=True, filters={"volume": volume}))


# --- helper containers ----------------------------------------------------------------------------


@contextlib.contextmanager
def helper(client: docker.DockerClient, image: str, mount: DataMount, command: Sequence[str] = ("true",),
           *, read_only: bool = False, environment: Mapping[str, str] | None = None) -> Iterator[Container]:
    """A created (not started) helper container with ``mount`` at :data:`HELPER_MOUNT`; removed after."""
    with docker_errors(f"create a helper container from {image}"):
        container = client.containers.create(
            image, command=list(command), entrypoint=[], user="0:0", network_mode="none",
            volumes=mount.binding(read_only=read_only), labels=labels_for(Role.HELPER),
            working_dir=HELPER_MOUNT, environment=dict(environment or {}),
        )
    try:
        yield container
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True, v=True)  # v: the image's own anonymous volumes, never named ones


def run_helper(client: docker.DockerClient, image: str, mount: DataMount, command: Sequence[str], *,
               timeout: float = 300.0, read_only: bool = False) -> tuple[int, str]:
    """Run ``command`` in a helper container on ``mount``; (exit code, combined output)."""
    started = time.monotonic()
    with helper(client, image, mount, command, read_only=read_only) as container:
        try:
            container.start()
        except docker.errors.APIError as exc:
            if "executable file not found" in _short(exc) or "no such file or directory" in _short(exc):
                return 127, _short(exc)
            with docker_errors(f"run {command[0]} in a helper container"):
                raise
        code = wait_exited(container, timeout)
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
    logger.debug("helper %s on %s: exit %d in %.2fs", command[0], mount.source, code, time.monotonic() - started)
    return code, output


def require_ok(result: tuple[int, str], what: str, image: str) -> str:
    code, output = result
    if code == 0:
        return output
    if code in (126, 127) or "executable file not found" in output:
        raise ServiceError(detail=f"cannot {what}: image {image} has no such tool ({output.strip()}); use an image "
                           "with a shell and core tools (redis:7-alpine, or build one with `bdr images build redis`)")
    raise ServiceError(detail=f"cannot {what}: exit {code}: {output.strip()[-300:]}")


def remove_labelled(client: docker.DockerClient, selector: str = f"{TEST_LABEL}=1") -> dict[str, int]:
    """Remove every container and volume carrying label ``selector``; counts of what went."""
    removed = {"containers": 0, "volumes": 0}
    with docker_errors(f"remove objects labelled {selector}"):
        for container in client.containers.list(all=True, filters={"label": selector}):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
                removed["containers"] += 1
        for volume in client.volumes.list(filters={"label": selector}):
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)
                removed["volumes"] += 1
    if any(removed.values()):
        logger.info("removed %d container(s) and %d volume(s) labelled %s", removed["containers"],
                    removed["volumes"], selector)
    return removed


def host_readable(path: str) -> Path | None:
    """``path`` when this process can list it (root on the engine's host), else None."""
    if path and os.path.isdir(path) and os.access(path, os.R_OK | os.X_OK):
        return Path(path)
    return None


def remove_orphans(client: docker.DockerClient, selector: str, pid_label: str) -> dict[str, int]:
    """Remove containers and volumes matching ``selector`` whose creating process (``pid_label``) is gone.

    What a killed test or drill run left behind; a run still going on keeps its own objects.
    """
    removed = {"containers": 0, "volumes": 0}
    with contextlib.suppress(docker.errors.DockerException):
        for container in client.containers.list(all=True, filters={"label": selector}):
            if not pid_alive(container.labels.get(pid_label)):
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True, v=True)
                    removed["containers"] += 1
        for volume in client.volumes.list(filters={"label": selector}):
            if not pid_alive((volume.attrs.get("Labels") or {}).get(pid_label)):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    volume.remove(force=True)
                    removed["volumes"] += 1
    return removed
