"""Reading a docker compose file: which services are Redis and Qdrant, and how bdr reaches them.

``bdr init --from-compose docker-compose.yml`` starts the policy file from what compose
already knows, the way production runs: the container names (``container_name:``, else
compose v2's ``<project>-<service>-1``), the named volumes (``<project>_<key>``, or the
volume's own ``name:``; external volumes keep their name), the published ports (bdr talks
to 127.0.0.1 through them), the password's environment variable
(``--requirepass ${REDIS_PASSWORD}``) and the ``redis.conf`` mounted into the container.

The project name is compose's: the top-level ``name:``, else ``$COMPOSE_PROJECT_NAME``,
else the compose file's directory name, lower-cased, with what compose does not allow
removed. Nothing here talks to a Docker engine: the file is the only input, so the result
can be reviewed before anything is stopped or copied.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from bdr.errors import ConfigError

logger = logging.getLogger(__name__)

REDIS_PORT = 6379
QDRANT_PORT = 6333
REDIS_DATA = "/data"
QDRANT_DATA = "/qdrant/storage"
_VARIABLE = re.compile(r"^\$\{?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:[:?-][^}]*)?\}?$")
_PROJECT_CHARS = re.compile(r"[^a-z0-9_-]")


@dataclass(frozen=True, slots=True)
class ComposeService:
    """A Redis or Qdrant service of the compose file, as bdr will address it."""

    service: str
    kind: str
    """``redis`` or ``qdrant``."""
    container: str
    image: str | None = None
    volume: str | None = None
    """The full name of the named volume holding the data (None for a bind mount or no mount)."""
    data_dir: str | None = None
    """The host directory of a bind-mounted data directory."""
    container_dir: str = REDIS_DATA
    url: str = ""
    secret_env: str | None = None
    """The environment variable holding the password (Redis) or API key (Qdrant)."""
    config_file: str | None = None
    """The host path of the redis.conf mounted into the container."""
    command: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ComposeProject:
    """What bdr found in one compose file."""

    path: Path
    name: str
    services: tuple[ComposeService, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)


def project_name(path: Path, data: Mapping[str, Any]) -> str:
    """Compose's project name for the file at ``path``."""
    raw = str(data.get("name") or os.environ.get("COMPOSE_PROJECT_NAME") or path.resolve().parent.name)
    name = _PROJECT_CHARS.sub("", raw.lower())
    return name.lstrip("_-") or "default"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(path=str(path), detail=f"cannot read the compose file: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(path=str(path), detail=f"invalid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("services"), Mapping):
        raise ConfigError(path=str(path), detail="not a compose file: no services: mapping at the top level")
    return dict(data)


def _argv(command: Any) -> tuple[str, ...]:
    if command is None:
        return ()
    if isinstance(command, str):
        return tuple(command.split())
    return tuple(str(part) for part in command)


def _kind(image: str | None, command: Sequence[str]) -> str | None:
    """``redis``, ``qdrant`` or None, from the image's name (any registry or tag) or the command."""
    last = (image or "").split("@")[0].rsplit("/", 1)[-1]
    base = last.split(":")[0]
    if "qdrant" in base:
        return "qdrant"
    if "redis" in base or base == "valkey" or (command and PurePosixPath(command[0]).name == "redis-server"):
        return "redis"
    return None


def _variable(value: str) -> str | None:
    match = _VARIABLE.match(value.strip())
    return match.group("name") if match else None


