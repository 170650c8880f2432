"""The process runtime reads how an operator launched Redis and starts it again exactly that way.

Real redis-server processes started through a shell (``tests.operators``), never through
bdr; bdr then stops and starts them. What must hold: the rebuilt argv (the binary under a
name that runs it as redis-server, the absolute config file, only the settings that differ
from it), the working directory, ``--daemonize no`` in a session of its own, a password
only ever on stdin, a replaced binary, and the refusals: no launch known, a launch on
another address, no arguments at all; a failed start leaves no process behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from bdr.config import RedisInstance
from bdr.errors import NoLaunch, ServiceTimeout, StartFailed, UnsafeLaunch
from bdr.runtime import Launch, Needs, procfs, redis_runtime
from bdr.runtime.process import RedisProcess
from bdr.util.host import free_port
from tests.operators import Operators, operators

__all__ = ["operators"]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def process(op_instance: RedisInstance) -> RedisProcess:
    runtime = redis_runtime(op_instance)
    assert isinstance(runtime, RedisProcess)
    return runtime


def restart(runtime: RedisProcess) -> int:
    """Stop and start it; the new pid."""
    runtime.stop()
    runtime.start(timeout=10)
    pid = runtime.pid()
    assert pid is not None
    return pid


def test_a_shell_started_redis_comes_back_from_its_relative_config(operators: Operators) -> None:
    op = operators.start("shell")
    data = op.fill()
    facts = procfs.read_process(op.pid() or 0)
    assert facts is not None and facts.cmdline == (f"redis-server 127.0.0.1:{op.port}",)  # the title Redis set
    assert not (op.base / "redis-server").exists()  # what INFO executable names

    runtime = process(op.instance())
    launch = runtime.launch()
    assert launch.argv == (REDIS_SERVER, str(op.config_file))  # nothing differs from the file
    assert launch.cwd == str(op.base)
    assert "argv rebuilt" in runtime.describe()["notes"]

    pid = restart(runtime)
    assert pid != facts.pid
    assert op.client().mget(list(data)) == list(data.values())
    info = op.client().info("server")
    assert info["config_file"] == str(op.config_file)
    assert op.client().config_get("dir")["dir"] == str(op.base)
    assert os.getsid(pid) == pid  # its own session: bdr's terminal going away does not take it down
    assert (op.base / "redis.log").is_file()  # logfile redis.log, relative to dir ./


def test_command_line_only_redis_keeps_every_setting_that_places_it(operators: Operators) -> None:
    op = operators.start("args")
    data = op.fill()
    launch = process(op.instance()).launch()
    argv = list(launch.argv)
    assert argv[0] == REDIS_SERVER and not argv[1].startswith("/")  # no config file: options only
    pairs = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert pairs == {"--port": str(op.port), "--bind": "127.0.0.1", "--dir": str(op.base / "data"), "--save": "",
                     "--appendonly": "yes", "--appendfsync": "always"}

    runtime = process(op.instance())
    restart(runtime)
    assert op.client().mget(list(data)) == list(data.values())
    assert op.client().config_get("appendfsync") == {"appendfsync": "always"}


def test_a_daemonized_redis_is_started_in_the_foreground_of_its_own_session(operators: Operators) -> None:
    op = operators.start("daemon")
    op.fill()
    runtime = process(op.instance())
    launch = runtime.launch()
    assert launch.argv[-2:] == ("--daemonize", "no")
    pid = restart(runtime)
    assert (op.base / "redis.pid").read_text().strip() == str(pid)  # its pidfile, as before
    assert os.getsid(pid) == pid
    log = Path(op.instance().log_file or "")
    assert log.read_text().count("--- bdr starts Redis production") == 1  # one log per instance, appended
    restart(runtime)
    assert log.read_text().count("--- bdr starts Redis production") == 2


def test_a_config_set_never_written_to_the_file_survives_the_restart(operators: Operators) -> None:
    op = operators.start("shell")
    op.client().config_set("appendfsync", "everysec")
    op.client().config_set("save", "900 1")
    launch = process(op.instance()).launch()
    assert launch.argv[2:] == ("--appendfsync", "everysec", "--save", "900 1")
    runtime = process(op.instance())
    restart(runtime)
    assert op.client().config_get("appendfsync") == {"appendfsync": "everysec"}
    assert op.client().config_get("save") == {"save": "900 1"}


def test_a_password_given_on_the_command_line_only_ever_goes_to_stdin(operators: Operators,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "op-secret-on-the-command-line"
    op = operators.start("shell", args=f"--requirepass {secret} --set-proc-title no", password=secret)
    op.fill()
    facts = procfs.read_process(op.pid() or 0)
    assert facts is not None and facts.cmdline[:2] == ("redis-server", "redis.conf")  # set-proc-title no: real argv

    unset = process(op.instance(password_env="BDR_TEST_OP_PASSWORD"))
    assert unset.preflight(Needs()) == [f"Redis at 127.0.0.1:{op.port} requires a password: $BDR_TEST_OP_PASSWORD "
                                        "(password_env of redis.production in bdr.yaml) is not set"]
    monkeypatch.setenv("BDR_TEST_OP_PASSWORD", "not-the-password")
    wrong = process(op.instance(password_env="BDR_TEST_OP_PASSWORD"))
    assert [p for p in wrong.preflight(Needs()) if "refused the credentials" in p]

    monkeypatch.setenv("BDR_TEST_OP_PASSWORD", secret)
    runtime = process(op.instance(password_env="BDR_TEST_OP_PASSWORD"))
    assert runtime.preflight(Needs()) == []
    launch = runtime.launch()
    assert launch.argv == (REDIS_SERVER, "redis.conf", "--set-proc-title", "no")
    assert launch.stdin_settings == ("requirepass",)
    assert secret not in json.dumps(launch.to_dict()) and secret not in launch.describe()
    pid = restart(runtime)
    assert secret not in " ".join(procfs.read_process(pid).cmdline)  # type: ignore[union-attr]
    assert op.client().dbsize() == 50


def test_a_binary_replaced_since_the_start_is_used_again_and_said(operators: Operators) -> None:
    op = operators.start("shell")
    binary = op.base / "bin" / "redis-server"
    binary.parent.mkdir()
    shutil.copy2(os.path.realpath(REDIS_SERVER), binary)
    process(op.instance()).stop()
    os.system(f"cd {op.base} && {binary} redis.conf >> out.log 2>&1 &")  # an operator's shell
    op.wait_up()
    fresh = op.base / "bin" / "redis-server.new"
    shutil.copy2(binary, fresh)
    fresh.replace(binary)  # an upgrade: a new file at the same path
    facts = procfs.read_process(op.pid() or 0)
    assert facts is not None and facts.exe_deleted and facts.exe == str(binary)

    runtime = process(op.instance())
    assert runtime.launch().argv[0] == str(binary)
    assert "was replaced since pid" in runtime.describe()["notes"]
    assert runtime.preflight(Needs()) == []
    restart(runtime)
    assert not procfs.read_process(runtime.pid() or 0).exe_deleted  # type: ignore[union-attr]


def test_a_redis_bdr_never_saw_run_is_not_started_without_a_launch(tmp_path: Path) -> None:
    port = free_port()
    before = procfs.listeners(6379)
    runtime = process(RedisInstance(name="production", url=f"redis://127.0.0.1:{port}/0",
                                    log_file=str(tmp_path / "log")))
    with pytest.raises(NoLaunch, match="Redis production is not running and bdr does not know how to start it: set "
                       "config_file") as info:
        runtime.start()
    assert info.value.exit_code == 3
    assert [p for p in runtime.preflight(Needs()) if "does not know how to start it" in p]
    assert procfs.port_free(port) and procfs.listeners(6379) == before


def test_a_launch_on_another_address_or_with_no_arguments_is_refused(tmp_path: Path) -> None:
    port, other = free_port(), free_port()
    instance = RedisInstance(name="production", url=f"redis://127.0.0.1:{port}/0", log_file=str(tmp_path / "log"))
    elsewhere = Launch(runtime="process", data_dir=str(tmp_path), argv=(REDIS_SERVER, "--port", str(other),
                                                                         "--bind", "127.0.0.1"))
    with pytest.raises(UnsafeLaunch, match=f"it would listen on port {other}, and bdr.yaml says"):
        redis_runtime(instance, launch=elsewhere).start()
    elsewhere = Launch(runtime="process", data_dir=str(tmp_path), argv=(REDIS_SERVER, "--port", str(port),
                                                                         "--bind", "127.0.0.2"))
    with pytest.raises(UnsafeLaunch, match=r"it would listen on 127\.0\.0\.2, not on 127\.0\.0\.1"):
        redis_runtime(instance, launch=elsewhere).start()
    bare = Launch(runtime="process", data_dir=str(tmp_path), argv=(REDIS_SERVER,))
    with pytest.raises(UnsafeLaunch, match="no config file and no arguments"):
        redis_runtime(instance, launch=bare).start()
    assert procfs.port_free(port) and procfs.port_free(other)


def test_a_start_that_fails_or_times_out_leaves_no_process(tmp_path: Path) -> None:
    port = free_port()
    instance = RedisInstance(name="production", url=f"redis://127.0.0.1:{port}/0", log_file=str(tmp_path / "log"))
    bad = tmp_path / "bad.conf"
    bad.write_text(f"port {port}\nbind 127.0.0.1\nno-such-directive yes\n")
    with pytest.raises(StartFailed, match=r"exited with code 1: .*Bad directive or wrong number of arguments"):
        redis_runtime(instance, launch=Launch(runtime="process", data_dir=str(tmp_path),
                                              argv=(REDIS_SERVER, str(bad)))).start(timeout=10)

    # A "server" that never answers, and forks: on the timeout its whole process group is killed.
    hang = tmp_path / "redis-server"
    hang.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {tmp_path}/child\nexec sleep 300\n")
    hang.chmod(0o755)
    runtime = redis_runtime(instance, launch=Launch(runtime="process", data_dir=str(tmp_path),
                                                    argv=(str(hang), "--port", str(port), "--bind", "127.0.0.1")))
    with pytest.raises(ServiceTimeout, match="did not become ready within 1s"):
        runtime.start(timeout=1)
    assert isinstance(runtime, RedisProcess) and runtime._proc is not None
    child = int((tmp_path / "child").read_text())
    time.sleep(0.05)
    assert not procfs.alive(runtime._proc.pid) and not procfs.alive(child)


def test_stop_waits_until_the_port_is_free_and_sigterm_when_shutdown_is_refused(operators: Operators) -> None:
    op = operators.start("shell")
    op.fill()
    op.client().config_set("save", "3600 1")  # a save point: a plain SIGTERM would write dump.rdb
    op.client().execute_command("ACL", "SETUSER", "default", "-shutdown")  # SHUTDOWN refused (NOPERM)
    runtime = process(op.instance())
    pid = op.pid()
    runtime.stop()
    assert pid is not None and not procfs.alive(pid) and procfs.port_free(op.port)
    assert not (op.base / "dump.rdb").exists()  # SIGTERM after shutdown-on-sigterm nosave: nothing saved
    runtime.start(timeout=10)
    assert op.client().dbsize() == 50  # from the AOF
    runtime.kill()
    assert not runtime.running() and procfs.port_free(op.port)


def test_a_redis_run_as_the_redis_user_is_started_again_as_that_user(operators: Operators) -> None:
    op = operators.start("user")
    before = procfs.read_process(op.pid() or 0)
    assert before is not None and before.uid != 0
    runtime = process(op.instance())
    assert runtime.launch().uid == before.uid
    pid = restart(runtime)
    after = procfs.read_process(pid)
    assert after is not None and (after.uid, after.gid) == (before.uid, before.gid)
    op.client().set("written-after-the-restart", "1")  # its data directory is still its own
    op.client().bgrewriteaof()
