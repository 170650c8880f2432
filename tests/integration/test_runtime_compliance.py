"""One contract every runtime passes, against Redis started the ordinary ways (not through bdr).

Subjects: the process runtime attached to Redis started from a shell (relative config,
``dir ./``), from command-line arguments only, daemonized, with a password; the process
runtime of a Redis bdr spawned; the command runtime driving a real supervisord; the
docker runtime (when an engine runs); the systemd runtime driving Debian's own
redis-server.service under systemd as PID 1 of a container (when that can run here).

The contract: running/ready/stop/start/kill (a supervised Redis stays stopped after a
stop, and comes back by itself after a kill: the race bdr must not run), data_path, a
launch that survives ``to_dict``/``from_dict`` and starts the instance again on its own
address with its data (and only there) from the record alone, settings that agree up and
down, and a clean preflight. Then what preflight must find: an unreadable config file, a
data directory with no room, a port taken by another process, a supervised instance.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from bdr.clients import redis_address
from bdr.config import RedisInstance
from bdr.errors import StartFailed, Supervised
from bdr.runtime import Launch, Needs, RedisRuntime, procfs, redis_runtime
from bdr.runtime.process import spawn_redis
from bdr.util.waiting import wait_for
from tests.operators import Operators, operators, start_systemd_redis
from tests.operators import SystemdRedis as SystemdOperator

__all__ = ["operators"]  # the fixture, imported for pytest

PROCESS_WAYS = ("shell", "args", "daemon", "password", "user")
KINDS = (*(f"process:{w}" for w in PROCESS_WAYS), "process:spawned", "command:supervisord", "docker", "systemd")
SETTINGS = ("port", "bind", "dir", "dbfilename", "appendonly", "appenddirname", "appendfilename", "appendfsync",
            "save", "databases", "protected-mode", "unixsocket", "logfile", "pidfile", "aclfile", "cluster-enabled")
STAYS_STOPPED = 1.5
"""Seconds a supervised Redis must stay down after a stop (supervisord and systemd restart within 1 s)."""


@dataclass
class Subject:
    """A running Redis with data, and the runtime bdr drives it with."""

    kind: str
    runtime: RedisRuntime
    port: int
    data: dict[bytes, bytes]
    restarts_itself: bool = False

    def client(self) -> redis.Redis:
        return self.runtime.client(timeout=5.0, retries=0)

    def assert_data(self) -> None:
        assert self.client().mget(list(self.data)) == list(self.data.values())


def fill(client: redis.Redis, keys: int = 40) -> dict[bytes, bytes]:
    data = {f"user:{i}".encode(): secrets.token_hex(8).encode() for i in range(keys)}
    client.flushall()
    client.mset(data)  # type: ignore[arg-type]
    return data


def bare(instance: RedisInstance) -> RedisInstance:
    """The instance as bdr.yaml has it when only the journal knows how it is launched."""
    return dataclasses.replace(instance, config_file=None, data_dir=None, start_args=(), container=None, unit=None,
                               commands={})


def listening(pid: int) -> set[tuple[str, int]]:
    """Every (address, port) process ``pid`` listens on."""
    sockets = procfs.listening_sockets()
    owners = procfs.socket_owners({inode for _, _, inode in sockets})
    return {(address, port) for address, port, inode in sockets if pid in owners.get(inode, set())}


@pytest.fixture(scope="module")
def systemd_redis(request: pytest.FixtureRequest) -> Iterator[SystemdOperator]:
    """Debian's redis-server.service under the host's systemd as PID 1 of a container (skips when impossible)."""
    engine = request.getfixturevalue("docker_engine")
    root = Path(tempfile.mkdtemp(prefix="bdr-systemd-"))
    found = start_systemd_redis(engine, root, {"bdr.test": "1", "bdr.test.pid": str(os.getpid())})
    try:
        yield found
    finally:
        engine.containers.get(found.container).remove(force=True)
        shutil.rmtree(root, ignore_errors=True)


def _subject(kind: str, request: pytest.FixtureRequest, ops: Operators, tmp_path: Path) -> Subject:
    if kind.startswith("process:") and kind != "process:spawned":
        op = ops.start(kind.split(":")[1])
        runtime = redis_runtime(op.instance())
        return Subject(kind, runtime, op.port, fill(op.client()))
    if kind == "process:spawned":
        server = spawn_redis(tmp_path / "spawned" / "data", name="production", appendonly=True,
                             extra=["--appendfsync", "always"])
        request.addfinalizer(lambda: server.kill() if server.running() else None)
        return Subject(kind, server, server.address()[1], fill(server.client()))
    if kind == "command:supervisord":
        op = ops.start("supervisord")
        return Subject(kind, redis_runtime(op.instance()), op.port, fill(op.client()), restarts_itself=True)
    if kind == "docker":
        request.getfixturevalue("docker_scope")
        image = request.getfixturevalue("redis_image")
        from bdr.runtime.docker import spawn_redis_container

        container = spawn_redis_container(name="production", image=image, network="host", appendonly=True,
                                          extra=["--appendfsync", "always"])
        return Subject(kind, container, redis_address(container.url())[1], fill(container.client()))
    if kind == "systemd":
        unit: SystemdOperator = request.getfixturevalue("systemd_redis")
        if unit.show("ActiveState").get("ActiveState") != "active":
            unit.systemctl_run("start", unit.unit)
        runtime = redis_runtime(unit.instance())
        assert wait_for(runtime.ready, 10.0)
        return Subject(kind, runtime, unit.port, fill(unit.client()), restarts_itself=True)
    raise ValueError(kind)


@pytest.fixture(params=KINDS)
def subject(request: pytest.FixtureRequest, operators: Operators, tmp_path: Path) -> Subject:
    return _subject(request.param, request, operators, tmp_path)


# --- the contract ---------------------------------------------------------------------------------------


def test_stop_start_kill(subject: Subject) -> None:
    runtime = subject.runtime
    assert runtime.kind == subject.kind.split(":")[0]
    assert runtime.running() and runtime.ready()
    assert (runtime.data_path() / "appendonlydir").is_dir()

    runtime.stop()
    assert not runtime.running() and not runtime.ready()
    assert procfs.port_free(subject.port)
    if subject.restarts_itself:  # a stop through the supervisor is not undone by it
        time.sleep(STAYS_STOPPED)
        assert procfs.port_free(subject.port) and not runtime.running()

    runtime.start()
    assert runtime.ready()
    subject.assert_data()

    pid = procfs.listeners(subject.port)[0].pids
    runtime.kill()
    if subject.restarts_itself:  # the supervisor starts it again at once: what bdr would race against
        assert wait_for(runtime.ready, 15.0), "the supervisor did not restart the killed Redis"
        assert procfs.listeners(subject.port)[0].pids != pid
    else:
        assert not runtime.ready()
        runtime.start()
    subject.assert_data()  # appendfsync always: the AOF was written before each reply, SIGKILL loses nothing


def test_launch_alone_starts_it_again_where_it_was(subject: Subject) -> None:
    launch = subject.runtime.launch()
    assert launch.runtime == subject.runtime.kind
    record = json.loads(json.dumps(launch.to_dict()))
    assert Launch.from_dict(record) == launch
    assert "requirepass" not in json.dumps(record) or record["stdin_settings"] == ["requirepass"]

    subject.runtime.stop()
    again = redis_runtime(bare(subject.runtime.instance), launch=Launch.from_dict(record))
    assert again.kind == subject.runtime.kind
    again.start()
    assert again.ready()
    subject.assert_data()
    holders = procfs.listeners(subject.port)
    assert len(holders) == 1 and len(holders[0].pids) == 1
    assert listening(holders[0].pids[0]) == {("127.0.0.1", subject.port)}


def test_settings_agree_up_and_down(subject: Subject) -> None:
    up = subject.runtime.settings(SETTINGS)
    assert set(up) == set(SETTINGS)
    assert up["port"] == str(subject.port)
    subject.runtime.stop()
    down = subject.runtime.settings(SETTINGS)
    assert down == up
    subject.runtime.start()


def test_preflight_of_a_healthy_instance_finds_nothing(subject: Subject) -> None:
    assert subject.runtime.preflight(Needs(free_bytes=1024)) == []
    subject.assert_data()  # the dry start touched nothing


# --- what preflight must find -----------------------------------------------------------------------------


def test_preflight_finds_a_config_file_redis_cannot_read(operators: Operators) -> None:
    op = operators.start("user")
    assert op.config_file is not None
    runtime = redis_runtime(op.instance())
    assert runtime.preflight(Needs()) == []
    op.config_file.chmod(0o600)  # root's file now: bdr reads it, Redis (as redis) could not start again
    problems = runtime.preflight(Needs())
    assert any(f"config file {op.config_file} is not readable by redis" in p for p in problems), problems
    assert runtime.ready()


def test_preflight_finds_a_data_directory_with_no_room(operators: Operators) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    small = Path(tempfile.mkdtemp(prefix="bdr-small-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        small.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        op = operators.start("shell", data_dir=small)
        runtime = redis_runtime(op.instance())
        assert runtime.preflight(Needs(free_bytes=1024 * 1024)) == []
        problems = runtime.preflight(Needs(free_bytes=64 * 1024 * 1024))
        assert [p for p in problems if p.startswith(f"no room in {small}: ")] == [p for p in problems], problems
        assert "MiB free, the restore needs 64.0 MiB" in problems[0]
        op.close()
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
        small.rmdir()


def _listener(port: int) -> subprocess.Popen[bytes]:
    """Another program on the port: it accepts connections and closes them at once."""
    code = ("import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
            f"s.bind(('127.0.0.1',{port}));s.listen();print('ok',flush=True)\nwhile True: s.accept()[0].close()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ok"
    return proc


@pytest.mark.parametrize("way", ["shell", "supervisord"])
def test_preflight_finds_the_port_taken_by_another_process(operators: Operators, way: str) -> None:
    op = operators.start(way)
    op.fill()
    runtime = redis_runtime(op.instance())
    runtime.launch()  # what the journal records before the stop
    runtime.stop()
    squatter = _listener(op.port)
    try:
        problems = runtime.preflight(Needs())
        assert any(f"port {op.port} on 127.0.0.1 is held by pid {squatter.pid} (" in p for p in problems), problems
        if way == "shell":
            with pytest.raises(StartFailed, match="Address already in use"):
                runtime.start(timeout=10)
            assert {p for listener in procfs.listeners(op.port) for p in listener.pids} == {squatter.pid}
    finally:
        squatter.kill()
        squatter.wait()


SUPERVISED = {
    "cgroup": ("belongs to systemd unit bdr-test-", "set runtime: systemd and unit: bdr-test-"),
    "supervisord": ("is run by supervisord program redis (autorestart=true)", "set runtime: command for "
                    "redis.production in bdr.yaml with commands: {start: supervisorctl -c "),
}


@pytest.mark.parametrize("way", sorted(SUPERVISED))
def test_a_supervised_redis_is_refused_before_anything_is_stopped(operators: Operators, way: str) -> None:
    op = operators.start(way)
    op.fill()
    runtime = redis_runtime(op.instance(runtime="process", commands={}))
    pid = op.pid()
    problems = runtime.preflight(Needs())
    what, fix = SUPERVISED[way]
    found = [p for p in problems if p.startswith(f"Redis production (pid {pid}) {what}")]
    assert len(found) == 1 and fix in found[0], problems
    with pytest.raises(Supervised, match=what.replace("(", r"\(").replace(")", r"\)")) as info:
        runtime.stop()
    assert info.value.exit_code == 7
    assert op.pid() == pid and op.client().dbsize() == 50


def test_redis_under_systemd_in_a_container_is_refused_by_the_process_runtime(systemd_redis: SystemdOperator
                                                                              ) -> None:
    runtime = redis_runtime(systemd_redis.instance(runtime="process", unit=None, systemctl=("systemctl",)))
    assert wait_for(runtime.ready, 10.0)
    problems = runtime.preflight(Needs())
    assert any(f"belongs to systemd unit redis-server.service (inside container {systemd_redis.container}): set "
               f"runtime: systemd, unit: redis-server.service and systemctl: [docker, exec, {systemd_redis.container}, "
               "systemctl]" in p for p in problems), problems
    with pytest.raises(Supervised):
        runtime.stop()
    assert runtime.ready()


def test_systemd_restarts_a_redis_killed_behind_its_back(systemd_redis: SystemdOperator) -> None:
    """kill -9 of the main process (an OOM kill): Restart=always starts it again, loading its data."""
    runtime = redis_runtime(systemd_redis.instance())
    runtime.start()
    data = fill(runtime.client())
    restarts = int(systemd_redis.show("NRestarts")["NRestarts"])
    pid = systemd_redis.pid()
    assert pid is not None
    os.kill(pid, 9)
    assert wait_for(lambda: systemd_redis.pid() not in (None, pid) and runtime.ready(), 15.0)
    assert int(systemd_redis.show("NRestarts")["NRestarts"]) == restarts + 1
    assert runtime.client().mget(list(data)) == list(data.values())


def test_systemd_preflight_finds_what_the_unit_cannot_read(systemd_redis: SystemdOperator) -> None:
    runtime = redis_runtime(systemd_redis.instance())
    runtime.start()
    systemd_redis.config_file.chmod(0o600)
    try:
        problems = runtime.preflight(Needs())
    finally:
        systemd_redis.config_file.chmod(0o644)
    assert any("would not start again: a dry start of `/usr/bin/redis-server /etc/redis/redis.conf" in p
               and "can't open config file" in p for p in problems), problems
    assert runtime.preflight(Needs()) == []
