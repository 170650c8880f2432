"""A Redis server's effective settings, read the way redis-server itself reads them.

When the server runs, its settings are what ``CONFIG GET`` says (:func:`running_settings`).
When it is down, they follow from how it is launched (:func:`read_launch_config`): its
argv and the directory it starts in. redis-server builds one config text from the config
file, then its stdin (``-``), then the ``--name value`` options of its command line, and
applies it line by line:

- files are read by :func:`bdr.formats.redis_conf.read_directives`, the one redis.conf parser (lint's
  too: Redis's ``sdssplitargs``, quotes and escapes), names are case-insensitive, the last
  directive wins, except ``save``, whose lines add up (the first one replaces the defaults, ``save ""`` clears);
- ``dir`` *changes the working directory at once* (``chdir``), relative to the current one:
  an ``include`` after it, and every relative path Redis opens later (``logfile``,
  ``pidfile``, ``aclfile``, TLS files, the unix socket, its data files) are relative to
  the data directory, while the config file itself and an ``include`` before any ``dir``
  are relative to the directory the server was started in;
- ``include`` reads another file (a glob pattern in Redis 7: no match is no error, sorted)
  at the place it appears;
- a setting never written takes Redis's default (:data:`DEFAULTS`, Redis 7.0), and
  ``daemonize yes`` without a ``pidfile`` writes ``/var/run/redis.pid``.

Values are normalised as ``CONFIG GET`` prints them (``yes``/``no``, numbers, octal
``unixsocketperm``, ``save`` as one line, ``dir`` absolute with symlinks resolved), so a
value read from the launch and one asked from the server compare equal when they are.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdr.formats.redis_conf import (
    ArgsError,
    ConfProblem,
    Directive,
    expand_include,
    parse_memory,
    read_directives,
    split_args,
)

DEFAULTS: dict[str, str] = {
    "port": "6379",
    "bind": "* -::*",
    "unixsocket": "",
    "unixsocketperm": "0",
    "tls-port": "0",
    "tls-cert-file": "",
    "tls-key-file": "",
    "tls-ca-cert-file": "",
    "tls-ca-cert-dir": "",
    "tls-dh-params-file": "",
    "tls-client-cert-file": "",
    "tls-client-key-file": "",
    "tls-replication": "no",
    "tls-cluster": "no",
    "protected-mode": "yes",
    "dbfilename": "dump.rdb",
    "appendonly": "no",
    "appenddirname": "appendonlydir",
    "appendfilename": "appendonly.aof",
    "appendfsync": "everysec",
    "save": "3600 1 300 100 60 10000",
    "databases": "16",
    "aclfile": "",
    "logfile": "",
    "pidfile": "",
    "cluster-enabled": "no",
    "cluster-config-file": "nodes.conf",
    "daemonize": "no",
    "supervised": "no",
    "requirepass": "",
    "masterauth": "",
    "masteruser": "",
    "replicaof": "",
    "rdbcompression": "yes",
    "aof-use-rdb-preamble": "yes",
    "maxmemory": "0",
    "set-proc-title": "yes",
    "proc-title-template": "{title} {listen-addr} {server-mode}",
    "loglevel": "notice",
}
"""Redis 7.0's defaults of the settings bdr reads (checked against ``CONFIG GET`` of a server started with none)."""

DEFAULT_DAEMON_PIDFILE = "/var/run/redis.pid"
ALIASES = {
    "slaveof": "replicaof", "slave-read-only": "replica-read-only",
    "slave-serve-stale-data": "replica-serve-stale-data",
    "slave-priority": "replica-priority", "slave-lazy-flush": "replica-lazy-flush",
    "slave-ignore-maxmemory": "replica-ignore-maxmemory", "slave-announce-ip": "replica-announce-ip",
    "slave-announce-port": "replica-announce-port", "repl-ping-slave-period": "repl-ping-replica-period",
    "min-slaves-to-write": "min-replicas-to-write", "min-slaves-max-lag": "min-replicas-max-lag",
    "cluster-slave-validity-factor": "cluster-replica-validity-factor",
    "cluster-slave-no-failover": "cluster-replica-no-failover",
    "hash-max-ziplist-entries": "hash-max-listpack-entries", "hash-max-ziplist-value": "hash-max-listpack-value",
    "list-max-ziplist-size": "list-max-listpack-size", "zset-max-ziplist-entries": "zset-max-listpack-entries",
    "zset-max-ziplist-value": "zset-max-listpack-value",
}
"""Old names Redis 7 still accepts (and lists in ``CONFIG GET *``) for the same setting."""
MULTI_ARG = frozenset({"save", "bind"})
BOOLEAN = frozenset({
    "protected-mode", "appendonly", "cluster-enabled", "daemonize", "tls-replication", "tls-cluster",
    "rdbcompression", "aof-use-rdb-preamble", "set-proc-title", "tls-auth-clients-optional",
})
INTEGER = frozenset({"port", "tls-port", "databases", "maxclients", "tcp-backlog"})
OCTAL = frozenset({"unixsocketperm"})
MEMORY = frozenset({"maxmemory"})
LOWER = frozenset({"appendfsync", "supervised", "loglevel", "tls-auth-clients"})
PATH_SETTINGS = (
    "logfile", "pidfile", "aclfile", "unixsocket", "tls-cert-file", "tls-key-file", "tls-ca-cert-file",
    "tls-ca-cert-dir", "tls-dh-params-file", "tls-client-cert-file", "tls-client-key-file", "cluster-config-file",
)
"""Settings naming a file Redis opens after it read its config: relative to the data directory."""
SECRET_SETTINGS = frozenset({"requirepass", "masterauth", "tls-key-file-pass", "tls-client-key-file-pass"})
"""Settings bdr never puts in an argv, a log or the journal."""


