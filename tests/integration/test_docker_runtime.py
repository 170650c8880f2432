"""The docker runtime: a Redis container started, stopped, killed, restarted, and its data replaced.

Needs a Docker engine (skips without one) and ``tests.docker_fixtures`` as a pytest plugin
(top-level conftest, or ``-p tests.docker_fixtures``). Containers listen on 127.0.0.1:
host network, or a port published on 127.0.0.1 only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import redis

from bdr import api
from bdr.config import Config, parse_config
from bdr.engines.base import StepStatus
from bdr.engines.redis.info import digest
from bdr.errors import ConfigError, ContainerNotFound, ServiceError
from bdr.runtime import Needs, Runtime, redis_runtime
from bdr.runtime.docker import RedisContainer, spawn_redis_container
from bdr.runtime.docker_engine import NetworkMode
from tests.docker_fixtures import DockerScope
from tests.redis_data import load_every_type

pytestmark = pytest.mark.docker


def fill(server: RedisContainer, keys: int = 500) -> bytes:
    client = server.client()
    pipe = client.pipeline()
    for i in range(keys):
        pipe.set(f"user:{i}", f"value-{i}")
        pipe.hset(f"session:{i}", mapping={"user": i, "token": f"t{i}"})
    pipe.execute()
    return bytes(client.execute_command("DEBUG", "DIGEST"))


@pytest.mark.parametrize("network", [NetworkMode.HOST, NetworkMode.BRIDGE])
def test_lifecycle_keeps_the_data(docker_scope: DockerScope, redis_image: str, network: NetworkMode) -> None:
    server = spawn_redis_container(name="production", image=redis_image, network=network, appendonly=True)
    assert isinstance(server, Runtime)
    assert server.running() and server.ready()
    assert server.url().startswith("redis://127.0.0.1:")
    before = fill(server)

    server.stop()
    assert server.state() == "exited"
    assert not server.running() and not server.ready()
    server.start()
    assert server.client().execute_command("DEBUG", "DIGEST") == before

    server.kill()  # SIGKILL: the AOF was written before each reply, so nothing acknowledged is lost
    assert server.state() == "exited"
    assert server.container().attrs["State"]["ExitCode"] == 137
    server.start()
    assert server.client().execute_command("DEBUG", "DIGEST") == before

    server.restart()
    assert server.client().execute_command("DEBUG", "DIGEST") == before

    facts = server.describe()
    assert facts["runtime"] == "docker"
    assert facts["network"] == network
    assert facts["image_id"].startswith("sha256:")
    assert server.container().id.startswith(facts["container_id"])
    assert facts["volume"] == server.volume
    assert facts["version"] == server.client().info("server")["redis_version"]


def test_stop_does_not_save_but_docker_restart_does(docker_scope: DockerScope, redis_image: str) -> None:
    """stop() is SHUTDOWN NOSAVE: what is on disk stays as it was; restart() is `docker restart`."""
    server = spawn_redis_container(image=redis_image, network="host", extra=["--save", "3600 1"])
    server.client().set("unsaved", "1")

    server.stop()
    assert "dump.rdb" not in [p.name for p in server.data_path().iterdir()]
    server.start()
    assert server.client().dbsize() == 0

    server.client().set("saved", "1")
    server.restart()  # SIGTERM with a save point configured: Redis saves on the way down
    assert server.client().get("saved") == b"1"
    assert (server.data_path() / "dump.rdb").is_file()


def test_replace_data_of_a_stopped_container_and_load_an_rdb_into_aof(
    docker_scope: DockerScope, redis_image: str, tmp_path: Path
) -> None:
    source = spawn_redis_container(name="source", image=redis_image, network="host")
    wanted = fill(source, 2000)
    source.client().save()
    assert source.export_data(tmp_path / "files", ["dump.rdb", "missing.aof"]) == ["dump.rdb"]

    target = spawn_redis_container(name="target", image=redis_image, network="bridge", appendonly=True)
    target.client().set("to-be-replaced", "1")
    with pytest.raises(ServiceError, match="running"):
        target.replace_data(tmp_path / "files")
    target.stop()
    target.replace_data(tmp_path / "files", clear=["dump.rdb", "appendonlydir", "appendonly.aof"])

    files = {p.name: p.stat() for p in target.data_path().iterdir()}
    assert set(files) == {"dump.rdb"}
    assert files["dump.rdb"].st_uid == target.data_path().stat().st_uid  # owned like the volume: Redis can rewrite it
    assert (tmp_path / "files" / "dump.rdb").is_file()  # the source is left as it was

    # A container's command cannot change: the override runs in a twin, the container then starts as it is.
    target.start(overrides=["--appendonly", "no"])
    client = target.client()
    assert client.execute_command("DEBUG", "DIGEST") == wanted
    assert client.get("to-be-replaced") is None
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert sorted(p.name for p in (target.data_path() / "appendonlydir").iterdir())[-1].endswith(".manifest")
    target.stop()
    target.start()  # its own command, from the AOF written from the RDB
    assert target.client().execute_command("DEBUG", "DIGEST") == wanted


def test_start_with_overrides_asks_a_fresh_runtime_for_the_container_settings(
    docker_scope: DockerScope, redis_image: str, tmp_path: Path
) -> None:
    """A new bdr process never saw the container run: it learns its settings from a twin on scratch space."""
    source = spawn_redis_container(name="source", image=redis_image, network="host")
    wanted = fill(source, 100)
    source.client().save()
    source.export_data(tmp_path / "files", ["dump.rdb"])
    first = spawn_redis_container(name="target", image=redis_image, network="host", appendonly=True)
    first.stop()

    fresh = redis_runtime(first.instance)
    assert isinstance(fresh, RedisContainer)
    fresh.replace_data(tmp_path / "files", clear=["dump.rdb", "appendonlydir"])
    fresh.start(overrides=["--appendonly", "no"])
    assert fresh.client().execute_command("DEBUG", "DIGEST") == wanted
    assert fresh.client().config_get("appendonly") == {"appendonly": "yes"}


def test_password_stays_out_of_the_container_config(docker_scope: DockerScope, redis_image: str) -> None:
    secret = "s3cret-for-test"
    server = spawn_redis_container(image=redis_image, network="host", password=secret)
    attrs = server.container().attrs
    assert secret not in " ".join(attrs["Config"]["Cmd"] or [])
    assert secret not in " ".join(attrs["Config"]["Env"] or [])
    assert server.client().ping()
    anonymous = redis.Redis.from_url(server.url())
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    server.stop()  # the nosave setting goes through the authenticated client
    assert server.state() == "exited"


def test_backup_and_restore_through_the_docker_runtime(
    docker_scope: DockerScope, redis_image: str, tmp_path: Path
) -> None:
    """bdr backup + bdr restore of a Redis container: stop, replace the volume's files, start, verify."""
    server = spawn_redis_container(name="production", image=redis_image, network="host", appendonly=True)
    config = dataclasses.replace(Config(), repository=str(tmp_path / "repo"), redis={"production": server.instance},
                                 redis_default="production")
    client = server.client()
    load_every_type(client)
    before = digest(client)

    outcome = api.backup(config, "redis")
    assert outcome.manifest.facts["digest"] == before
    client.flushall()
    server.kill()
    result = api.restore(config, "redis", "latest")

    assert result.ok, result.checks
    assert digest(server.client()) == before
    safety = {step.name: step for step in result.steps}["safety backup"]
    assert safety.status == StepStatus.OK, safety.detail  # the killed container's volume was read from the host
    assert result.facts["runtime"] == "docker"
    assert result.facts["container"] == server.container_name


