"""Launch records, reading ExecStart and cgroups, the systemctl prefix: the pure parts of the runtimes."""

from __future__ import annotations

import json

from bdr.runtime import Launch
from bdr.runtime.launch import title_rewritten
from bdr.runtime.procfs import ProcessFacts
from bdr.runtime.server import exec_argv, quote_config, stdin_config
from bdr.runtime.supervision import Supervisor, container_of_cgroup, unit_of_cgroup
from bdr.runtime.systemd import exec_start_argv, runner_of

CONTAINER = "4d5c25ffb0b6a9b994d8f7e691d1c525318fa00ec76f5e8028e2dd3d741b4d28"


def test_a_launch_survives_json() -> None:
    launch = Launch(runtime="process", data_dir="/var/lib/redis", argv=("/usr/bin/redis-server", "/etc/r.conf",
                    "--daemonize", "no"), cwd="/srv", stdin_settings=("requirepass",), pid=812, uid=102, gid=105,
                    groups=(105, 4))
    assert Launch.from_dict(json.loads(json.dumps(launch.to_dict()))) == launch
    assert launch.describe() == "/usr/bin/redis-server /etc/r.conf --daemonize no - (cwd /srv)"
    command = Launch(runtime="command", data_dir="", commands={"start": ("supervisorctl", "start", "redis")})
    assert Launch.from_dict(json.loads(json.dumps(command.to_dict()))) == command
    assert command.describe() == "supervisorctl start redis"


def test_a_process_title_is_told_from_a_real_argv() -> None:
    assert title_rewritten(ProcessFacts(pid=1, cmdline=("redis-server 127.0.0.1:6379",)))
    assert title_rewritten(ProcessFacts(pid=1, cmdline=("/usr/bin/redis-server *:6379",)))
    assert not title_rewritten(ProcessFacts(pid=1, cmdline=("redis-server", "redis.conf")))
    assert not title_rewritten(ProcessFacts(pid=1, cmdline=("/usr/bin/redis-server",)))


def test_debian_s_redis_check_rdb_binary_runs_as_redis_server() -> None:
    assert exec_argv(["/usr/bin/redis-check-rdb", "r.conf"]) == ("/usr/bin/redis-check-rdb", ["redis-server", "r.conf"])
    assert exec_argv(["/opt/redis-server", "r.conf"]) == ("/opt/redis-server", ["/opt/redis-server", "r.conf"])


def test_stdin_config_quotes_like_redis_unquotes() -> None:
    assert quote_config('a "b" \\ c') == '"a \\"b\\" \\\\ c"'
    assert stdin_config({"requirepass": "p w"}) == 'requirepass "p w"\n'


def test_exec_start_of_systemctl_show() -> None:
    value = ("{ path=/usr/bin/redis-server ; argv[]=/usr/bin/redis-server /etc/redis/redis.conf --supervised systemd "
             "--daemonize no ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; "
             "status=0/0 }")
    assert exec_start_argv(value) == ["/usr/bin/redis-server", "/etc/redis/redis.conf", "--supervised", "systemd",
                                      "--daemonize", "no"]
    assert exec_start_argv("") == []


def test_the_systemctl_prefix_tells_where_commands_run() -> None:
    assert runner_of(("systemctl",)) == ()
    assert runner_of(("systemctl", "--user")) == ()
    assert runner_of(("docker", "exec", "c", "systemctl")) == ("docker", "exec", "c")
    assert runner_of(("systemctl", "-M", "machine")) is None
    assert runner_of(("systemctl", "--host=root@db1")) is None


def test_cgroup_paths_name_the_unit_and_the_container() -> None:
    assert unit_of_cgroup("/system.slice/redis-server.service") == ("redis-server.service", "/system.slice")
    assert unit_of_cgroup("/user.slice/user-1000.slice/session-3.scope") == (None, "")
    assert unit_of_cgroup("/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope") == (None, "")
    assert unit_of_cgroup(f"/docker/{CONTAINER}/system.slice/redis-server.service") == (
        "redis-server.service", f"/docker/{CONTAINER}/system.slice")
    assert container_of_cgroup(f"/docker/{CONTAINER}") == CONTAINER
    assert container_of_cgroup(f"/system.slice/docker-{CONTAINER}.scope") == CONTAINER
    assert container_of_cgroup("/system.slice/redis-server.service") is None


def test_a_supervisor_says_what_to_set_in_one_line() -> None:
    found = Supervisor("systemd", "redis-server.service", detail="Restart=always",
                       config="set runtime: systemd and unit: redis-server.service for redis.{instance} in bdr.yaml")
    assert found.message("production", 812) == (
        "Redis production (pid 812) belongs to systemd unit redis-server.service (Restart=always): set runtime: "
        "systemd and unit: redis-server.service for redis.production in bdr.yaml")