def canonical(name: str) -> str:
    name = name.lower()
    return ALIASES.get(name, name)


def normalize(name: str, value: str) -> str:
    """``value`` as ``CONFIG GET name`` prints it."""
    name = canonical(name)
    text = value.strip() if name not in ("requirepass", "masterauth") else value
    try:
        if name in BOOLEAN:
            return text.lower()
        if name in INTEGER:
            return str(int(text))
        if name in OCTAL:
            return format(int(text, 8), "o")
        if name in MEMORY:
            return str(parse_memory(text))
    except ValueError:
        return text
    if name in LOWER:
        return text.lower()
    if name in MULTI_ARG:
        return " ".join(text.split())
    return text


def running_settings(client: Any, names: Sequence[str]) -> dict[str, str]:
    """``CONFIG GET`` of ``names`` on a running server, normalised (names it does not know are left out)."""
    wanted = [canonical(n) for n in names]
    reply = client.config_get(*wanted) if wanted else {}
    got = {str(k).lower(): "" if v is None else str(v) for k, v in dict(reply).items()}
    return {n: normalize(n, got[n]) for n in wanted if n in got}


def all_running_settings(client: Any) -> dict[str, str]:
    """``CONFIG GET *`` of a running server, normalised, under Redis's own names (aliases left out)."""
    reply = dict(client.config_get("*"))
    return {str(k).lower(): normalize(str(k), "" if v is None else str(v)) for k, v in reply.items()
            if str(k).lower() not in ALIASES}


@dataclass(frozen=True, slots=True)
class LaunchConfig:
    """What a launch (argv + working directory) configures, with Redis's reading order applied."""

    argv: tuple[str, ...]
    cwd: str
    config_file: str | None
    """The config file argument, absolute (relative to ``cwd``, as Redis makes it)."""
    values: Mapping[str, str]
    """Every setting written somewhere, normalised (the last one won; ``save`` lines added up)."""
    dir: str
    """The data directory: the working directory after every ``dir`` (absolute, symlinks resolved)."""
    files: tuple[str, ...] = ()
    """Config files read: the main one, then each include, in order."""
    problems: tuple[str, ...] = ()
    """What would keep redis-server from reading its config (a file it cannot open, a bad line, a ``dir``
    that does not exist)."""
    written: tuple[str, ...] = field(default_factory=tuple)
    """Names in the order they were first written."""

    def get(self, name: str) -> str | None:
        """The effective value of ``name``: written, else Redis's default (None when bdr does not know it)."""
        name = canonical(name)
        if name == "dir":
            return self.dir
        if name == "pidfile" and not self.values.get("pidfile") and self.values.get("daemonize") == "yes":
            return DEFAULT_DAEMON_PIDFILE
        if name in self.values:
            return self.values[name]
        return DEFAULTS.get(name)

    def settings(self, names: Iterable[str]) -> dict[str, str]:
        """Effective values of ``names`` (names with no known default and never written are left out)."""
        out: dict[str, str] = {}
        for name in names:
            value = self.get(name)
            if value is not None:
                out[canonical(name)] = value
        return out

    def path(self, name: str) -> Path | None:
        """The file a path setting names, as Redis opens it (relative to the data directory); None when unset."""
        value = self.get(name)
        if not value:
            return None
        return resolve_path(value, self.dir)


def resolve_path(value: str, directory: str) -> Path:
    """A path setting as Redis opens it once it runs (its working directory is the data directory)."""
    path = Path(value)
    return path if path.is_absolute() else Path(directory) / path


def split_command(argv: Sequence[str]) -> tuple[str | None, bool, list[str]]:
    """(config file argument, reads stdin, option arguments) of a redis-server argv (argv[0] first)."""
    args = list(argv[1:])
    stdin = False
    if args and args[-1] == "-":
        stdin, args = True, args[:-1]
    elif args and args[0] == "-":
        stdin, args = True, args[1:]
    conf = None
    if args and not args[0].startswith("-"):
        conf, args = args[0], args[1:]
    return conf, stdin, args


