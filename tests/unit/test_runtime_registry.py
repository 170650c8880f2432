"""The runtime registry: one name per runtime, refused twice, names derived from it."""

from __future__ import annotations

import pytest

from bdr.config import RedisInstance
from bdr.errors import ConfigError
from bdr.runtime import Launch, redis_runtime, register_runtime, runtime_names
from bdr.runtime.command import CommandRedis
from bdr.runtime.process import RedisProcess, attach
from bdr.runtime.systemd import SystemdRedis


def test_a_name_registered_twice_is_refused() -> None:
    redis_runtime(RedisInstance(name="p"))  # the built-in process runtime is registered now
    with pytest.raises(ValueError, match="registered twice"):
        register_runtime("redis/process", attach)
    with pytest.raises(ValueError, match="service/kind"):
        register_runtime("process", attach)


def test_names_come_from_the_registry() -> None:
    assert runtime_names("redis") == ["command", "docker", "process", "systemd"]
    assert runtime_names("qdrant") == ["docker"]


def test_unknown_runtime_and_missing_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigError, match=r"redis\.p\.runtime: unknown runtime 'k8s' \(known: command, docker, "):
        redis_runtime(RedisInstance(name="p", runtime="k8s"))
    with pytest.raises(ConfigError, match="runtime systemd needs unit"):
        redis_runtime(RedisInstance(name="p", runtime="systemd"))
    with pytest.raises(ConfigError, match="runtime command needs commands"):
        redis_runtime(RedisInstance(name="p", runtime="command"))


def test_a_recorded_launch_picks_the_runtime_and_its_settings() -> None:
    instance = RedisInstance(name="p")
    unit = redis_runtime(instance, launch=Launch(runtime="systemd", data_dir="/d", unit="r.service",
                                                 systemctl=("sudo", "systemctl")))
    assert isinstance(unit, SystemdRedis) and unit.unit == "r.service" and unit.systemctl == ("sudo", "systemctl")
    command = redis_runtime(instance, launch=Launch(runtime="command", data_dir="/d",
                                                    commands={"start": ("s",), "stop": ("t",)}))
    assert isinstance(command, CommandRedis) and command.commands["stop"] == ("t",)
    process = redis_runtime(instance, launch=Launch(runtime="process", data_dir="/d", argv=("/bin/redis-server",
                                                                                            "/etc/r.conf")))
    assert isinstance(process, RedisProcess) and process.argv == ["/bin/redis-server", "/etc/r.conf"]
