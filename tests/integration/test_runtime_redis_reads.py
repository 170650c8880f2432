"""The settings bdr reads from a launch are the ones redis-server itself ends up with.

Each case writes config files that exercise one of Redis's reading rules (quoting, includes
before and after ``dir``, glob includes, the last directive winning, ``save`` lines adding
up, command-line options and stdin after the file), starts a real redis-server with that
argv in that directory, and compares ``CONFIG GET`` with
:func:`bdr.runtime.settings.read_launch_config`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bdr.runtime.process import redis_binary
from bdr.runtime.server import kill_group, popen_server, stdin_config
from bdr.runtime.settings import read_launch_config, running_settings
from bdr.util.host import free_port
from bdr.util.waiting import wait_for

NAMES = ("port", "bind", "dir", "dbfilename", "appendonly", "appenddirname", "appendfilename", "appendfsync", "save",
         "databases", "protected-mode", "unixsocket", "unixsocketperm", "logfile", "pidfile", "requirepass",
         "maxmemory", "loglevel")


def quoting_and_last_wins(root: Path, port: int) -> tuple[list[str], dict[str, str] | None]:
    (root / "redis.conf").write_text(
        f"port 1\nPORT {port}\nbind 127.0.0.1\n"
        'dbfilename "my dump.rdb"\nappendfilename \'only.aof\'\nlogfile "redis \\x41.log"\n'
        "save 900 1\nsave 300 10\nmaxmemory 2mb\nunixsocket redis.sock\nunixsocketperm 0770\nLogLevel WARNING\n"
    )
    return ["redis.conf"], None


def includes_around_dir(root: Path, port: int) -> tuple[list[str], dict[str, str] | None]:
    (root / "data").mkdir()
    (root / "conf.d").mkdir()
    (root / "conf.d" / "10-port.conf").write_text(f"port {port}\n")
    (root / "conf.d" / "20-save.conf").write_text('save ""\nsave 60 1000\n')
    (root / "data" / "late.conf").write_text("databases 4\nappendonly yes\nappenddirname aof\n")
    (root / "etc.conf").write_text("bind 127.0.0.1 -::1\ninclude conf.d/*.conf\ndir data\ninclude late.conf\n")
    return ["etc.conf", "--appendfsync", "always", "--protected-mode", "no"], None


def options_and_stdin(root: Path, port: int) -> tuple[list[str], dict[str, str] | None]:
    (root / "base.conf").write_text(f"port {port}\nbind 127.0.0.1\nrequirepass from-the-file\ndatabases 32\n")
    return ["base.conf", "--databases", "8", "--save", "", "--dir", "./", "-"], {"requirepass": 'p "w" d'}


CASES: dict[str, Callable[[Path, int], tuple[list[str], dict[str, str] | None]]] = {
    "quoting and the last directive": quoting_and_last_wins,
    "includes around dir": includes_around_dir,
    "options and stdin": options_and_stdin,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_settings_read_from_the_launch_are_the_running_ones(case: str, tmp_path: Path) -> None:
    port = free_port()
    args, stdin = CASES[case](tmp_path, port)
    argv = [redis_binary(), *args]
    with (tmp_path / "out.log").open("wb") as out:
        proc = popen_server(argv, cwd=tmp_path, log=out, stdin=stdin_config(stdin) if stdin else None)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, password=(stdin or {}).get("requirepass"),
                             socket_timeout=5, retry=Retry(NoBackoff(), 0))

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return proc.poll() is not None

        assert wait_for(up, 10.0) and proc.poll() is None, (tmp_path / "out.log").read_text()[-600:]
        running = running_settings(client, NAMES)
        read = read_launch_config(argv, str(tmp_path), stdin).settings(NAMES)
        assert read == running
        assert read["dir"] == os.path.realpath(tmp_path / "data" if case == "includes around dir" else tmp_path)
    finally:
        kill_group(proc)


def test_redis_accepts_its_password_on_stdin_and_never_shows_it_in_argv(tmp_path: Path) -> None:
    port = free_port()
    argv = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    with (tmp_path / "out.log").open("wb") as out:
        proc = popen_server(argv, cwd=tmp_path, log=out, stdin=stdin_config({"requirepass": "s3cret"}))
    try:
        client = redis.Redis(host="127.0.0.1", port=port, password="s3cret", socket_timeout=5,
                             retry=Retry(NoBackoff(), 0))
        assert wait_for(lambda: _pings(client), 10.0)
        assert "s3cret" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, retry=Retry(NoBackoff(), 0)).ping()
    finally:
        kill_group(proc)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