def option_lines(args: Sequence[str]) -> list[list[str]]:
    """``--name value ...`` options as config lines ([name, args...]), the way redis-server turns them into text."""
    lines: list[list[str]] = []
    for arg in args:
        if arg.startswith("--") and len(arg) > 2:
            lines.append([arg[2:]])
        elif lines:
            lines[-1].append(arg)
    return lines


class _Reader:
    """Applies config lines in order, tracking the working directory as ``dir`` changes it."""

    def __init__(self, cwd: str) -> None:
        self.cwd = cwd
        self.values: dict[str, str] = {}
        self.order: list[str] = []
        self.saves: list[str] | None = None
        self.files: list[str] = []
        self.problems: list[str] = []

    def apply(self, name: str, args: list[str], where: str) -> None:
        name = canonical(name)
        if name == "include":
            self.take(expand_include(Directive(name, tuple(args), Path(where), 0), self.locate))
            return
        if name in MULTI_ARG and len(args) == 1 and args[0] != "":
            with contextlib.suppress(ArgsError):
                args = split_args(args[0])
        if name not in self.order:
            self.order.append(name)
        if name == "dir":
            if args:
                target = os.path.normpath(os.path.join(self.cwd, args[0]))
                if not os.path.isdir(target):
                    self.problems.append(f"{where}: dir {args[0]} does not exist (from {self.cwd})")
                self.cwd = target
            return
        if name == "save":
            if args == [""] or not args:
                self.saves = []
            else:
                self.saves = [*(self.saves or []), *args]
            return
        self.values[name] = normalize(name, " ".join(args))

    def read_file(self, path: str) -> None:
        self.take(read_directives(Path(path), self.locate))

    def take(self, found: Iterable[Directive | ConfProblem]) -> None:
        """Apply directives as they come: a ``dir`` moves the directory the next ``include`` is found in."""
        for item in found:
            if isinstance(item, ConfProblem):
                self.problems.append(self.describe(item))
            else:
                self.apply(item.name, list(item.args), f"{item.path}:{item.line}")

    def note_file(self, path: Path) -> None:
        if str(path) not in self.files:
            self.files.append(str(path))

    def locate(self, include: Directive) -> list[Path]:
        """An include as redis-server finds it: relative to its working directory at that line; a glob
        that matches nothing is no error (Redis 7)."""
        pattern = include.args[0]
        full = pattern if os.path.isabs(pattern) else os.path.join(self.cwd, pattern)
        is_glob = any(c in pattern for c in "*?[")
        found = [Path(m) for m in sorted(glob.glob(full))] if is_glob else [Path(full)]
        for path in found:
            self.note_file(path)
        return found

    @staticmethod
    def describe(problem: ConfProblem) -> str:
        if problem.unreadable:
            at = problem.included_at
            where = "" if at is None else f" (included at {at.path}{f':{at.line}' if at.line else ''})"
            return f"cannot read config file {problem.path}{where}: {problem.cause}"
        if problem.cause:
            return f"{problem.path}:{problem.line}: {problem.cause}; redis-server refuses this line"
        return f"{problem.path}:{problem.line}: {problem.detail}"


def read_launch_config(argv: Sequence[str], cwd: str | None = None, stdin: Mapping[str, str] | None = None
                       ) -> LaunchConfig:
    """What redis-server started as ``argv`` in ``cwd`` (default: this process's) would configure.

    ``stdin`` holds settings given on the server's stdin (name -> value): they come after the
    file and before the command-line options, as redis-server reads them.
    """
    start = os.path.abspath(cwd or os.getcwd())
    conf, _, args = split_command(argv)
    reader = _Reader(start)
    config_file = None
    if conf is not None:
        config_file = os.path.normpath(os.path.join(start, conf))
        reader.note_file(Path(config_file))
        reader.read_file(config_file)
    for name, value in (stdin or {}).items():
        reader.apply(name, [value], "stdin")
    for line in option_lines(args):
        reader.apply(line[0], line[1:], "command line")
    values = dict(reader.values)
    if reader.saves is not None:
        values["save"] = " ".join(reader.saves)
    final = reader.cwd
    directory = os.path.realpath(final) if os.path.isdir(final) else final
    return LaunchConfig(
        argv=tuple(argv), cwd=start, config_file=config_file, values=values, dir=directory,
        files=tuple(reader.files), problems=tuple(reader.problems), written=tuple(reader.order),
    )


__all__ = [
    "ALIASES",
    "DEFAULTS",
    "PATH_SETTINGS",
    "SECRET_SETTINGS",
    "LaunchConfig",
    "all_running_settings",
    "canonical",
    "normalize",
    "option_lines",
    "read_launch_config",
    "resolve_path",
    "running_settings",
    "split_command",
]
