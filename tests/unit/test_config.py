"""bdr.yaml parsing: defaults, the example file, and clear errors for mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdr.cli.init_cmd import example_config
from bdr.config import Config, load_config, parse_config
from bdr.errors import ConfigError, UnknownTarget
from bdr.util.durations import format_duration, parse_duration


def test_embedded_defaults_match_the_runbook() -> None:
    config = Config()
    assert config.targets.rto["redis_restart"] == 60
    assert config.targets.rto["offsite_restore"] == 3600
    assert config.targets.rpo["sessions"] == 3600
    assert config.redis_instance().url == "redis://127.0.0.1:6379/0"
    assert [r.kind for r in config.retention] == ["hourly", "daily", "weekly", "monthly"]


def test_the_example_written_by_init_parses(tmp_path: Path) -> None:
    path = tmp_path / "bdr.yaml"
    path.write_text(example_config())
    config = load_config(path)
    assert set(config.redis) == {"production", "test"}
    assert config.redis_instance("test").config_file == "./test/redis.conf"
    assert config.targets.rto["full_system_restore"] == 1800
    assert config.repository_path() == tmp_path / "backups"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("redis: {production: {urll: x}}", "unknown key(s) in redis.production: urll"),
        ("colour: blue", "unknown section(s): colour"),
        ("targets: {rto: {redis_restart: soon}}", "targets.rto.redis_restart: not a duration"),
        ("redis: [1, 2]", "redis must be a mapping"),
        ("redis: {default: nope, production: {}}", "unknown instance 'nope'"),
        ("a: [unclosed", "invalid YAML at line"),
    ],
)
def test_mistakes_give_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bdr.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert message in raised.value.message
    assert "\n" not in raised.value.message


def test_unknown_target_lists_the_known_ones() -> None:
    config = parse_config({"redis": {"production": {}, "test": {}}})
    with pytest.raises(UnknownTarget, match="known: production, test"):
        config.redis_instance("staging")


def test_missing_config_file_is_an_error_not_a_default(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("5m", 300), ("1h", 3600), ("30d", 2592000), (15, 15)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_format_duration() -> None:
    assert format_duration(0.25) == "250ms"
    assert format_duration(12.34) == "12.3s"
    assert format_duration(245) == "4m05s"
