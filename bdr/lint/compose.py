"""docker-compose files: where the data of Redis and Qdrant lives, and what their commands change.

A container's own filesystem (its *writable layer*) is thrown away when the container is
recreated (``docker compose up`` after an image or config change, ``down`` then ``up``), so a
data store must keep its data directory on a **named volume** declared under the top-level
``volumes:``. A bind mount (``./data:/data``) survives too, but ties the data to one host
path (relative ones to the directory compose runs from: run it from another checkout and the
service starts empty); an anonymous volume is replaced by an empty one on ``down`` + ``up``;
``tmpfs`` is memory. The data directories: ``/data`` for Redis (the official image's working
directory, ``dir`` of its redis.conf), ``/qdrant/storage`` for Qdrant
(``QDRANT__STORAGE__STORAGE_PATH``).

A Redis service's ``command:`` is a redis-server command line: its ``--appendonly no`` or
``--save ""`` override the mounted redis.conf silently, so lint reads the config file the
command names (through the bind mount that provides it) and applies the command on top.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bdr.formats.compose import (
    ComposeFile,
    Mount,
    MountKind,
    Service,
    parse_compose,
    redis_argv,
)
from bdr.formats.redis_conf import Directive, RedisConf, parse_redis_args, parse_redis_conf
from bdr.lint.context import LintContext, check, data_types_of
from bdr.lint.files import ConfigKind
from bdr.lint.findings import Finding, Severity, display_path, human_duration, rule
from bdr.lint.persistence import PERSISTENCE_DIRECTIVES

RESTART_POLICIES_OK = frozenset({"always", "unless-stopped", "on-failure"})


def compose_files(ctx: LintContext) -> dict[Path, ComposeFile]:
    """The compose files of this run, parsed once."""
    return ctx.memo("compose", lambda: {p: parse_compose(p) for p in ctx.of_kind(ConfigKind.COMPOSE)})


# --- redis-server command lines ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RedisCommand:
    """A Redis service's ``command:`` read as a redis-server command line."""

    conf: str | None
    options: tuple[Directive, ...]

    @property
    def persistence_options(self) -> list[Directive]:
        return [d for d in self.options if d.name in PERSISTENCE_DIRECTIVES]


def redis_command(service: Service, compose: Path) -> RedisCommand | None:
    """The service's command as redis-server arguments; None when it runs something else (``sh -c``)."""
    argv = redis_argv(service)
    if argv is None:
        return None
    if not argv:
        return RedisCommand(None, ())
    conf, options = parse_redis_args(argv, compose, service.command_line or service.line)
    return RedisCommand(conf, tuple(options))


def host_path(service: Service, container_path: str, compose: Path) -> Path | None:
    """The file of the checkout a bind mount puts at ``container_path`` in the container."""
    best: Mount | None = None
    for mount in service.mounts:
        if mount.kind != MountKind.BIND or not mount.source or mount.source.startswith("$"):
            continue
        target = mount.target.rstrip("/")
        covers = container_path == target or container_path.startswith(target + "/")
        if covers and (best is None or len(target) > len(best.target.rstrip("/"))):
            best = mount
    if best is None or best.source is None:
        return None
    rest = container_path[len(best.target.rstrip("/")):].lstrip("/")
    source = Path(best.source).expanduser()
    base = source if source.is_absolute() else compose.parent / source
    found = base / rest if rest else base
    return found if found.is_file() else None


@dataclass(frozen=True, slots=True)
class RedisSetup:
    """A Redis as it runs: its config directives (file + command line) and where to report."""

    label: str
    conf: RedisConf
    path: Path
    line: int | None


def redis_setups(ctx: LintContext) -> list[RedisSetup]:
    """Redis services of the compose files whose persistence is not already checked through a linted
    redis.conf: no config file (Redis defaults + command), a command that overrides persistence, or a
    config file that is not among the linted files."""
    return ctx.memo("redis_setups", lambda: _redis_setups(ctx))


