"""How a Grafana instance lives: ``systemd`` (its unit), ``command`` (the operator's commands), ``docker``.

A Grafana restore stops Grafana, swaps grafana.db, and starts it again, so this runtime
answers only what that needs: is it running (the unit is active, the status command exits
0, the container runs), is it ready (``GET /api/health`` answers with ``database: ok``
when ``url`` is set; else running and its database readable), stop it and wait until it is
gone, start it and wait until it is ready, and prove before anything is stopped that it
can be started again (:meth:`GrafanaService.preflight`: the commands exist, the database's
directory is writable).

``systemctl`` is an argv prefix as for Redis (``[sudo, systemctl]``); ``commands`` are argv
lists, never run through a shell.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdr.config import GrafanaInstance
from bdr.errors import BdrError, CommandFailed, ConfigError, ServiceTimeout, StartFailed, StopFailed
from bdr.runtime import register_runtime
from bdr.runtime.base import Launch, Needs, command_line, run_command

logger = logging.getLogger(__name__)

COMMAND_TIMEOUT = 120.0


@dataclass
class GrafanaService:
    """One Grafana instance, stopped and started the way the operator runs it."""

    instance: GrafanaInstance
    kind: str
    service: str = "grafana"
    last_output: str = ""

    @property
    def name(self) -> str:
        return self.instance.name

    def url(self) -> str:
        return self.instance.url or f"sqlite://{self.instance.db_path}"

    # --- the service manager -----------------------------------------------------------------

    def _argv(self, which: str) -> list[str]:
        inst = self.instance
        if self.kind == "systemd":
            verb = {"status": "is-active"}.get(which, which)
            return [*inst.systemctl, verb, str(inst.unit)]
        if self.kind == "docker":
            return ["docker", which if which != "status" else "inspect", str(inst.container)]
        argv = list(inst.commands.get(which, ()))
        if not argv:
            raise ConfigError(path="bdr.yaml", detail=f"grafana.{self.name}.commands has no {which} command")
        return argv

    def _run(self, which: str, timeout: float = COMMAND_TIMEOUT, check: bool = True) -> int:
        if self.kind == "docker":
            return self._docker(which, timeout, check)
        argv = self._argv(which)
        logger.info("Grafana %s: %s", self.name, command_line(argv))
        try:
            done = run_command(argv, where=f"grafana.{self.name}.commands.{which}", timeout=timeout, check=check)
        except CommandFailed as exc:
            self.last_output = str(exc.fields.get("output", ""))
            raise
        self.last_output = done.output
        return done.returncode

    def _docker(self, which: str, timeout: float, check: bool) -> int:
        from bdr.runtime.docker_engine import container_state, docker_client, docker_errors, get_container

        container = get_container(docker_client(), str(self.instance.container), where=f"grafana {self.name}")
        if which == "status":
            return 0 if container_state(container) in ("running", "restarting") else 1
        with docker_errors(f"{which} container {container.name}"):
            if which == "start":
                container.start()
            else:
                container.stop(timeout=int(timeout))
        return 0

    def running(self) -> bool:
        if self.kind == "command" and not self.instance.commands.get("status"):
            return self._healthy() if self.instance.url else False
        return self._run("status", timeout=30.0, check=False) == 0

    def _healthy(self) -> bool:
        from bdr.engines.grafana.api import GrafanaApi

        try:
            health = GrafanaApi.of(self.instance).health()
        except BdrError:
            return False
        return str(health.get("database", "ok")) == "ok"

    def ready(self) -> bool:
        if not self.running():
            return False
        if self.instance.url:
            return self._healthy()
        return Path(self.instance.db_path).is_file()

    def _wait(self, done: Any, timeout: float, what: str) -> None:
        from bdr.util.waiting import wait_for

        if not wait_for(done, timeout, interval=0.1):
            raise ServiceTimeout(service=f"Grafana {self.name}", what=what, seconds=timeout,
                                 detail=self.last_output or "no output")

    def start(self, timeout: float | None = None) -> None:
        timeout = timeout or self.instance.timeout
        if self.ready():
            return
        try:
            self._run("start", timeout=max(timeout, 30.0))
        except CommandFailed as exc:
            raise StartFailed(name=f"(grafana) {self.name}", how=command_line(self._argv("start")),
                              detail=exc.message) from exc
        self._wait(self.ready, timeout, "become ready")

    def stop(self, timeout: float | None = None) -> None:
        timeout = timeout or self.instance.timeout
        if not self.running():
            return
        try:
            self._run("stop", timeout=max(timeout, 30.0))
        except CommandFailed as exc:
            raise StopFailed(name=f"(grafana) {self.name}", how=command_line(self._argv("stop")),
                             detail=exc.message) from exc
        self._wait(lambda: not self.running(), timeout, "stop")

    def kill(self) -> None:
        if self.kind == "systemd":
            subprocess.run([*self.instance.systemctl, "kill", "--signal=SIGKILL", str(self.instance.unit)],
                           capture_output=True, check=False, timeout=30)
            return
        self.stop()

    def data_path(self) -> Path:
        return Path(self.instance.db_path).parent

    def launch(self) -> Launch:
        inst = self.instance
        return Launch(runtime=self.kind, data_dir=str(self.data_path()), unit=inst.unit if self.kind == "systemd"
                      else None, systemctl=tuple(inst.systemctl) if self.kind == "systemd" else (),
                      commands=dict(inst.commands) if self.kind == "command" else {},
                      container=inst.container if self.kind == "docker" else None)

    # --- before anything is stopped ------------------------------------------------------------

    def preflight(self, needs: Needs) -> list[str]:
        """What would keep Grafana from being started again after a stop, one line each with its fix."""
        problems: list[str] = []
        where = f"grafana.{self.name}"
        if self.kind == "command":
            for which in ("start", "stop", "status"):
                argv = self.instance.commands.get(which)
                if argv and shutil.which(argv[0]) is None and not os.path.isfile(argv[0]):
                    problems.append(f"the {which} command of Grafana {self.name} ({argv[0]}) is not found: fix "
                                    f"{where}.commands.{which} in bdr.yaml")
        elif self.kind == "systemd":
            head = self.instance.systemctl[0]
            if shutil.which(head) is None:
                problems.append(f"{head} is not found on PATH: fix {where}.systemctl")
            else:
                shown = subprocess.run([*self.instance.systemctl, "show", "-p", "LoadState", str(self.instance.unit)],
                                       capture_output=True, text=True, check=False, timeout=30)
                if "LoadState=loaded" not in shown.stdout:
                    problems.append(f"systemd does not know unit {self.instance.unit}: fix {where}.unit")
        elif self.kind == "docker":
            try:
                self._docker("status", 30.0, check=False)
            except BdrError as exc:
                problems.append(f"{exc.message}: fix {where}.container")
        directory = self.data_path()
        if not directory.is_dir():
            problems.append(f"the directory of {where}.db_path ({directory}) does not exist")
        elif not os.access(directory, os.W_OK | os.X_OK):
            problems.append(f"cannot write into {directory} (the database's directory): run bdr as Grafana's user "
                            "or root")
        else:
            free = shutil.disk_usage(directory).free
            if free < needs.free_bytes:
                problems.append(f"{directory} has {free} bytes free, the restored database needs {needs.free_bytes}")
        return problems

    def describe(self) -> dict[str, str]:
        facts = {"runtime": self.kind, "db_path": self.instance.db_path}
        if self.kind == "command":
            facts.update(start=command_line(self.instance.commands.get("start", ())),
                         stop=command_line(self.instance.commands.get("stop", ())))
        elif self.kind == "systemd":
            facts["unit"] = str(self.instance.unit)
        else:
            facts["container"] = str(self.instance.container)
        return facts


def _factory(kind: str) -> Any:
    def attach(instance: GrafanaInstance, launch: Launch | None = None, **_: Any) -> GrafanaService:
        return GrafanaService(instance, kind)

    return attach


def grafana_runtime(instance: GrafanaInstance) -> GrafanaService:
    """The runtime of ``instance`` as bdr.yaml says (``runtime:``)."""
    return GrafanaService(instance, instance.runtime)


for _kind in ("systemd", "command", "docker"):
    register_runtime(f"grafana/{_kind}", _factory(_kind))

__all__ = ["GrafanaService", "grafana_runtime"]
