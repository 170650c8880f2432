"""The shape of bdr.yaml: pydantic models from the settings, mistakes placed by line, the JSON Schema editors use."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from bdr.cli.init_cmd import example_config
from bdr.cli.main import cli
from bdr.config import Config, load_config, parse_config
from bdr.config import settings as s
from bdr.config.shape import json_schema, model_of, section_names
from bdr.errors import ConfigError

EXAMPLE_LINES = example_config().splitlines()


def line_of(text: str) -> int:
    """The 1-based line of the example that starts with ``text`` (after its indentation)."""
    return next(n for n, line in enumerate(EXAMPLE_LINES, 1) if line.strip().startswith(text))


def load_example(tmp_path: Path, old: str, new: str) -> ConfigError:
    text = example_config()
    assert old in text
    path = tmp_path / "bdr.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert "\n" not in raised.value.message and raised.value.exit_code == 3
    return raised.value


def test_a_mistake_is_placed_on_its_line(tmp_path: Path) -> None:
    runtime = line_of("runtime: process  ")
    error = load_example(tmp_path, "    runtime: process  ", "    runtim: process  ")
    assert f"bdr.yaml:{runtime}: unknown key(s) in redis.production: runtim (known: " in error.message
    error = load_example(tmp_path, "    runtime: process  ", "    runtime: k8s  ")
    assert (f"bdr.yaml:{runtime}: redis.production.runtime: unknown runtime 'k8s' (known: command, docker, "
            "process, systemd)") in error.message


def test_a_rule_between_settings_is_placed_on_the_key_it_names(tmp_path: Path) -> None:
    production = line_of("production:")
    error = load_example(tmp_path, "    runtime: process  ", "    runtime: systemd  ")
    assert f"bdr.yaml:{production}: redis.production: runtime systemd needs unit" in error.message


def test_a_nested_value_is_placed_on_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "bdr.yaml"
    path.write_text("repository: ./b\ntargets:\n  rto:\n    redis_restart: 1m\n    qdrant_restore: soon\n")
    with pytest.raises(ConfigError, match=r"bdr\.yaml:5: targets\.rto\.qdrant_restore: not a duration: 'soon'"):
        load_config(path)
    path.write_text("drill:\n  redis:\n    checks:\n      - {key_exists: a}\n      - {min_series: 3}\n")
    with pytest.raises(ConfigError, match=r"bdr\.yaml:5: drill\.redis\.checks\[1\]: min_series is a prometheus"):
        load_config(path)


@pytest.mark.parametrize(("data", "message"), [
    ({"redis": {"p": {"backup": "yes"}}}, "redis.p.backup must be true or false, got 'yes'"),
    ({"redis": {"p": {"save_timeout": "10 minutes"}}}, "redis.p.save_timeout: not a duration: '10 minutes'"),
    ({"redis": {"p": {"digest_max_keys": 1.5}}}, "redis.p.digest_max_keys must be a whole number, got 1.5"),
    ({"redis": {"p": {"tls": "on"}}}, "redis.p.tls must be a mapping, got str"),
    ({"qdrant": {"p": {"collections": "docs"}}}, "qdrant.p.collections must be a list, got 'docs'"),
    ({"archive": {"redis": {"p": {"segment_bytes": "lots"}}}, "redis": {"p": {}}},
     "archive.redis.p.segment_bytes must be a size such as 16MiB or 1048576, got 'lots'"),
    ({"archive": {"qdrant": {}}}, "unknown key(s) in archive: qdrant (known: redis); only Redis"),
    ({"prometheus": {"p": {"start_args": {"a": 1}}}},
     "prometheus.p.start_args must be a list of arguments or a command line, got {'a': 1}"),
    ({"remote": {"url": "s3://b/p", "concurrency": "4"}}, "remote.concurrency must be a whole number, got '4'"),
    ({"schedule": {"redis": {"cron": "0 * * * *", "compres": True}}},
     "unknown key(s) in schedule.redis: compres (known: compress, cron, remote, restore_test, source, wait_lock)"),
    ({"drill": {"qdrant": "yes"}}, "drill.qdrant must be a mapping, got str"),
    ({"owners": {"redis": 7}}, "owners.redis must be a string, got 7"),
])
def test_each_kind_of_mistake_reads_as_one_line(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    assert message in raised.value.message


def test_written_forms_become_bdr_units() -> None:
    config = parse_config({
        "redis": {"p": {"save_timeout": "5m", "runtime": "command", "commands": {"start": "sv start redis",
                                                                                   "stop": ["sv", "stop", 6379]}}},
        "archive": {"redis": {"p": {"segment_bytes": "1MiB", "to": "local", "keep": "7d"}}},
        "schedule": {"verify": {"cron": "0 3 * * *", "wait_lock": "90s"}, "redis": "*/30 * * * *"},
        "drill": {"qdrant": False, "evidence_keep": "2y"},
    })
    redis = config.redis_instance()
    assert redis.save_timeout == 300.0 and redis.commands["stop"] == ("sv", "stop", "6379")
    assert config.archive["p"].segment_bytes == 1 << 20 and config.archive["p"].to == ("local",)
    assert config.archive["p"].keep == 7 * 86400.0
    assert {e.name: e.wait_lock for e in config.schedule} == {"verify": 90.0, "redis": None}
    assert config.drill.source("qdrant").enabled is False and config.drill.evidence_keep == 2 * 365 * 86400.0


def test_every_setting_has_a_key_in_the_file() -> None:
    """A field added to a settings dataclass is accepted, checked and documented with no other edit."""
    assert set(section_names()) == {f.name for f in dataclasses.fields(Config)} - {
        "path", "redis_default", "qdrant_default", "prometheus_default", "grafana_default"}
    for cls in (s.RedisInstance, s.QdrantInstance, s.PrometheusInstance, s.GrafanaInstance, s.FilesSource,
                s.RemoteSettings, s.EncryptionSettings, s.LintSettings, s.ArchiveSettings, s.TlsSettings):
        keys = {f.name for f in dataclasses.fields(cls)} - ({"name"} if cls is not s.FilesSource else set())
        assert set(model_of(cls).model_fields) == keys, cls


def test_the_schema_accepts_the_example_and_refuses_what_bdr_refuses() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    example = yaml.safe_load(example_config())
    assert list(validator.iter_errors(example)) == []
    redis = schema["$defs"]["RedisInstance"]
    assert redis["properties"]["runtime"]["enum"] == ["command", "docker", "process", "systemd"]
    assert "launched" in redis["properties"]["runtime"]["description"]
    for mistake in ({"colour": "blue"}, {"redis": {"production": {"urll": "x"}}},
                    {"redis": {"production": {"runtime": "k8s"}}}, {"targets": {"rto": {"x": "soon"}}},
                    {"schedule": {"redis": {"compres": True, "cron": "* * * * *"}}},
                    {"retention": {"daily": {"keep": "7d", "locations": ["tape"]}}}):
        assert not validator.is_valid(mistake), mistake
        with pytest.raises(ConfigError):
            parse_config(mistake)


def test_init_writes_the_schema(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(cli, ["init", "--schema"])
    assert printed.exit_code == 0 and json.loads(printed.output) == json_schema()
    target = tmp_path / "bdr.schema.json"
    written = runner.invoke(cli, ["init", "--schema", str(target)])
    assert written.exit_code == 0 and json.loads(target.read_text()) == json_schema()
    again = runner.invoke(cli, ["init", "--schema", str(target)])
    assert again.exit_code == 2 and "use --force" in again.output
    both = runner.invoke(cli, ["init", "--schema", "--from-compose", str(target)])
    assert both.exit_code == 2 and "do not go together" in both.output