def _redis_setups(ctx: LintContext) -> list[RedisSetup]:
    out = []
    for compose in compose_files(ctx).values():
        shown = display_path(compose.path, ctx.cwd)
        for service in compose.services:
            if service.data is None or service.data.source != "redis":
                continue
            command = redis_command(service, compose.path)
            if command is None:
                ctx.note(f"{shown}: service {service.name} runs a shell command; its persistence is not checked")
                continue
            base: tuple[Directive, ...] = ()
            linted = False
            if command.conf:
                host = host_path(service, command.conf, compose.path)
                if host is None:
                    ctx.note(f"{shown}: service {service.name} starts Redis with {command.conf}, which no bind "
                             "mount of the checkout provides; its persistence is not checked")
                    continue
                linted = host.resolve() in {p.resolve() for p in ctx.files}
                base = parse_redis_conf(host).directives
            if linted and not command.persistence_options:
                continue
            conf = RedisConf(compose.path, (*base, *command.options))
            out.append(RedisSetup(f"service {service.name} in {shown}", conf, compose.path,
                                  service.command_line or service.line))
    return out


def effective_dir(service: Service, compose: Path) -> str | None:
    """The data directory of a data service inside its container."""
    if service.data is None:
        return None
    default = service.data.data_dir
    if service.data.source == "qdrant":
        for entry in service.environment:
            if entry.name == "QDRANT__STORAGE__STORAGE_PATH" and entry.value and "$" not in entry.value:
                return str(PurePosixPath("/qdrant") / entry.value)
        return default
    command = redis_command(service, compose)
    directives: list[Directive] = []
    if command is not None:
        if command.conf:
            host = host_path(service, command.conf, compose)
            if host is not None:
                directives += parse_redis_conf(host).all("dir")
        directives += [d for d in command.options if d.name == "dir"]
    if directives and directives[-1].args:
        return str(PurePosixPath(default) / directives[-1].args[0])
    return default


def data_mount(service: Service, data_dir: str) -> Mount | None:
    """The mount that holds ``data_dir`` (the most specific one), if any."""
    found: Mount | None = None
    for mount in service.mounts:
        target = mount.target.rstrip("/") or "/"
        covers = data_dir == target or data_dir.startswith(target.rstrip("/") + "/")
        if covers and (found is None or len(target) > len(found.target.rstrip("/"))):
            found = mount
    return found


# --- rules -------------------------------------------------------------------------------------

UNPARSABLE = rule(
    "BDR-C000", "compose-unreadable", Severity.ERROR, "The compose file does not parse.",
    "docker compose refuses a file that is not valid YAML: the stack does not start, so every recovery "
    "(restart, restore) is blocked until it is fixed.",
)
NO_VOLUME = rule(
    "BDR-C001", "data-on-writable-layer", Severity.ERROR,
    "A data store keeps its data directory in the container's writable layer.",
    "Without a volume, the data lives in the container and is deleted when the container is recreated "
    "(docker compose up after a change, down + up). Mount the data directory on a named volume declared "
    "under the top-level volumes:.",
)
BIND_MOUNT = rule(
    "BDR-C002", "data-on-bind-mount", Severity.WARNING, "A data store keeps its data on a bind mount.",
    "A bind mount ties the data to one host path; a relative one to the directory compose runs from, so "
    "starting the stack from another checkout starts the service empty. Use a named volume.",
)
ANONYMOUS = rule(
    "BDR-C003", "data-on-anonymous-volume", Severity.WARNING, "A data store keeps its data on an anonymous volume.",
    "docker compose down + up, or up --renew-anon-volumes, gives the service a new, empty anonymous volume; "
    "the old one is orphaned. Use a named volume.",
)
UNDECLARED = rule(
    "BDR-C004", "undeclared-volume", Severity.ERROR, "A service mounts a named volume that is not declared.",
    "docker compose refuses to start a service whose named volume is not declared under the top-level "
    "volumes:.",
)
TMPFS = rule(
    "BDR-C005", "data-on-tmpfs", Severity.ERROR, "A data store keeps its data directory in memory (tmpfs).",
    "tmpfs is memory: every restart of the container loses all of the data.",
)
COMMAND_OVERRIDE = rule(
    "BDR-C006", "command-overrides-persistence", Severity.WARNING,
    "The Redis command line overrides persistence settings of its redis.conf.",
    "Options on the redis-server command line win over the config file, so a change of redis.conf has no "
    "effect and a reader of redis.conf is misled. Keep persistence settings in one place.",
)
NO_RESTART = rule(
    "BDR-C007", "no-restart-policy", Severity.WARNING, "A data store has no restart policy.",
    "Without restart: unless-stopped (or always, on-failure), a crashed or OOM-killed container stays down "
    "until someone notices: the restart RTO is not met.",
)

