"""Reading a Redis launch with redis-server's own semantics (no server needed; checked against one in
tests/integration/test_runtime_settings.py)."""

from __future__ import annotations

import os
from pathlib import Path

from bdr.runtime.settings import normalize, read_launch_config, split_command


def write(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_defaults_when_nothing_is_written(tmp_path: Path) -> None:
    config = read_launch_config(["redis-server"], str(tmp_path))
    assert config.settings(["port", "bind", "save", "appendonly", "dir", "pidfile", "unixsocketperm"]) == {
        "port": "6379", "bind": "* -::*", "save": "3600 1 300 100 60 10000", "appendonly": "no",
        "dir": os.path.realpath(tmp_path), "pidfile": "", "unixsocketperm": "0",
    }
    assert config.get("no-such-setting") is None


def test_the_last_directive_wins_and_the_command_line_comes_after_the_file(tmp_path: Path) -> None:
    conf = write(tmp_path / "redis.conf", "port 7000", "APPENDONLY yes", "port 7001", 'logfile "my log.log"')
    config = read_launch_config(["redis-server", "redis.conf", "--port", "7002", "--appendonly", "no"], str(tmp_path))
    assert config.config_file == str(conf)
    assert config.settings(["port", "appendonly", "logfile"]) == {"port": "7002", "appendonly": "no",
                                                                 "logfile": "my log.log"}


def test_save_lines_add_up_the_first_replaces_the_defaults_and_an_empty_one_clears(tmp_path: Path) -> None:
    write(tmp_path / "a.conf", "save 900 1", "save 300 10")
    assert read_launch_config(["redis-server", "a.conf"], str(tmp_path)).get("save") == "900 1 300 10"
    write(tmp_path / "b.conf", "save 900 1", 'save ""', "save 60 100")
    assert read_launch_config(["redis-server", "b.conf"], str(tmp_path)).get("save") == "60 100"
    assert read_launch_config(["redis-server", "a.conf", "--save", ""], str(tmp_path)).get("save") == ""
    assert read_launch_config(["redis-server", "--save", "900 1 60 5"], str(tmp_path)).get("save") == "900 1 60 5"


def test_dir_changes_the_directory_at_once_for_what_follows(tmp_path: Path) -> None:
    (tmp_path / "data" / "inner").mkdir(parents=True)
    write(tmp_path / "early.conf", "port 7100")
    write(tmp_path / "data" / "late.conf", "port 7200", "dbfilename late.rdb")
    write(tmp_path / "redis.conf", "include early.conf", "dir data", "include late.conf", "dir inner", "dir ..")
    config = read_launch_config(["redis-server", "redis.conf"], str(tmp_path))
    assert config.dir == os.path.realpath(tmp_path / "data")
    assert config.files == (str(tmp_path / "redis.conf"), str(tmp_path / "early.conf"),
                            str(tmp_path / "data" / "late.conf"))
    assert config.settings(["port", "dbfilename"]) == {"port": "7200", "dbfilename": "late.rdb"}
    assert config.path("dbfilename") == Path(os.path.realpath(tmp_path / "data")) / "late.rdb"


def test_an_include_glob_that_matches_nothing_is_no_error_a_missing_file_is(tmp_path: Path) -> None:
    write(tmp_path / "conf.d" / "b.conf", "port 7302")
    write(tmp_path / "conf.d" / "a.conf", "port 7301", "databases 4")
    write(tmp_path / "redis.conf", "include conf.d/*.conf", "include empty.d/*.conf")
    config = read_launch_config(["redis-server", "redis.conf"], str(tmp_path))
    assert config.problems == () and config.settings(["port", "databases"]) == {"port": "7302", "databases": "4"}
    write(tmp_path / "broken.conf", "include missing.conf", 'logfile "unbalanced')
    problems = read_launch_config(["redis-server", "broken.conf"], str(tmp_path)).problems
    assert problems[0].startswith(f"cannot read config file {tmp_path / 'missing.conf'} (included at ")
    assert "unbalanced quotes" in problems[1]


def test_daemonize_without_a_pidfile_writes_the_default_one(tmp_path: Path) -> None:
    assert read_launch_config(["redis-server", "--daemonize", "yes"], str(tmp_path)).get("pidfile") == \
        "/var/run/redis.pid"
    assert read_launch_config(["redis-server", "--daemonize", "yes", "--pidfile", "r.pid"],
                              str(tmp_path)).get("pidfile") == "r.pid"


def test_stdin_comes_after_the_file_and_before_the_options(tmp_path: Path) -> None:
    write(tmp_path / "redis.conf", "requirepass from-file", "port 7400")
    config = read_launch_config(["redis-server", "redis.conf", "--port", "7401", "-"], str(tmp_path),
                                {"requirepass": "from-stdin", "port": "7402"})
    assert config.settings(["requirepass", "port"]) == {"requirepass": "from-stdin", "port": "7401"}


def test_values_are_normalised_as_config_get_prints_them() -> None:
    assert normalize("unixsocketperm", "0770") == "770"
    assert normalize("appendonly", "YES") == "yes"
    assert normalize("maxmemory", "1gb") == str(1024**3)
    assert normalize("slaveof", "h 1") == "h 1"
    assert normalize("bind", "127.0.0.1   -::1") == "127.0.0.1 -::1"


def test_split_command() -> None:
    assert split_command(["redis-server", "r.conf", "--port", "1", "-"]) == ("r.conf", True, ["--port", "1"])
    assert split_command(["redis-server", "-", "--port", "1"]) == (None, True, ["--port", "1"])
    assert split_command(["redis-server", "--port", "1"]) == (None, False, ["--port", "1"])