def _option(command: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(command[:-1]):
        if arg == f"--{name}":
            return command[i + 1]
    return None


@dataclass(frozen=True, slots=True)
class _Mount:
    kind: str
    source: str
    target: str
    read_only: bool


def _mounts(spec: Mapping[str, Any]) -> list[_Mount]:
    mounts: list[_Mount] = []
    for entry in spec.get("volumes") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            if len(parts) == 1:  # an anonymous volume: "/data"
                mounts.append(_Mount("anonymous", "", parts[0], False))
                continue
            source, target = parts[0], parts[1]
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
            kind = "bind" if source.startswith((".", "/", "~", "$")) else "volume"
            mounts.append(_Mount(kind, source, target, read_only))
        elif isinstance(entry, Mapping):
            kind = str(entry.get("type", "volume"))
            mounts.append(_Mount(kind, str(entry.get("source") or ""), str(entry.get("target", "")),
                                 bool(entry.get("read_only", False))))
    return mounts


def _volume_name(key: str, project: str, volumes: Mapping[str, Any]) -> str:
    spec = volumes.get(key) or {}
    if isinstance(spec, Mapping):
        if spec.get("name"):
            return str(spec["name"])
        external = spec.get("external")
        if external:
            if isinstance(external, Mapping) and external.get("name"):
                return str(external["name"])
            return key
    return f"{project}_{key}"


def _published(spec: Mapping[str, Any], target: int) -> tuple[int | None, bool]:
    """The host port ``target`` is published on (and whether it is bound to all interfaces)."""
    for entry in spec.get("ports") or []:
        if isinstance(entry, Mapping):
            if int(entry.get("target", 0)) == target and entry.get("published"):
                host_ip = str(entry.get("host_ip") or "")
                return int(str(entry["published"]).split("-")[0]), host_ip in ("", "0.0.0.0", "::")
            continue
        text = str(entry).split("/")[0]
        parts = text.rsplit(":", 2)
        if len(parts) == 1:
            continue  # only the container port: a random host port
        container_port = parts[-1]
        host_port = parts[-2]
        host_ip = parts[0] if len(parts) == 3 else ""
        if container_port.isdigit() and int(container_port) == target and host_port.split("-")[0].isdigit():
            return int(host_port.split("-")[0]), host_ip in ("", "0.0.0.0", "::")
    return None, False


def _environment(spec: Mapping[str, Any]) -> dict[str, str]:
    env = spec.get("environment") or {}
    if isinstance(env, Mapping):
        return {str(k): str(v) for k, v in env.items() if v is not None}
    out: dict[str, str] = {}
    for item in env:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def _conf_has_password(path: Path) -> bool:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return False
    return any(line.split(None, 1)[0].lower() == "requirepass" for line in lines if line.strip()
               and not line.lstrip().startswith("#"))


def _service(name: str, spec: Mapping[str, Any], kind: str, project: str, base: Path,
             volumes: Mapping[str, Any], warnings: list[str]) -> ComposeService:
    command = _argv(spec.get("command"))
    image = str(spec["image"]) if spec.get("image") else None
    container = str(spec.get("container_name") or f"{project}-{name}-1")
    default_dir = REDIS_DATA if kind == "redis" else QDRANT_DATA
    wanted_dir = (_option(command, "dir") if kind == "redis" else None) or default_dir
    mounts = _mounts(spec)
    data = next((m for m in mounts if m.target.rstrip("/") == wanted_dir.rstrip("/")), None)
    volume = data_dir = None
    if data is None:
        warnings.append(f"service {name}: no volume at {wanted_dir}; its data lives in the container and is lost "
                        "with it: mount a named volume there")
    elif data.kind == "volume" and data.source:
        volume = _volume_name(data.source, project, volumes)
    elif data.kind == "bind":
        data_dir = str((base / os.path.expanduser(data.source)).resolve())
    network_mode = str(spec.get("network_mode") or "")
    if kind == "redis":
        port = int(_option(command, "port") or REDIS_PORT)
    else:
        port = int(_environment(spec).get("QDRANT__SERVICE__HTTP_PORT", QDRANT_PORT))
    if network_mode == "host":
        host_port: int | None = port
    else:
        host_port, everywhere = _published(spec, port)
        if host_port is None:
            warnings.append(f"service {name}: port {port} is not published; bdr reaches services through "
                            f"127.0.0.1: add ports: [\"127.0.0.1:{port}:{port}\"] (url below assumes {port})")
            host_port = port
        elif everywhere:
            warnings.append(f"service {name}: port {port} is published on all interfaces; publish it on "
                            f"127.0.0.1 only (\"127.0.0.1:{host_port}:{port}\") unless other hosts need it")
    secret_env = config_file = None
    if kind == "redis":
        url = f"redis://127.0.0.1:{host_port}/0"
        password = _option(command, "requirepass")
        env = _environment(spec)
        if password is not None:
            secret_env = _variable(password)
            if secret_env is None:
                warnings.append(f"service {name}: the Redis password is written in the compose file; move it to "
                                "an environment variable (--requirepass ${REDIS_PASSWORD})")
                secret_env = "REDIS_PASSWORD"
        elif "REDIS_PASSWORD" in env:  # bitnami/redis and friends
            secret_env = _variable(env["REDIS_PASSWORD"]) or "REDIS_PASSWORD"
        conf = next((a for a in command if a.endswith(".conf")), None)
        if conf is not None:
            mount = next((m for m in mounts if m.kind == "bind" and m.target == conf), None)
            if mount is not None:
                config_file = str((base / os.path.expanduser(mount.source)).resolve())
                if secret_env is None and _conf_has_password(Path(config_file)):
                    secret_env = "REDIS_PASSWORD"
                    warnings.append(f"service {name}: {mount.source} sets requirepass; bdr reads the password "
                                    "from $REDIS_PASSWORD (or set password_file)")
            else:
                warnings.append(f"service {name}: {conf} is not mounted from this host; bdr cannot read its "
                                "persistence settings while Redis is stopped")
    else:
        url = f"http://127.0.0.1:{host_port}"
        key = _environment(spec).get("QDRANT__SERVICE__API_KEY")
        if key is not None:
            secret_env = _variable(key)
            if secret_env is None:
                warnings.append(f"service {name}: the Qdrant API key is written in the compose file; move it to "
                                "an environment variable (${QDRANT_API_KEY})")
                secret_env = "QDRANT_API_KEY"
    return ComposeService(service=name, kind=kind, container=container, image=image, volume=volume,
                          data_dir=data_dir, container_dir=wanted_dir, url=url, secret_env=secret_env,
                          config_file=config_file, command=command)


def read_compose(path: str | Path) -> ComposeProject:
    """The Redis and Qdrant services of the compose file at ``path``."""
    path = Path(path)
    data = _load(path)
    project = project_name(path, data)
    volumes = data.get("volumes") or {}
    base = path.resolve().parent
    warnings: list[str] = []
    found: list[ComposeService] = []
    for name, spec in (data.get("services") or {}).items():
        if not isinstance(spec, Mapping):
            continue
        kind = _kind(str(spec.get("image") or "") or None, _argv(spec.get("command")))
        if kind is not None:
            found.append(_service(str(name), spec, kind, project, base, volumes, warnings))
    if not found:
        warnings.append(f"{path}: no Redis or Qdrant service found (looked at the images and commands)")
    return ComposeProject(path=path, name=project, services=tuple(found), warnings=tuple(warnings))


def _instance_names(services: Sequence[ComposeService]) -> list[str]:
    """``production`` for the first service of a kind, the compose service name for the others."""
    names: list[str] = []
    for i, service in enumerate(services):
        names.append("production" if i == 0 else service.service)
    return names


def instances_from_compose(path: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """The ``redis:`` and ``qdrant:`` sections of a bdr.yaml for the services of a compose file.

    Each instance says ``runtime: docker`` with its container, volume (or ``data_dir`` for
    a bind mount), url through the published port, and the environment variable of its
    secret. Sections with no service are left out. Warnings are logged; call
    :func:`read_compose` to show them to the user.
    """
    project = read_compose(path)
    for warning in project.warnings:
        logger.warning("%s", warning)
    sections: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in ("redis", "qdrant"):
        services = [s for s in project.services if s.kind == kind]
        for name, service in zip(_instance_names(services), services, strict=True):
            entry: dict[str, Any] = {"url": service.url, "runtime": "docker", "container": service.container}
            if service.volume:
                entry["volume"] = service.volume
            if service.data_dir:
                entry["data_dir" if kind == "redis" else "storage_dir"] = service.data_dir
            if service.container_dir != (REDIS_DATA if kind == "redis" else QDRANT_DATA):
                entry["container_dir"] = service.container_dir
            if service.image:
                entry["image"] = service.image
            if kind == "redis":
                entry["password_env"] = service.secret_env
                if service.config_file:
                    entry["config_file"] = service.config_file
            else:
                entry["path"] = None
                entry["api_key_env"] = service.secret_env
            sections.setdefault(kind, {})[name] = entry
    return sections
