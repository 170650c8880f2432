"""Reading a docker compose file: bdr's one parser for it, and what ``bdr init`` takes from it.

:func:`parse_compose` reads the file as written (services, their image, mounts, command,
environment, restart policy, ports, each with its line; declared volumes and secrets) for
``bdr lint`` (:mod:`bdr.lint.compose`) and for ``bdr init``; a ``command:`` string is split
as compose splits it (shell words), and :func:`redis_argv` says when it is a redis-server
command line, whose options :func:`bdr.formats.redis_conf.parse_redis_args` reads.

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

import fnmatch
import logging
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from bdr.errors import ConfigError
from bdr.formats.redis_conf import parse_redis_args, parse_redis_conf
from bdr.lint.yamlmarks import MarkedDict, MarkedList, YamlError, load_marked

logger = logging.getLogger(__name__)


# --- the compose file as written (lint and init read it through this one parser) ---------------


@dataclass(frozen=True, slots=True)
class DataImage:
    """An image that holds data bdr backs up, and where the data lives in it."""

    pattern: str
    source: str
    data_dir: str


DATA_IMAGES: tuple[DataImage, ...] = (
    DataImage("bitnami/redis*", "redis", "/bitnami/redis/data"),
    DataImage("bitnami/valkey*", "redis", "/bitnami/valkey/data"),
    DataImage("*redis*", "redis", "/data"),
    DataImage("*valkey*", "redis", "/data"),
    DataImage("*qdrant*", "qdrant", "/qdrant/storage"),
)
"""Matched in order against the image name without registry and tag (or the service name)."""

NOT_DATA_IMAGES = ("*exporter*", "*commander*", "*insight*", "*sentinel*", "*-ui", "*webui*", "*proxy*")
"""Tools named after the store that hold no data of their own."""

REDIS_SERVERS = ("redis-server", "valkey-server", "redis-stack-server")


class MountKind(StrEnum):
    VOLUME = "volume"
    BIND = "bind"
    ANONYMOUS = "anonymous volume"
    TMPFS = "tmpfs"


@dataclass(frozen=True, slots=True)
class Mount:
    kind: MountKind
    source: str | None
    target: str
    line: int
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class EnvEntry:
    """One ``environment:`` entry; ``value`` None when it is taken from the shell (``- NAME``)."""

    name: str
    value: str | None
    line: int


@dataclass(frozen=True, slots=True)
class Service:
    """One service of a compose file, as written (``data``: what it stores, from its image or name)."""

    name: str
    line: int
    image: str | None
    data: DataImage | None
    mounts: tuple[Mount, ...]
    command: tuple[str, ...] | None
    command_line: int | None
    environment: tuple[EnvEntry, ...]
    restart: str | None
    restart_line: int | None
    container_name: str | None = None
    network_mode: str | None = None
    ports: tuple[object, ...] = ()
    """``ports:`` entries as written (``"127.0.0.1:6379:6379"`` or a long-syntax mapping)."""

    def env(self) -> dict[str, str]:
        """``environment:`` as a mapping; an entry taken from the shell (``- NAME``) reads ``${NAME}``."""
        return {e.name: "${" + e.name + "}" if e.value is None else e.value for e in self.environment}


@dataclass(frozen=True, slots=True)
class ComposeFile:
    """A parsed compose file; ``problem`` set (and nothing else) when it does not parse."""

    path: Path
    services: tuple[Service, ...] = ()
    volumes: Mapping[str, int] = field(default_factory=dict)
    """Declared named volumes and their lines."""
    tmpfs_volumes: frozenset[str] = frozenset()
    """Named volumes whose driver options make them tmpfs (memory)."""
    secret_files: tuple[tuple[str, str, int], ...] = ()
    """Top-level ``secrets:`` kept in files: (name, file, line)."""
    problem: str | None = None
    problem_line: int | None = None
    name: str | None = None
    """The top-level ``name:`` (compose's project name)."""
    declares_services: bool = False
    """The file has a ``services:`` mapping (an override file may have none)."""
    volume_specs: Mapping[str, Any] = field(default_factory=dict)
    """The declared volumes' settings as written (``name:``, ``external:``, ``driver_opts:``)."""


def _image_repository(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: len(name) - len(last[-1])] + last[-1].split(":", 1)[0]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    if parts[0] == "library":
        parts = parts[1:]
    return "/".join(parts).lower()


def data_image(image: str | None, service_name: str) -> DataImage | None:
    """What a service stores, from its image (or its name when it builds its own image)."""
    candidate = _image_repository(image) if image else service_name.lower()
    if any(fnmatch.fnmatchcase(candidate, p) for p in NOT_DATA_IMAGES):
        return None
    return next((d for d in DATA_IMAGES if fnmatch.fnmatchcase(candidate, d.pattern)), None)


def _mount(entry: object, line: int) -> Mount | None:
    if isinstance(entry, str):
        parts = entry.split(":")
        if len(parts) == 1:
            return Mount(MountKind.ANONYMOUS, None, parts[0], line)
        bind = parts[0].startswith(("/", ".", "~", "$"))
        read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        return Mount(MountKind.BIND if bind else MountKind.VOLUME, parts[0], parts[1], line, read_only)
    if isinstance(entry, Mapping):
        kind = str(entry.get("type", "volume"))
        target = str(entry.get("target", ""))
        source = str(entry["source"]) if entry.get("source") else None
        read_only = bool(entry.get("read_only", False))
        if kind == "tmpfs":
            return Mount(MountKind.TMPFS, None, target, line)
        if kind == "bind":
            return Mount(MountKind.BIND, source, target, line, read_only)
        if kind == "volume":
            return Mount(MountKind.VOLUME if source else MountKind.ANONYMOUS, source, target, line, read_only)
    return None


def _environment(value: object) -> tuple[EnvEntry, ...]:
    out = []
    if isinstance(value, MarkedDict):
        for key, item in value.items():
            out.append(EnvEntry(str(key), None if item is None else str(item), value.line_of(key)))
    elif isinstance(value, MarkedList):
        for index, item in enumerate(value):
            name, sep, text = str(item).partition("=")
            out.append(EnvEntry(name, text if sep else None, value.line_of(index)))
    return tuple(out)


def _command(value: object) -> tuple[str, ...] | None:
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError:
            return tuple(value.split())
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return None


def parse_compose(path: Path) -> ComposeFile:
    """The services, volumes and secrets of a compose file; ``problem`` set when it does not parse."""
    try:
        doc = load_marked(path)
    except YamlError as exc:
        return ComposeFile(path, problem=exc.problem.detail, problem_line=exc.problem.line)
    if not isinstance(doc, MarkedDict):
        return ComposeFile(path, problem="the top level must be a mapping", problem_line=1)
    services_node = doc.get("services", MarkedDict())
    if not isinstance(services_node, MarkedDict):
        return ComposeFile(path, problem="services must be a mapping of service name: settings",
                           problem_line=doc.line_of("services"))
    services = []
    for name, body in services_node.items():
        if not isinstance(body, MarkedDict):
            continue
        image = str(body["image"]) if body.get("image") else None
        mount_list = body.get("volumes") or []
        mounts = [_mount(v, mount_list.line_of(i)) for i, v in enumerate(mount_list)] if isinstance(
            mount_list, MarkedList) else []
        tmpfs = body.get("tmpfs") or []
        tmpfs_paths = [tmpfs] if isinstance(tmpfs, str) else list(tmpfs) if isinstance(tmpfs, list) else []
        mounts += [Mount(MountKind.TMPFS, None, str(t).split(":")[0], body.line_of("tmpfs")) for t in tmpfs_paths]
        restart = body.get("restart")
        restart_line = body.line_of("restart") if "restart" in body else None
        deploy = body.get("deploy")
        if restart is None and isinstance(deploy, MarkedDict) and isinstance(deploy.get("restart_policy"), Mapping):
            restart = {"any": "always"}.get(str(deploy["restart_policy"].get("condition", "any")),
                                            str(deploy["restart_policy"].get("condition", "any")))
            restart_line = deploy.line_of("restart_policy")
        services.append(Service(
            name=str(name), line=services_node.line_of(name), image=image, data=data_image(image, str(name)),
            mounts=tuple(m for m in mounts if m is not None),
            command=_command(body.get("command")),
            command_line=body.line_of("command") if "command" in body else None,
            environment=_environment(body.get("environment")),
            restart=None if restart is None else str(restart).lower(), restart_line=restart_line,
            container_name=str(body["container_name"]) if body.get("container_name") else None,
            network_mode=str(body["network_mode"]) if body.get("network_mode") else None,
            ports=tuple(body.get("ports") or ()) if isinstance(body.get("ports"), list) else (),
        ))
    declared = doc.get("volumes") or MarkedDict()
    volumes: dict[str, int] = {}
    tmpfs_volumes = set()
    if isinstance(declared, MarkedDict):
        for name, settings in declared.items():
            volumes[str(name)] = declared.line_of(name)
            if isinstance(settings, Mapping):
                opts = settings.get("driver_opts")
                if isinstance(opts, Mapping) and str(opts.get("type", "")).lower() == "tmpfs":
                    tmpfs_volumes.add(str(name))
    secrets_node = doc.get("secrets")
    secret_files = []
    if isinstance(secrets_node, MarkedDict):
        for name, settings in secrets_node.items():
            if isinstance(settings, Mapping) and settings.get("file"):
                secret_files.append((str(name), str(settings["file"]), secrets_node.line_of(name)))
    return ComposeFile(path, tuple(services), volumes, frozenset(tmpfs_volumes), tuple(secret_files),
                       name=str(doc["name"]) if doc.get("name") else None,
                       declares_services=isinstance(doc.get("services"), Mapping),
                       volume_specs=dict(declared) if isinstance(declared, Mapping) else {})


def redis_argv(service: Service) -> list[str] | None:
    """The service's command as redis-server arguments (the binary left out); None when it runs something else
    (``sh -c ...``), ``[]`` when it has no command (the image's default)."""
    if not service.command:
        return []
    argv = list(service.command)
    if PurePosixPath(argv[0]).name in REDIS_SERVERS:
        return argv[1:]
    if argv[0].startswith("-") or argv[0].endswith(".conf"):
        return argv
    return None


# --- what bdr init takes from it ----------------------------------------------------------------

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


def _kind(service: Service) -> str | None:
    """``redis``, ``qdrant`` or None: what the service stores (its image, else its name), or a redis-server command."""
    if service.data is not None:
        return service.data.source
    argv = service.command or ()
    return "redis" if argv and PurePosixPath(argv[0]).name in REDIS_SERVERS else None


def _secret_variable(service: str, value: str, what: str, example: str, fallback: str,
                     warnings: list[str]) -> str:
    """The environment variable a secret of the compose file comes from; ``fallback`` (with a warning that the
    secret is written in the file) when it is a literal."""
    variable = _variable(value)
    if variable is None:
        warnings.append(f"service {service}: {what} is written in the compose file; move it to "
                        f"an environment variable ({example})")
        return fallback
    return variable


def _variable(value: str) -> str | None:
    match = _VARIABLE.match(value.strip())
    return match.group("name") if match else None


def _options(service: Service, path: Path) -> tuple[str | None, dict[str, str]]:
    """The config file and the ``--name value`` options of a Redis service's command (last one wins)."""
    argv = redis_argv(service)
    if not argv:
        return None, {}
    conf, directives = parse_redis_args(argv, path, service.command_line or service.line)
    return conf, {d.name: " ".join(d.args) for d in directives}


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


def _published(ports: Sequence[object], target: int) -> tuple[int | None, bool]:
    """The host port ``target`` is published on (and whether it is bound to all interfaces)."""
    for entry in ports:
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


def _conf_has_password(path: Path) -> bool:
    """Whether the mounted redis.conf (or a file it includes) sets a password."""
    last = parse_redis_conf(path).last("requirepass")
    return last is not None and bool(last.args and last.args[0])


def _service(service: Service, kind: str, project: str, compose: ComposeFile, warnings: list[str]
             ) -> ComposeService:
    name = service.name
    base = compose.path.resolve().parent
    command = service.command or ()
    conf, options = _options(service, compose.path) if kind == "redis" else (None, {})
    container = service.container_name or f"{project}-{name}-1"
    default_dir = service.data.data_dir if service.data else (REDIS_DATA if kind == "redis" else QDRANT_DATA)
    wanted_dir = options.get("dir") or default_dir
    data = next((m for m in service.mounts if m.target.rstrip("/") == wanted_dir.rstrip("/")), None)
    volume = data_dir = None
    if data is None:
        warnings.append(f"service {name}: no volume at {wanted_dir}; its data lives in the container and is lost "
                        "with it: mount a named volume there")
    elif data.kind is MountKind.VOLUME and data.source:
        volume = _volume_name(data.source, project, compose.volume_specs)
    elif data.kind is MountKind.BIND and data.source:
        data_dir = str((base / os.path.expanduser(data.source)).resolve())
    env = service.env()
    if kind == "redis":
        port = int(options.get("port") or REDIS_PORT)
    else:
        port = int(env.get("QDRANT__SERVICE__HTTP_PORT", QDRANT_PORT))
    if service.network_mode == "host":
        host_port: int | None = port
    else:
        host_port, everywhere = _published(service.ports, port)
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
        password = options.get("requirepass")
        if password is not None:
            secret_env = _secret_variable(name, password, "the Redis password", "--requirepass ${REDIS_PASSWORD}",
                                          "REDIS_PASSWORD", warnings)
        elif "REDIS_PASSWORD" in env:  # bitnami/redis and friends
            secret_env = _variable(env["REDIS_PASSWORD"]) or "REDIS_PASSWORD"
        if conf is not None:
            mount = next((m for m in service.mounts if m.kind is MountKind.BIND and m.target == conf and m.source),
                         None)
            if mount is not None and mount.source:
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
        key = env.get("QDRANT__SERVICE__API_KEY")
        if key is not None:
            secret_env = _secret_variable(name, key, "the Qdrant API key", "${QDRANT_API_KEY}", "QDRANT_API_KEY",
                                          warnings)
    return ComposeService(service=name, kind=kind, container=container, image=service.image, volume=volume,
                          data_dir=data_dir, container_dir=wanted_dir, url=url, secret_env=secret_env,
                          config_file=config_file, command=tuple(command))


def read_compose(path: str | Path) -> ComposeProject:
    """The Redis and Qdrant services of the compose file at ``path``."""
    path = Path(path)
    compose = parse_compose(path)
    if compose.problem is not None:
        where = f" at line {compose.problem_line}" if compose.problem_line else ""
        what, _, detail = compose.problem.partition(": ")
        raise ConfigError(path=str(path), detail=f"{what}{where}: {detail}" if detail else compose.problem + where)
    if not compose.declares_services:
        raise ConfigError(path=str(path), detail="not a compose file: no services: mapping at the top level")
    project = project_name(path, {"name": compose.name} if compose.name else {})
    warnings: list[str] = []
    found: list[ComposeService] = []
    for service in compose.services:
        stores = _kind(service)
        if stores is not None:
            found.append(_service(service, stores, project, compose, warnings))
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
