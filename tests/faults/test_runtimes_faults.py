"""bdr killed mid-restore of Redis run by a service manager, then ``--resume`` / ``--abort``.

The cycle of ``test_restore_killed.py`` (kill at ``stop``, in the middle of the ``swap``, at
``verify``; recover either way) on Redis the operator runs

- in a **Docker container** (``runtime: docker``, ``container: <name>``; host network, its
  data in a named volume);
- under **systemd**: Debian's own ``redis-server.service`` with systemd as PID 1 of a
  privileged container (``runtime: systemd``, ``systemctl: [docker, exec, <container>,
  systemctl]``, and where its files are on this host).

Afterwards Redis runs under its own manager again (the container's own process, the unit's
main process, ``systemctl is-active``), on its own port only, and ``--abort`` lost nothing
that was acknowledged. A Redis that systemd or supervisord runs, configured as ``runtime:
process``, is refused before anything is stopped, with the one line that says what to set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from bdr.runtime import procfs
from tests.docker_fixtures import DockerScope
from tests.faults.harness import (
    KILLED,
    AckWriter,
    backup_ok,
    bdr,
    journal_files,
    listening_addresses,
    step_started,
    work_dirs,
    write_config,
    write_instance_config,
)
from tests.operators import OperatorRedis, Operators, start_systemd_redis
from tests.operators import SystemdRedis as SystemdOperator

IN_DOCKER = [("stop", "abort"), ("swap", "resume"), ("verify", "abort")]
UNDER_SYSTEMD = [("stop", "resume"), ("swap", "abort"), ("verify", "resume")]
"""Each step once per runtime, each recovery at each step across the two (the whole matrix runs on processes in
``test_restore_killed.py``)."""


@dataclass
class Managed:
    """A Redis run by a service manager: how bdr.yaml names it, and what the operator checks of it."""

    handle: OperatorRedis
    """Its address, for clients and the writer (never closed through it: the manager owns the process)."""
    instance: dict[str, object]
    data_dir: Path
    under_manager: Callable[[], str]
    """Empty when Redis runs under its manager again, else what is wrong."""


def handle(port: int, base: Path) -> OperatorRedis:
    return OperatorRedis(way="managed", base=base, port=port, data_dir=base)


def listening_pid(port: int) -> int | None:
    pids = {p for listener in procfs.listeners(port) for p in listener.pids}
    return min(pids) if len(pids) == 1 else None


# --- docker --------------------------------------------------------------------------------------------


@pytest.fixture
def in_docker(docker_scope: DockerScope, redis_image: str, tmp_path: Path) -> Managed:
    from bdr.runtime.docker import spawn_redis_container

    server = spawn_redis_container(name="production", image=redis_image, network="host", appendonly=True,
                                   extra=["--appendfsync", "always"])
    port = int(server.instance.url.rsplit(":", 1)[1].split("/")[0])
    engine = docker_scope.client

    def under_manager() -> str:
        container = engine.containers.get(server.container_name)
        if container.status != "running":
            return f"container {server.container_name} is {container.status}"
        pid = listening_pid(port)
        main = int(container.attrs["State"]["Pid"])
        return "" if pid == main else f"port {port} is held by pid {pid}, the container's process is {main}"

    return Managed(handle(port, tmp_path), {"url": server.instance.url, "runtime": "docker",
                                            "container": server.container_name},
                   server.data_path(), under_manager)


# --- systemd --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def systemd_unit(docker_engine: docker.DockerClient) -> Iterator[SystemdOperator]:
    """Debian's redis-server.service under systemd as PID 1 of a container (skips with the reason when impossible)."""
    root = Path(tempfile.mkdtemp(prefix="bdr-systemd-"))
    found = start_systemd_redis(docker_engine, root, {"bdr.test": "1", "bdr.test.pid": str(os.getpid())})
    try:
        yield found
    finally:
        docker_engine.containers.get(found.container).remove(force=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def in_systemd(systemd_unit: SystemdOperator, tmp_path: Path) -> Managed:
    unit = systemd_unit
    if unit.systemctl_run("is-active", unit.unit).stdout.strip() != "active":
        unit.systemctl_run("start", unit.unit)
    unit.client().flushall()

    def under_manager() -> str:
        state = unit.systemctl_run("is-active", unit.unit).stdout.strip()
        if state != "active":
            return f"{unit.unit} is {state}"
        pid = listening_pid(unit.port)
        facts = procfs.read_process(pid) if pid is not None else None
        main = unit.show("MainPID").get("MainPID")
        if facts is None or str(facts.nspid) != main:
            return f"port {unit.port} is held by {facts.describe() if facts else pid}, the unit's main pid is {main}"
        return ""

    return Managed(handle(unit.port, tmp_path), {
        "url": unit.url, "runtime": "systemd", "unit": unit.unit, "systemctl": list(unit.systemctl),
        "data_dir": str(unit.data_dir), "config_file": str(unit.config_file),
    }, unit.data_dir, under_manager)


# --- the cycle -------------------------------------------------------------------------------------------


def kill_and_recover(managed: Managed, tmp_path: Path, step: str, recovery: str) -> None:
    op = managed.handle
    config = write_instance_config(tmp_path / "bdr.yaml", managed.instance)
    backed_up = op.fill(300)
    backup_ok(config)
    op.client().set("written:after:backup", "1")
    writer = AckWriter(op).start()
    failpoint = f"restore.{step}:kill" if step != "swap" else "restore.swap:kill@1"
    killed = bdr(config, "restore", "redis", "latest", "--yes", failpoints=failpoint)
    writer.stop()
    assert killed.code == KILLED, killed.output
    status = bdr(config, "status", "redis")
    assert status.code == 13 and "INTERRUPTED" in status.stdout, status.output

    recovered = bdr(config, "restore", "redis", f"--{recovery}")
    lost_after: float | None = None
    if recovery == "abort" and recovered.code == 1 and "would lose them" in recovered.stderr:
        recovered = bdr(config, "restore", "redis", "--abort", "--force")
        lost_after = step_started(tmp_path / "repo", "start")
    assert recovered.code == 0, recovered.output

    assert managed.under_manager() == ""
    assert listening_addresses(op.port) == {"127.0.0.1"}
    client = op.client()
    assert client.config_get("appendonly")["appendonly"] == "yes" and client.info("persistence")["aof_enabled"] == 1
    assert client.mget(list(backed_up)) == list(backed_up.values())
    if recovery == "resume":
        assert client.get("written:after:backup") is None, "the backup was not restored"
    else:
        assert client.get("written:after:backup") == b"1", "the data from before the restore is not back"
        assert writer.missing(lost_after) == [], "an acknowledged write was lost"
    assert work_dirs(managed.data_dir) == [] and journal_files(tmp_path / "repo") == []
    assert bdr(config, "backup", "redis").code == 0, "the instance is not usable again"


@pytest.mark.parametrize(("step", "recovery"), IN_DOCKER)
def test_killed_mid_restore_of_redis_in_a_container(in_docker: Managed, tmp_path: Path, step: str,
                                                    recovery: str) -> None:
    kill_and_recover(in_docker, tmp_path, step, recovery)


@pytest.mark.parametrize(("step", "recovery"), UNDER_SYSTEMD)
def test_killed_mid_restore_of_redis_under_systemd(in_systemd: Managed, tmp_path: Path, step: str,
                                                   recovery: str) -> None:
    kill_and_recover(in_systemd, tmp_path, step, recovery)


# --- the wrong runtime ----------------------------------------------------------------------------------


def refused_as_process(config: Path, fix: str) -> None:
    refused = bdr(config, "restore", "redis", "latest", "--yes")
    assert refused.code == 7, refused.output
    (line,) = refused.error_lines
    assert fix in line, line
    assert journal_files(config.parent / "repo") == []


def test_process_runtime_on_redis_under_systemd_is_refused_before_the_stop(in_systemd: Managed,
                                                                           tmp_path: Path) -> None:
    op = in_systemd.handle
    backup_ok(write_instance_config(tmp_path / "bdr.yaml", in_systemd.instance))
    data = op.fill(50)
    config = write_instance_config(tmp_path / "bdr.yaml", {"url": in_systemd.instance["url"], "runtime": "process"})
    pid = listening_pid(op.port)
    assert pid is not None
    refused_as_process(config, "set runtime: systemd, unit: redis-server.service and systemctl: [docker, exec, ")
    assert listening_pid(op.port) == pid and in_systemd.under_manager() == ""
    assert op.client().mget(list(data)) == list(data.values())


def test_process_runtime_on_redis_under_supervisord_is_refused_before_the_stop(operators: Operators,
                                                                               tmp_path: Path) -> None:
    op = operators.start("supervisord")
    assert op.supervisord is not None
    backup_ok(write_config(tmp_path / "bdr.yaml", op))
    data = op.fill(50)
    config = write_config(tmp_path / "bdr.yaml", op, runtime="process", commands={})
    pid = op.pid()
    refused_as_process(config, "set runtime: command for redis.production in bdr.yaml with commands: {start: "
                       "supervisorctl")
    assert op.pid() == pid and "RUNNING" in op.supervisord.run("status", "redis", check=False).stdout
    assert op.client().mget(list(data)) == list(data.values())
