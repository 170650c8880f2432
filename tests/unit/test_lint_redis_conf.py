"""redis.conf parsing as redis-server does it: quoting, includes, units, command-line options."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdr.formats.redis_conf import ArgsError, parse_memory, parse_redis_args, parse_redis_conf, split_args

DATA = Path(__file__).parent.parent / "data" / "lint"


@pytest.mark.parametrize(
    ("line", "args"),
    [
        ("save 900 1", ["save", "900", "1"]),
        ('save ""', ["save", ""]),
        ("save ''", ["save", ""]),
        ('logfile "/var/log/redis server.log"', ["logfile", "/var/log/redis server.log"]),
        (r'requirepass "a\"b\x41\n"', ["requirepass", 'a"bA\n']),
        (r"rename-command CONFIG 'it\'s'", ["rename-command", "CONFIG", "it's"]),
        ("  appendonly   yes  ", ["appendonly", "yes"]),
        ('dir foo"bar baz"', ["dir", "foobar baz"]),
    ],
)
def test_split_args_matches_sdssplitargs(line: str, args: list[str]) -> None:
    assert split_args(line) == args


@pytest.mark.parametrize("line", ['logfile "unterminated', "dir 'x", 'dir "a"b'])
def test_split_args_refuses_what_redis_refuses(line: str) -> None:
    with pytest.raises(ArgsError):
        split_args(line)


@pytest.mark.parametrize(
    ("text", "size"),
    [("100", 100), ("1k", 1000), ("1kb", 1024), ("64mb", 64 * 1024**2), ("1g", 10**9), ("1GB", 1024**3),
     ("2gb", 2 * 1024**3)],
)
def test_memory_units(text: str, size: int) -> None:
    assert parse_memory(text) == size


def test_memory_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="not a memory size"):
        parse_memory("lots")


def test_the_runbook_redis_conf_parses_with_lines() -> None:
    conf = parse_redis_conf(DATA / "clean" / "redis.conf")
    assert conf.problems == ()
    saves = conf.all("save")
    assert [d.args for d in saves] == [("900", "1"), ("300", "10"), ("60", "10000")]
    assert [d.line for d in saves] == [11, 12, 13]
    appendonly = conf.last("appendonly")
    assert appendonly is not None and appendonly.args == ("yes",) and appendonly.line == 21
    assert conf.last("appendfilename") is not None and conf.last("appendfilename").args == ("appendonly.aof",)  # type: ignore[union-attr]
    assert conf.last("logfile").args == ("",)  # type: ignore[union-attr]


def test_includes_are_read_in_place_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-persistence.conf").write_text("appendonly no\n")
    (tmp_path / "conf.d" / "20-more.conf").write_text("save 60 1\n")
    main = tmp_path / "redis.conf"
    main.write_text("appendonly yes\ninclude conf.d/*.conf\nport 6380\n")
    conf = parse_redis_conf(main)
    assert [(d.name, d.path.name, d.line) for d in conf.directives] == [
        ("appendonly", "redis.conf", 1), ("appendonly", "10-persistence.conf", 1), ("save", "20-more.conf", 1),
        ("port", "redis.conf", 3),
    ]


def test_an_include_outside_the_checkout_is_a_soft_problem(tmp_path: Path) -> None:
    main = tmp_path / "redis.conf"
    main.write_text("include /etc/redis/does-not-exist-here.conf\n")
    conf = parse_redis_conf(main)
    assert len(conf.problems) == 1
    assert not conf.problems[0].fatal and conf.problems[0].line == 1


def test_an_include_loop_stops(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("include b.conf\nappendonly yes\n")
    (tmp_path / "b.conf").write_text("include a.conf\n")
    conf = parse_redis_conf(tmp_path / "a.conf")
    assert any("includes itself" in p.detail for p in conf.problems)
    assert conf.last("appendonly") is not None


def test_an_unbalanced_quote_is_a_fatal_problem_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "redis.conf"
    path.write_text('# comment\nlogfile "oops\nappendonly yes\n')
    conf = parse_redis_conf(path)
    assert [(p.line, p.fatal) for p in conf.problems] == [(2, True)]
    assert conf.last("appendonly") is not None


def test_command_line_options_become_directives() -> None:
    path = Path("docker-compose.yml")
    conf, options = parse_redis_args(
        ["/usr/local/etc/redis/redis.conf", "--appendonly", "no", "--save", "", "--save", "60", "1"], path, 7
    )
    assert conf == "/usr/local/etc/redis/redis.conf"
    assert [(d.name, d.args, d.line) for d in options] == [
        ("appendonly", ("no",), 7), ("save", ("",), 7), ("save", ("60", "1"), 7),
    ]
    assert parse_redis_args(["--port", "6380"], path, 1)[0] is None
