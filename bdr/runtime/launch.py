"""How a running Redis was launched, read back so that it can be started again exactly that way.

redis-server keeps little of its launch: it rewrites its argv into a process title
(``redis-server 127.0.0.1:6379``), overwriting its environment with it, ``INFO executable``
is ``<cwd>/<argv[0]>`` (``/tmp/x/redis-server`` for one started from PATH, a file that does
not exist), and it changes its working directory to ``dir``. :func:`read_launch` puts the
launch back together from what is left:

- **binary**: ``/proc/PID/exe``; a file replaced since the start (``(deleted)``, a package
  upgrade) is used when a binary is at that path again (noted); Debian's ``redis-server``
  is a symlink to ``redis-check-rdb``, so the name kept is one that is the same file and
  says ``redis-server`` (see :func:`bdr.runtime.server.exec_argv`);
- **working directory**: the one ``INFO executable`` was made from (exact when argv[0]
  was relative), else ``PWD`` of its environment when that is still readable and a
  directory, else ``/proc/PID/cwd`` (its data directory: relative paths of its config
  would then resolve against ``dir``);
- **argv**: ``/proc/PID/cmdline`` when it was not rewritten (``set-proc-title no``); when it
  was, ``[binary, config_file]`` (``INFO config_file``, absolute); then ``--name value``
  for each setting whose *running* value (``CONFIG GET *``) differs from what that argv
  configures (its file and includes, else the binary's own defaults:
  :mod:`bdr.runtime.defaults`), :data:`LAUNCH_SETTINGS` (where it listens, where its data
  is, how it persists) first: the restart listens where it listened, keeps its data where
  it kept it and runs as it ran (``maxmemory``, ``enable-debug-command`` ...), even after
  a ``CONFIG SET`` that was never written to the file; ``daemonize yes`` becomes
  ``--daemonize no`` (bdr keeps the server in a session of its own). Module settings
  (``name.with.dot``) are left to the config file that loads the module;
- **secrets**: ``requirepass`` never goes to the argv: when the running one is not what
  the config file gives, it is passed on the server's stdin from the instance's own
  credentials, and recorded by name (``Launch.stdin_settings``);
- **owner**: the uid, gid and groups it runs as (bdr, as root, starts it as them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bdr.config import RedisInstance
from bdr.errors import ServiceError
from bdr.runtime.base import Launch
from bdr.runtime.defaults import binary_defaults
from bdr.runtime.procfs import ProcessFacts
from bdr.runtime.server import REDIS_SERVER
from bdr.runtime.settings import (
    DEFAULTS,
    SECRET_SETTINGS,
    canonical,
    option_lines,
    read_launch_config,
    split_command,
)

LAUNCH_SETTINGS = (
    "port", "bind", "unixsocket", "unixsocketperm", "tls-port", "tls-cert-file", "tls-key-file",
    "tls-ca-cert-file", "tls-ca-cert-dir", "tls-dh-params-file", "tls-client-cert-file", "tls-client-key-file",
    "protected-mode", "dir", "dbfilename", "appendonly", "appenddirname", "appendfilename", "appendfsync", "save",
    "databases", "aclfile", "logfile", "pidfile", "cluster-enabled", "cluster-config-file",
)
"""Where it listens, where its data is and how it persists: a restart keeps their running values."""
NOT_REPEATED = frozenset({"daemonize", "supervised"})
"""Running settings never copied into the argv: bdr runs the server in the foreground, outside a supervisor."""
CLUSTER_MANAGED = frozenset({"replicaof", "slaveof"})
"""Settings a cluster node never takes (Redis refuses to start with them): its role is in its ``nodes.conf``."""


@dataclass(frozen=True, slots=True)
class ReadLaunch:
    """A launch read from a running server, with what bdr noticed while reading it."""

    launch: Launch
    facts: ProcessFacts
    notes: tuple[str, ...] = ()
    """Facts for ``describe`` (a replaced binary, a rebuilt argv)."""
    problems: tuple[str, ...] = ()
    """What keeps bdr from starting it again exactly (a secret given on its command line)."""
    rewritten: bool = False


def title_rewritten(facts: ProcessFacts) -> bool:
    """Redis replaced its argv with a process title (one string with spaces, not a path)."""
    if len(facts.cmdline) != 1:
        return False
    only = facts.cmdline[0]
    return " " in only and not os.path.exists(only)


def start_directory(facts: ProcessFacts, argv0: str, executable: str) -> tuple[str, str]:
    """(directory it was started in, how bdr knows)."""
    if argv0 and not argv0.startswith("/") and executable.endswith("/" + argv0):
        base = executable[: -len(argv0) - 1] or "/"
        if os.path.isdir(base):
            return base, "INFO executable"
    pwd = facts.environ.get("PWD")
    if pwd and os.path.isdir(pwd):
        return pwd, "PWD"
    if facts.cwd:
        return facts.cwd, "its current directory (the data directory)"
    raise ServiceError(detail=f"cannot read the working directory of pid {facts.pid}: run bdr as root or as the "
                       "user Redis runs as")


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def choose_binary(facts: ProcessFacts, argv0: str, cwd: str, executable: str) -> tuple[str, list[str]]:
    """(the binary to start, notes): the running file, under a name that runs it as redis-server."""
    notes: list[str] = []
    exe = facts.exe
    if exe is None:
        raise ServiceError(detail=f"cannot read /proc/{facts.pid}/exe: run bdr as root or as the user Redis runs as "
                           f"(uid {facts.uid})")
    if facts.exe_deleted:
        if not os.path.isfile(exe):
            raise ServiceError(detail=f"the binary of Redis pid {facts.pid} ({exe}) was removed and nothing is at "
                               "that path now: reinstall it (apt-get install --reinstall redis-server) before a "
                               "restore")
        notes.append(f"binary {exe} was replaced since pid {facts.pid} started (an upgrade?): a restart runs the "
                     "new one")
    candidates = []
    if argv0:
        if "/" in argv0:
            candidates.append(os.path.normpath(os.path.join(cwd, argv0)))
        else:
            found = shutil.which(argv0)
            if found:
                candidates.append(found)
    candidates += [executable, os.path.join(os.path.dirname(exe), REDIS_SERVER)]
    for candidate in candidates:
        if candidate and "redis-check" not in os.path.basename(candidate) and os.path.isfile(candidate) \
                and _same(candidate, exe):
            return os.path.abspath(candidate), notes
    return exe, notes


def _strip_secrets(args: list[str]) -> tuple[list[str], list[str]]:
    """(options without the secret ones, names of the secrets removed)."""
    kept: list[str] = []
    removed: list[str] = []
    for line in option_lines(args):
        if canonical(line[0]) in SECRET_SETTINGS:
            removed.append(canonical(line[0]))
            continue
        kept += [f"--{line[0]}", *line[1:]]
    return kept, removed


def read_launch(instance: RedisInstance, facts: ProcessFacts, info: Mapping[str, Any],
                running: Mapping[str, str], password: str | None) -> ReadLaunch:
    """The launch of a running server from its ``/proc`` facts, ``INFO server`` and ``CONFIG GET *``."""
    rewritten = title_rewritten(facts)
    argv0 = facts.argv0 if rewritten else (facts.cmdline[0] if facts.cmdline else REDIS_SERVER)
    executable = str(info.get("executable") or "")
    cwd, cwd_source = start_directory(facts, argv0, executable)
    binary, notes = choose_binary(facts, argv0, cwd, executable)
    problems: list[str] = []
    if rewritten:
        config_file = str(info.get("config_file") or "")
        args = [config_file] if config_file else []
        notes.append(f"argv rebuilt from its config file and running settings (Redis rewrote it to "
                     f"{facts.cmdline[0].strip()!r}); started in {cwd} (from {cwd_source})")
    else:
        conf, from_stdin, options = split_command(facts.cmdline)
        options, removed = _strip_secrets(options)
        args = ([conf] if conf else []) + options
        for name in removed:
            if name != "requirepass":
                problems.append(f"Redis {instance.name} was started with --{name} on its command line, which bdr "
                                "never repeats (a secret in argv): move it to its config file")
        if from_stdin:
            notes.append("part of its config came from stdin: bdr keeps only what its running settings show")
    derived = read_launch_config([binary, *args], cwd)
    if derived.get("daemonize") == "yes":
        args += ["--daemonize", "no"]
        derived = read_launch_config([binary, *args], cwd)
    defaults = binary_defaults(binary)
    order = [*LAUNCH_SETTINGS, *sorted(n for n in running if n not in LAUNCH_SETTINGS)]
    for name in order:
        if name not in running or name in NOT_REPEATED or name in SECRET_SETTINGS or "." in name:
            continue
        if name in CLUSTER_MANAGED and running.get("cluster-enabled") == "yes":
            continue
        if name in ("dir", "pidfile") or name in derived.values:
            configured = derived.get(name)
        else:
            configured = defaults.get(name, DEFAULTS.get(name))
        if configured is not None and configured != running[name]:
            args += [f"--{name}", running[name]]
    stdin: tuple[str, ...] = ()
    live_pass = running.get("requirepass", "")
    if live_pass and live_pass != derived.get("requirepass"):
        stdin = ("requirepass",)
        if password != live_pass:
            held = f"${instance.password_env}" if instance.password_env else "password_file"
            problems.append(f"Redis {instance.name} runs with a password that is not in its config file and is not "
                            f"the one bdr has for it ({held}): set password_env/password_file of redis."
                            f"{instance.name} in bdr.yaml to its password, or put requirepass in its config file")
    launch = Launch(
        runtime="process", data_dir=instance.data_dir or running.get("dir") or derived.dir,
        argv=(binary, *args), cwd=cwd, stdin_settings=stdin, pid=facts.pid,
        uid=facts.uid, gid=facts.gid, groups=facts.groups,
    )
    return ReadLaunch(launch=launch, facts=facts, notes=tuple(notes), problems=tuple(problems), rewritten=rewritten)


def configured_launch(instance: RedisInstance, binary: str) -> Launch | None:
    """The launch bdr.yaml gives (``config_file``, ``start_args``) for a server bdr never saw run; None without."""
    if not instance.config_file and not instance.start_args:
        return None
    args = ([instance.config_file] if instance.config_file else []) + list(instance.start_args)
    derived = read_launch_config([binary, *args])
    if derived.get("daemonize") == "yes":
        args += ["--daemonize", "no"]
    return Launch(runtime="process", data_dir=instance.data_dir or derived.dir, argv=(binary, *args),
                  cwd=os.getcwd())


__all__ = ["LAUNCH_SETTINGS", "ReadLaunch", "configured_launch", "read_launch", "title_rewritten"]
