"""One redis.conf parser: lint (a checkout) and the runtime (a launch) read quoting and includes alike."""

from __future__ import annotations

import os
from pathlib import Path

from bdr.formats.compose import _conf_has_password
from bdr.formats.redis_conf import Directive, parse_redis_conf, read_directives
from bdr.runtime.settings import read_launch_config

QUOTED = [
    'logfile "log dir/redis log.log"',
    "requirepass 'it''s'",
    'masteruser "\\x41dmin"',
    'include "conf d/extra.conf"',
    "appendonly yes\r",
]


def write(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_lint_and_runtime_read_quotes_escapes_and_a_quoted_include_the_same(tmp_path: Path) -> None:
    write(tmp_path / "conf d" / "extra.conf", "  dbfilename   'my dump.rdb'  ", "# port 1")
    conf = write(tmp_path / "redis.conf", *QUOTED[:1], 'requirepass "s3 cret"', *QUOTED[2:])
    linted = parse_redis_conf(conf)
    assert linted.problems == ()
    assert [(d.name, d.args) for d in linted.directives] == [
        ("logfile", ("log dir/redis log.log",)), ("requirepass", ("s3 cret",)), ("masteruser", ("Admin",)),
        ("dbfilename", ("my dump.rdb",)), ("appendonly", ("yes",)),
    ]
    launched = read_launch_config(["redis-server", "redis.conf"], str(tmp_path))
    assert launched.problems == ()
    assert launched.settings(["logfile", "masteruser", "dbfilename", "appendonly"]) == {
        "logfile": "log dir/redis log.log", "masteruser": "Admin", "dbfilename": "my dump.rdb", "appendonly": "yes"}
    assert launched.files == (str(conf), str(tmp_path / "conf d" / "extra.conf"))


def test_a_line_redis_refuses_is_refused_by_both(tmp_path: Path) -> None:
    conf = write(tmp_path / "redis.conf", QUOTED[1], "port 7001")
    [problem] = parse_redis_conf(conf).problems
    assert problem.line == 1 and problem.fatal and "closing quote" in problem.detail
    launched = read_launch_config(["redis-server", "redis.conf"], str(tmp_path))
    assert launched.problems == (f"{conf}:1: closing quote must be followed by a space; redis-server refuses "
                                 "this line",)
    assert launched.get("port") == "7001"


def test_an_include_is_located_when_it_is_reached(tmp_path: Path) -> None:
    write(tmp_path / "data" / "late.conf", "port 7200")
    conf = write(tmp_path / "redis.conf", "dir data", "include late.conf")
    seen: list[str] = []

    def locate(include: Directive) -> list[Path]:
        seen.append(include.args[0])
        return [tmp_path / "data" / include.args[0]]

    found = read_directives(conf, locate)
    first = next(found)
    assert isinstance(first, Directive) and first.name == "dir" and seen == []
    assert [d.name for d in found if isinstance(d, Directive)] == ["port"] and seen == ["late.conf"]


def test_an_include_loop_ends_as_a_problem_for_the_runtime_too(tmp_path: Path) -> None:
    write(tmp_path / "a.conf", "include b.conf", "appendonly yes")
    write(tmp_path / "b.conf", "include a.conf")
    launched = read_launch_config(["redis-server", "a.conf"], str(tmp_path))
    assert launched.get("appendonly") == "yes"
    assert launched.problems == (f"{tmp_path / 'b.conf'}:1: a.conf includes itself",)
    assert launched.dir == os.path.realpath(tmp_path)


def test_init_from_compose_sees_a_password_set_in_an_include(tmp_path: Path) -> None:
    write(tmp_path / "secret.conf", 'requirepass "with space"')
    assert _conf_has_password(write(tmp_path / "redis.conf", "appendonly yes", "include secret.conf"))
    assert not _conf_has_password(write(tmp_path / "open.conf", 'requirepass ""'))
    assert not _conf_has_password(write(tmp_path / "none.conf", "# requirepass x"))


def test_an_aof_manifest_names_a_quoted_file_as_redis_writes_it(tmp_path: Path) -> None:
    from bdr.engines.redis.info import aof_files

    (tmp_path / "appendonly.aof.manifest").write_text(
        'file "my aof.1.base.rdb" seq 1 type b\nfile my\\x41.1.incr.aof seq 1 type i\nfile old.aof seq 0 type h\n')
    assert [p.name for p in aof_files(tmp_path, "appendonly.aof.manifest")] == [
        "my aof.1.base.rdb", "my\\x41.1.incr.aof", "appendonly.aof.manifest"]
