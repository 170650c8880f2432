"""What a crash of Redis loses, from its persistence settings, combined the way redis-server does."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdr.formats.redis_conf import parse_redis_args, parse_redis_text
from bdr.lint.persistence import REDIS_DEFAULT_SAVE, crash_window, resolve

DATA = Path(__file__).parent.parent / "data" / "lint"


def settings(text: str, *argv: str):  # type: ignore[no-untyped-def]
    conf = parse_redis_text(text, Path("redis.conf"))
    _, options = parse_redis_args(list(argv), Path("docker-compose.yml"), 3)
    return resolve([*conf.directives, *options])


def rules(text: str, *argv: str) -> list[tuple[int, int]]:
    return [(r.seconds, r.changes) for r in settings(text, *argv).save_rules]


def test_no_save_line_means_the_redis_defaults() -> None:
    assert rules("appendonly no\n") == list(REDIS_DEFAULT_SAVE)


def test_the_first_save_line_replaces_the_defaults_and_the_next_ones_add() -> None:
    assert rules("save 900 1\nsave 300 10\nsave 60 10000\n") == [(900, 1), (300, 10), (60, 10000)]
    assert rules("save 900 1 300 10\n") == [(900, 1), (300, 10)]


def test_save_empty_clears_and_command_line_saves_add_to_the_file() -> None:
    assert rules('save 900 1\nsave ""\n') == []
    assert rules("save 900 1\n", "--save", "60", "1") == [(900, 1), (60, 1)]
    assert rules("save 900 1\n", "--save", "") == []


def test_the_runbook_settings_lose_about_two_seconds() -> None:
    conf_text = (DATA / "clean" / "redis.conf").read_text()
    window = crash_window(settings(conf_text))
    assert window.seconds == 2.0
    assert window.mechanism == "AOF, appendfsync everysec"
    assert window.decided_by is not None and window.decided_by.line == 24


@pytest.mark.parametrize(
    ("text", "seconds", "mechanism"),
    [
        ("appendonly yes\nappendfsync always\n", 0.0, "AOF, appendfsync always"),
        ("appendonly yes\nappendfsync no\n", 30.0, "AOF, appendfsync no"),
        ("appendonly yes\nno-appendfsync-on-rewrite yes\n", 30.0, "AOF, appendfsync everysec"),
        ("appendonly no\nsave 900 1\nsave 300 10\nsave 60 10000\n", 900.0, "appendonly no with save 900 1, "
                                                                        "save 300 10, save 60 10000"),
        ("appendonly no\n", 3600.0, "appendonly no with save 3600 1, save 300 100, save 60 10000"),
        ("save 3600 1\nsave 120 1\n", 120.0, "appendonly no with save 3600 1, save 120 1"),
    ],
)
def test_crash_windows(text: str, seconds: float, mechanism: str) -> None:
    window = crash_window(settings(text))
    assert (window.seconds, window.mechanism) == (seconds, mechanism)


def test_rules_that_need_several_writes_never_save_a_single_one() -> None:
    window = crash_window(settings("appendonly no\nsave 3600 10\nsave 60 1000\n"))
    assert window.seconds is None
    assert "at least 10 changes" in window.explanation


def test_no_persistence_at_all_is_unbounded_and_names_the_line() -> None:
    window = crash_window(settings("appendonly no\n# cache only\nsave \"\"\n"))
    assert window.seconds is None
    assert window.decided_by is not None and window.decided_by.line == 3
    assert "comes back empty" in window.explanation


def test_the_command_line_wins_over_the_file() -> None:
    conf_text = (DATA / "clean" / "redis.conf").read_text()
    window = crash_window(settings(conf_text, "--appendonly", "no", "--save", ""))
    assert window.seconds is None
    assert window.decided_by is not None and window.decided_by.path.name == "docker-compose.yml"


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("appendonly maybe\n", "appendonly must be one of yes, no"),
        ("appendfsync sometimes\n", "appendfsync must be one of always, everysec, no"),
        ("save 900\n", "pairs"),
        ("save 0 1\n", "seconds >= 1"),
        ("save soon 1\n", "whole numbers"),
    ],
)
def test_values_redis_refuses_are_reported_and_ignored(text: str, detail: str) -> None:
    result = settings(text)
    assert len(result.invalid) == 1 and detail in result.invalid[0].detail
    assert result.appendonly is False
