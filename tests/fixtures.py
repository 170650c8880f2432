"""Shared fixtures: real redis-server processes on 127.0.0.1 and configs that point at them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdr.config import Config, RedisInstance
from bdr.runtime.process import RedisProcess, spawn_redis


@pytest.fixture
def redis_rdb(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server with RDB persistence only."""
    server = spawn_redis(tmp_path / "redis-rdb" / "data", name="production")
    yield server
    server.stop()


@pytest.fixture
def redis_aof(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server with AOF on (appendfsync everysec), as the runbook configures production."""
    server = spawn_redis(tmp_path / "redis-aof" / "data", name="production", appendonly=True)
    yield server
    server.stop()


@pytest.fixture(params=["rdb", "aof"])
def redis_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisProcess]:
    """Each test runs twice: against an RDB-only and an AOF-on instance."""
    server = spawn_redis(tmp_path / f"redis-{request.param}" / "data", name="production",
                         appendonly=request.param == "aof")
    yield server
    server.stop()


def config_for(tmp_path: Path, *servers: RedisProcess, **changes: object) -> Config:
    """A Config whose repository is under ``tmp_path`` and whose Redis instances are ``servers``."""
    instances: dict[str, RedisInstance] = {s.instance.name: s.instance for s in servers}
    default = servers[0].instance.name if servers else "production"
    return dataclasses.replace(
        Config(), repository=str(tmp_path / "repo"), redis=instances or Config().redis, redis_default=default,
        **changes,  # type: ignore[arg-type]
    )


@pytest.fixture
def make_config(tmp_path: Path):  # type: ignore[no-untyped-def]
    def build(*servers: RedisProcess, **changes: object) -> Config:
        return config_for(tmp_path, *servers, **changes)

    return build