NO_CONFIG = rule(
    "BDR-C008", "redis-conf-not-loaded", Severity.WARNING,
    "A Redis service starts without the redis.conf of the checkout.",
    "redis-server started without a config file runs on its defaults (no AOF, a snapshot at most every hour "
    "for a single write): the persistence settings of redis.conf are not in effect.",
)


def _tmpfs_volume(mount: Mount, compose: ComposeFile) -> bool:
    return mount.kind == MountKind.VOLUME and mount.source in compose.tmpfs_volumes


@check
def check_compose(ctx: LintContext) -> Iterable[Finding]:
    """Data directories on named volumes, declared volumes, restart policies, command overrides."""
    rto = ctx.config.targets.rto
    for compose in compose_files(ctx).values():
        if compose.problem:
            yield UNPARSABLE.finding(
                compose.path, compose.problem_line, f"{display_path(compose.path, ctx.cwd)}: {compose.problem}",
                "docker compose cannot start the stack: no service comes back after a restart or restore.",
                "Fix the YAML (docker compose config shows the exact error).",
            )
            continue
        for service in compose.services:
            yield from _undeclared(compose, service)
            if service.data is None:
                continue
            yield from _data_dir(ctx, compose, service)
            yield from _restart(compose, service, rto.get("redis_restart"))
            yield from _overrides(compose, service)
            yield from _config_not_loaded(ctx, compose, service)


def _undeclared(compose: ComposeFile, service: Service) -> Iterable[Finding]:
    for mount in service.mounts:
        if mount.kind == MountKind.VOLUME and mount.source and mount.source not in compose.volumes:
            yield UNDECLARED.finding(
                compose.path, mount.line,
                f"service {service.name} mounts volume {mount.source!r}, which is not declared under volumes:",
                "docker compose refuses to start the stack, so nothing can be restarted or restored into it "
                "until this is fixed (every RTO is missed).",
                f"Declare it at the end of the file:\nvolumes:\n  {mount.source}:",
                facts={"service": service.name, "volume": mount.source},
            )


def _data_dir(ctx: LintContext, compose: ComposeFile, service: Service) -> Iterable[Finding]:
    assert service.data is not None
    data_dir = effective_dir(service, compose.path) or service.data.data_dir
    mount = data_mount(service, data_dir)
    store = "Redis" if service.data.source == "redis" else "Qdrant"
    types = ", ".join(data_types_of(service.data.source, ctx.config)) or "its data"
    facts = {"service": service.name, "data_dir": data_dir, "source": service.data.source}
    suggestion = f"{service.name}_data"
    fix = (f"Mount a named volume on {data_dir}:\n  {service.name}:\n    volumes:\n      - {suggestion}:{data_dir}\n"
           f"and declare it:\nvolumes:\n  {suggestion}:")
    if mount is None:
        image_note = (" (the redis image declares an anonymous VOLUME for /data, which is replaced by an empty "
                      "one when the container is recreated)") if service.data.source == "redis" else ""
        yield NO_VOLUME.finding(
            compose.path, service.line, f"service {service.name} ({store}) has no volume on its data directory "
            f"{data_dir}{image_note}",
            f"Recreating the container (docker compose up after any change, down + up) deletes every {store} "
            f"record ({types}): a total loss at every deployment, recoverable only from the last backup.",
            fix, facts=facts,
        )
    elif mount.kind == MountKind.TMPFS or _tmpfs_volume(mount, compose):
        yield TMPFS.finding(
            compose.path, mount.line, f"service {service.name} ({store}) keeps {data_dir} on tmpfs (memory)",
            f"Every restart of the container loses all {store} data ({types}): a crash becomes a total loss, "
            "and the restart RTO includes a restore from backup.",
            fix, facts=facts,
        )
    elif mount.kind == MountKind.BIND:
        yield BIND_MOUNT.finding(
            compose.path, mount.line,
            f"service {service.name} ({store}) keeps {data_dir} on the bind mount {mount.source}",
            f"The {store} data ({types}) depends on the host path {mount.source}"
            + (" relative to the directory compose runs from: from another checkout the service starts empty"
               if not str(mount.source).startswith("/") else "")
            + "; bdr's volume backups and docker volume tooling do not see it.",
            fix, facts={**facts, "source_path": mount.source},
        )
    elif mount.kind == MountKind.ANONYMOUS:
        yield ANONYMOUS.finding(
            compose.path, mount.line, f"service {service.name} ({store}) keeps {data_dir} on an anonymous volume",
            f"docker compose down + up gives the service a new, empty volume: all {store} data ({types}) is gone "
            "from the running service and has to be restored from the last backup.",
            fix, facts=facts,
        )


