"""bdr.yaml's runtime settings of a Redis instance: parsed to argv, validated with the fix in the message."""

from __future__ import annotations

from typing import Any

import pytest

from bdr.config import parse_config
from bdr.errors import ConfigError


def redis(**settings: Any) -> Any:
    return parse_config({"redis": {"production": settings}}).redis_instance()


def test_systemd_and_command_settings_become_argv() -> None:
    unit = redis(runtime="systemd", unit="redis-server.service", systemctl="docker exec agent systemctl")
    assert unit.systemctl == ("docker", "exec", "agent", "systemctl")
    assert redis(runtime="systemd", unit="redis-server.service").systemctl == ("systemctl",)
    command = redis(runtime="command", commands={"start": "supervisorctl -c '/etc/sup ervisor.conf' start redis",
                                                 "stop": ["supervisorctl", "stop", "redis"]})
    assert command.commands == {"start": ("supervisorctl", "-c", "/etc/sup ervisor.conf", "start", "redis"),
                                "stop": ("supervisorctl", "stop", "redis")}
    assert redis(start_args="--port 6380 --save ''").start_args == ("--port", "6380", "--save", "")


@pytest.mark.parametrize(("settings", "message"), [
    ({"runtime": "k8s"}, r"redis\.production\.runtime: unknown runtime 'k8s' \(known: command, docker, process, "
                         r"systemd\)"),
    ({"runtime": "systemd"}, "runtime systemd needs unit: the unit that runs Redis"),
    ({"runtime": "systemd", "unit": "redis server"}, "runtime systemd needs unit"),
    ({"unit": "redis-server.service"}, r"redis\.production\.unit is for runtime: systemd \(runtime is process\)"),
    ({"systemctl": ["sudo", "systemctl"]}, r"redis\.production\.systemctl is for runtime: systemd"),
    ({"runtime": "command", "commands": {"start": "x"}}, "runtime command needs commands.stop"),
    ({"runtime": "command", "commands": {"start": "a", "stop": "b", "restart": "c"}},
     r"unknown command\(s\) restart \(known: start, stop, status\)"),
    ({"runtime": "command", "commands": "supervisorctl"}, "commands must be a mapping"),
    ({"commands": {"start": "a", "stop": "b"}}, "commands is for runtime: command"),
    ({"start_args": ["--port", "6380", "--requirepass", "x"]}, "start_args must not hold --requirepass"),
    ({"start_args": "--save 'unbalanced"}, "No closing quotation"),
    ({"log_file": ""}, r"redis\.production\.log_file must be a path"),
])
def test_invalid_runtime_settings_say_what_to_fix(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        redis(**settings)
    assert info.value.exit_code == 3


def test_a_qdrant_runtime_is_validated_too() -> None:
    with pytest.raises(ConfigError, match=r"qdrant\.production\.runtime: unknown runtime 'systemd' \(known: "
                       r"process, docker\)"):
        parse_config({"qdrant": {"production": {"runtime": "systemd"}}})