def test_config_selects_the_docker_runtime(docker_scope: DockerScope) -> None:
    config = parse_config({"redis": {"production": {"runtime": "docker", "container": "bdr-test-no-such-container",
                                                    "volume": "bdr-test-no-such-volume"}}})
    runtime = redis_runtime(config.redis_instance())
    assert isinstance(runtime, RedisContainer)
    with pytest.raises(ContainerNotFound, match="bdr-test-no-such-container") as info:
        runtime.start()
    assert info.value.exit_code == 4

    missing = parse_config({"redis": {"production": {"runtime": "docker"}}})
    with pytest.raises(ConfigError, match="needs container"):
        redis_runtime(missing.redis_instance())


def test_the_runtime_interface_of_a_container(docker_scope: DockerScope, redis_image: str) -> None:
    """kind, launch, settings up and down (its config file read through the engine), preflight, the Redis client."""
    server = spawn_redis_container(name="production", image=redis_image, network="host", password="pw-in-a-file",
                                   appendonly=True)
    assert server.kind == "docker"
    assert server.client().ping()  # the Redis client; the engine's is server.engine
    assert server.engine.ping()
    launch = server.launch()
    assert launch.runtime == "docker" and launch.container == server.container_name
    assert launch.data_dir == server.data_mount().host_path
    assert launch.argv[:2] == ("redis-server", "/etc/bdr/redis-auth.conf")
    names = ["port", "dir", "appendonly", "save", "requirepass", "bind"]
    up = server.settings(names)
    assert up["dir"] == "/data" and up["requirepass"] == "pw-in-a-file"
    assert server.preflight(Needs(free_bytes=1024)) == []
    server.stop()
    assert server.settings(names) == up
    assert server.preflight(Needs(free_bytes=1 << 60))[0].startswith(f"no room in {server.data_path()}: ")
    again = redis_runtime(dataclasses.replace(server.instance, container=None), launch=launch)
    again.start()
    assert again.ready()