def _restart(compose: ComposeFile, service: Service, restart_rto: float | None) -> Iterable[Finding]:
    if service.restart in RESTART_POLICIES_OK:
        return
    is_redis = service.data is not None and service.data.source == "redis"
    target = f" (target RTO of a Redis restart: {human_duration(restart_rto)})" if restart_rto and is_redis else ""
    current = f"restart: {service.restart}" if service.restart else "no restart policy"
    yield NO_RESTART.finding(
        compose.path, service.restart_line or service.line, f"service {service.name} has {current}",
        f"A crashed or OOM-killed {service.name} stays down until someone restarts it by hand{target}.",
        f"Add restart: unless-stopped to service {service.name}.",
        facts={"service": service.name, "restart": service.restart},
    )


def _config_not_loaded(ctx: LintContext, compose: ComposeFile, service: Service) -> Iterable[Finding]:
    if service.data is None or service.data.source != "redis" or service.data.pattern.startswith("bitnami/"):
        return
    confs = [p for p in ctx.redis_confs if ctx.holds_production_data(p)]
    command = redis_command(service, compose.path)
    if not confs or command is None or command.conf:
        return
    shown = ", ".join(display_path(p, ctx.cwd) for p in confs)
    mount = f"./{confs[0].name}:/usr/local/etc/redis/redis.conf:ro"
    yield NO_CONFIG.finding(
        compose.path, service.command_line or service.line,
        f"service {service.name} starts redis-server without a config file; {shown} is not used",
        "Redis runs on its defaults (or only the command-line options): what a crash loses is not what "
        f"{shown} says (see the crash window of this service).",
        f"Mount the file and start Redis with it:\n  volumes: [\"{mount}\"]\n"
        "  command: redis-server /usr/local/etc/redis/redis.conf",
        facts={"service": service.name},
    )


def _overrides(compose: ComposeFile, service: Service) -> Iterable[Finding]:
    if service.data is None or service.data.source != "redis":
        return
    command = redis_command(service, compose.path)
    if command is None or not command.conf or not command.persistence_options:
        return
    host = host_path(service, command.conf, compose.path)
    shown = ", ".join(f"--{d}" for d in command.persistence_options)
    in_file = ""
    if host is not None:
        conf = parse_redis_conf(host)
        in_conf = [found for d in command.persistence_options if (found := conf.last(d.name)) is not None]
        set_there = [f"{d} ({host.name}:{d.line})" for d in in_conf]
        in_file = f"; redis.conf says {', '.join(set_there)}" if set_there else ""
    yield COMMAND_OVERRIDE.finding(
        compose.path, service.command_line or service.line,
        f"service {service.name}: the command line sets {shown}, overriding {command.conf}{in_file}",
        "The persistence that decides what a crash loses is the command line's, not redis.conf's: a fix in "
        "redis.conf does not change the recovery point.",
        f"Move {shown} into redis.conf and drop it from command: of service {service.name}.",
        facts={"service": service.name, "options": [str(d) for d in command.persistence_options]},
    )
