"""Who else keeps a Redis process alive: a systemd unit, a process supervisor, a container.

A supervised Redis must be stopped and started *through* its supervisor: stopped behind
its back (``SHUTDOWN``), systemd's ``Restart=always`` or supervisord's ``autorestart``
start it again at once, racing bdr for the port and loading the old files while they are
being replaced. The process runtime therefore refuses such an instance and says which
runtime to configure instead (:attr:`Supervisor.fix`).

Two sources, both read from ``/proc`` (:mod:`bdr.runtime.procfs`):

- the process's cgroup: a path ending in ``<unit>.service`` (cgroup v1 ``name=systemd``
  hierarchy or the v2 ``0::`` line) means a systemd unit owns it; ``/docker/<id>``,
  ``docker-<id>.scope`` or ``libpod-<id>`` above it means a container (a unit inside a
  container is driven with ``systemctl: [docker, exec, <id>, systemctl]``);
- its ancestors: supervisord, s6-supervise, runsv (runit), daemontools' supervise, monit,
  circusd, pm2, or a container shim (containerd-shim, docker-init, conmon); a Redis that is
  pid 1 of its namespace is a container's main process.

When systemd runs this host, a unit whose main process is *not* this Redis (a Redis a
cron job started lives in ``cron.service``) does not restart it and does not count.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bdr.runtime.procfs import ProcessFacts, ancestors, read_process

CONTAINER_ID = re.compile(r"(?:^|[/-])(?:docker-|libpod-|cri-containerd-|crio-)?([0-9a-f]{64})(?:\.scope)?$")
SUPERVISORS = {
    "supervisord": "supervisord",
    "s6-supervise": "s6",
    "runsv": "runit",
    "supervise": "daemontools",
    "monit": "monit",
    "circusd": "circus",
    "containerd-shim": "container",
    "containerd-shim-runc-v2": "container",
    "docker-containerd-shim": "container",
    "docker-init": "container",
    "conmon": "container",
}


@dataclass(frozen=True, slots=True)
class Supervisor:
    """What runs a Redis process besides bdr, and how to tell bdr to go through it."""

    kind: str
    """``systemd``, ``supervisord``, ``s6``, ``runit``, ``daemontools``, ``monit``, ``circus``, ``pm2``,
    ``container``."""
    name: str
    """The unit, program, service directory or container."""
    detail: str = ""
    config: str = ""
    """One line for bdr.yaml: the runtime to set instead."""

    def describe(self) -> str:
        shown = {
            "systemd": f"belongs to systemd unit {self.name}",
            "container": f"runs in container {self.name}",
        }.get(self.kind, f"is run by {self.kind} {self.name}")
        return shown + (f" ({self.detail})" if self.detail else "")

    def message(self, instance: str, pid: int) -> str:
        """The one-line refusal: what runs it, and the bdr.yaml change that makes bdr go through it."""
        return f"Redis {instance} (pid {pid}) {self.describe()}: {self.config.replace('{instance}', instance)}"


def unit_of_cgroup(path: str) -> tuple[str | None, str]:
    """(innermost unit ``*.service`` owning a cgroup path, the path above it)."""
    parts = [p for p in path.split("/") if p]
    for index in range(len(parts) - 1, -1, -1):
        part = parts[index]
        if part.endswith(".service"):
            return part, "/" + "/".join(parts[:index])
        if part.endswith((".scope", ".slice")):
            return None, ""
    return None, ""


def container_of_cgroup(path: str) -> str | None:
    for part in path.split("/"):
        match = CONTAINER_ID.search(part)
        if match:
            return match.group(1)
    return None


def _cgroup_paths(facts: ProcessFacts) -> list[str]:
    """The v2 path first, then the v1 name=systemd one."""
    v2 = [line.split(":", 2)[2] for line in facts.cgroups if line.startswith("0::")]
    v1 = [line.split(":", 2)[2] for line in facts.cgroups if ":name=systemd:" in line]
    return v2 + v1


def _systemctl_show(unit: str, *props: str, prefix: tuple[str, ...] = ("systemctl",)) -> dict[str, str] | None:
    """``systemctl show`` of ``unit`` on this host; None when no systemd answers."""
    if prefix == ("systemctl",) and not Path("/run/systemd/system").is_dir():
        return None
    try:
        done = subprocess.run([*prefix, "show", *(f"--property={p}" for p in props), unit], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return dict(line.partition("=")[::2] for line in done.stdout.splitlines() if "=" in line)


def _container_name(container_id: str) -> str:
    with contextlib.suppress(Exception):
        import docker

        client = docker.from_env(timeout=5)
        try:
            return str(client.containers.get(container_id).name)
        finally:
            client.close()
    return container_id[:12]


def _systemd(facts: ProcessFacts) -> Supervisor | None:
    for path in _cgroup_paths(facts):
        unit, above = unit_of_cgroup(path)
        container = container_of_cgroup(above) if above else container_of_cgroup(path)
        if unit is None:
            if container:
                name = _container_name(container)
                return Supervisor("container", name, config=f"set runtime: docker and container: {name} for "
                                  "redis.{instance} in bdr.yaml")
            continue
        user = re.search(r"user@(\d+)\.service", above)
        if container:
            name = _container_name(container)
            return Supervisor("systemd", unit, detail=f"inside container {name}",
                              config=f"set runtime: systemd, unit: {unit} and systemctl: [docker, exec, {name}, "
                              "systemctl] for redis.{instance} in bdr.yaml")
        if user:
            return Supervisor("systemd", unit, detail=f"a user unit of uid {user.group(1)}",
                              config=f"set runtime: systemd, unit: {unit} and systemctl: [systemctl, --user] for "
                              "redis.{instance} in bdr.yaml (bdr running as that user)")
        shown = _systemctl_show(unit, "MainPID", "Restart", "ExecStart")
        if shown is not None and shown.get("MainPID") not in (str(facts.pid), "0") \
                and "redis" not in shown.get("ExecStart", ""):
            continue  # it only lives in that unit's cgroup (a cron job started it): nobody restarts it
        detail = f"Restart={shown['Restart']}" if shown and shown.get("Restart") else ""
        return Supervisor("systemd", unit, detail=detail,
                          config=f"set runtime: systemd and unit: {unit} for redis.{{instance}} in bdr.yaml")
    return None


def _names(facts: ProcessFacts) -> list[str]:
    names = [facts.comm]
    names += [PurePosixPath(arg.split(" ")[0]).name for arg in facts.cmdline[:2]]
    return names


def _supervisord(parent: ProcessFacts, pid: int) -> Supervisor:
    args = list(parent.cmdline)
    conf = None
    for flag in ("-c", "--configuration"):
        if flag in args[:-1]:
            conf = args[args.index(flag) + 1]
    for arg in args:
        if arg.startswith("--configuration="):
            conf = arg.split("=", 1)[1]
    if conf and not os.path.isabs(conf):
        base = parent.environ.get("PWD") or parent.cwd or "/"
        conf = os.path.normpath(os.path.join(base, conf))
    ctl = ["supervisorctl", *(["-c", conf] if conf else [])]
    program = _supervisord_program(ctl, pid) or "<program>"
    line = " ".join(shlex.quote(a) for a in ctl)
    return Supervisor(
        "supervisord", f"program {program}", detail=_autorestart(conf, program),
        config=f"set runtime: command for redis.{{instance}} in bdr.yaml with commands: {{start: {line} start "
        f"{program}, stop: {line} stop {program}, status: {line} status {program}}}",
    )


def _supervisord_program(ctl: list[str], pid: int) -> str | None:
    try:
        done = subprocess.run([*ctl, "status"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in done.stdout.splitlines():
        if re.search(rf"\bpid {pid},", line):
            return line.split()[0]
    return None


def _autorestart(conf: str | None, program: str) -> str:
    if not conf:
        return ""
    parser = configparser.RawConfigParser(strict=False)
    with contextlib.suppress(configparser.Error, OSError):
        parser.read(conf)
    name = program.split(":")[-1]
    section = f"program:{name}"
    if parser.has_section(section):
        return f"autorestart={parser.get(section, 'autorestart', fallback='unexpected')}"
    return ""


def _directory(parent: ProcessFacts) -> str:
    if len(parent.cmdline) > 1 and parent.cmdline[1]:
        arg = parent.cmdline[1]
        return arg if os.path.isabs(arg) else os.path.normpath(os.path.join(parent.cwd or "/", arg))
    return parent.cwd or "<service directory>"


def _from_parent(parent: ProcessFacts, pid: int) -> Supervisor | None:
    names = _names(parent)
    if any(n.startswith("PM2 ") for n in [parent.comm, *parent.cmdline[:1]]) or "pm2" in names[1:]:
        return Supervisor("pm2", "pm2", config="set runtime: command for redis.{instance} in bdr.yaml with commands: "
                          "{start: pm2 start <name>, stop: pm2 stop <name>, status: pm2 describe <name>}")
    kind = next((SUPERVISORS[n] for n in names if n in SUPERVISORS), None)
    if kind is None:
        return None
    if kind == "supervisord":
        return _supervisord(parent, pid)
    if kind in ("s6", "runit", "daemontools"):
        service = _directory(parent)
        up, down, status = {
            "s6": ("s6-svc -u", "s6-svc -d", "s6-svstat"),
            "runit": ("sv up", "sv down", "sv status"),
            "daemontools": ("svc -u", "svc -d", "svstat"),
        }[kind]
        return Supervisor(kind, service, config=f"set runtime: command for redis.{{instance}} in bdr.yaml with "
                          f"commands: {{start: {up} {service}, stop: {down} {service}, status: {status} {service}}}")
    if kind == "container":
        return Supervisor("container", parent.comm, config="set runtime: docker and container: <its name> for "
                          "redis.{instance} in bdr.yaml")
    tool = {"monit": "monit", "circus": "circusctl"}[kind]
    return Supervisor(kind, kind, config=f"set runtime: command for redis.{{instance}} in bdr.yaml with commands: "
                      f"{{start: {tool} start <name>, stop: {tool} stop <name>, status: {tool} status <name>}}")


def supervisor_of(pid: int) -> Supervisor | None:
    """What besides bdr keeps process ``pid`` running (None: nothing, bdr may stop and start it itself)."""
    facts = read_process(pid)
    if facts is None:
        return None
    found = _systemd(facts)
    if found is not None:
        return found
    if facts.pid == 1 or facts.nspid == 1:  # the init of its pid namespace: its exit ends the container
        return Supervisor("container", "its own", detail="Redis is its pid 1, stopping it stops the container",
                          config="set runtime: docker and container: <its name> for redis.{instance} in bdr.yaml")
    for parent in ancestors(pid):
        found = _from_parent(parent, pid)
        if found is not None:
            return found
    return None


__all__ = ["Supervisor", "container_of_cgroup", "supervisor_of", "unit_of_cgroup"]
