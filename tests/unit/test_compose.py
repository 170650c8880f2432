"""Reading docker compose files for ``bdr init --from-compose``."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdr.config import parse_config
from bdr.errors import ConfigError
from bdr.formats.compose import instances_from_compose, project_name, read_compose

PRODUCTION = """
services:
  redis:
    image: redis:7-alpine
    container_name: agentic-redis
    command: ["redis-server", "/usr/local/etc/redis/redis.conf", "--requirepass", "${REDIS_PASSWORD}"]
    ports: ["127.0.0.1:6379:6379"]
    volumes: ["redis_data:/data", "./redis.conf:/usr/local/etc/redis/redis.conf:ro"]
    restart: unless-stopped
  qdrant:
    image: qdrant/qdrant:v1.12.0
    container_name: agentic-qdrant
    environment:
      QDRANT__SERVICE__API_KEY: ${QDRANT_API_KEY:?set it}
    ports:
      - target: 6333
        published: "6333"
        host_ip: 127.0.0.1
    volumes:
      - type: volume
        source: qdrant_data
        target: /qdrant/storage
  api:
    image: agentic/api:latest
    depends_on: [redis, qdrant]
volumes:
  redis_data: {}
  qdrant_data: {}
"""


def write(tmp_path: Path, text: str, project_dir: str = "agentic-backend-v13") -> Path:
    directory = tmp_path / project_dir
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "docker-compose.yml"
    path.write_text(text)
    return path


def test_production_compose_becomes_docker_instances(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    path = write(tmp_path, PRODUCTION)
    sections = instances_from_compose(path)

    assert sections["redis"] == {"production": {
        "url": "redis://127.0.0.1:6379/0", "runtime": "docker", "container": "agentic-redis",
        "volume": "agentic-backend-v13_redis_data", "image": "redis:7-alpine", "password_env": "REDIS_PASSWORD",
        "config_file": str((path.parent / "redis.conf").resolve()),
    }}
    assert sections["qdrant"] == {"production": {
        "url": "http://127.0.0.1:6333", "runtime": "docker", "container": "agentic-qdrant",
        "volume": "agentic-backend-v13_qdrant_data", "image": "qdrant/qdrant:v1.12.0", "path": None,
        "api_key_env": "QDRANT_API_KEY",
    }}
    assert read_compose(path).warnings == ()
    config = parse_config(sections)  # what bdr init writes is a valid bdr.yaml
    assert config.redis_instance().runtime == "docker"
    assert config.qdrant_instance().url == "http://127.0.0.1:6333"


def test_names_follow_compose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    text = """
name: Agentic.Prod
services:
  cache:
    image: registry.local:5000/library/redis:7.2@sha256:abc
    ports: ["6380:6379"]
    volumes: [cache:/data]
  sessions:
    image: bitnami/redis:7.2
    environment: ["REDIS_PASSWORD=${SESSIONS_PASSWORD}"]
    network_mode: host
    command: ["redis-server", "--port", "6390", "--dir", "/bitnami/redis/data"]
    volumes: ["./sessions-data:/bitnami/redis/data"]
volumes:
  cache:
    external: true
    name: shared-cache
"""
    path = write(tmp_path, text)
    project = read_compose(path)
    assert project.name == "agenticprod"
    redis = instances_from_compose(path)["redis"]
    assert redis["production"]["container"] == "agenticprod-cache-1"
    assert redis["production"]["volume"] == "shared-cache"
    assert redis["production"]["url"] == "redis://127.0.0.1:6380/0"
    assert redis["sessions"]["url"] == "redis://127.0.0.1:6390/0"
    assert redis["sessions"]["password_env"] == "SESSIONS_PASSWORD"
    assert redis["sessions"]["data_dir"] == str((path.parent / "sessions-data").resolve())
    assert redis["sessions"]["container_dir"] == "/bitnami/redis/data"
    assert any("published on all interfaces" in w for w in project.warnings)

    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "ignored-when-name-is-set")
    assert project_name(path, {"name": "Agentic.Prod"}) == "agenticprod"
    assert project_name(path, {}) == "ignored-when-name-is-set"


def test_risky_setups_are_reported(tmp_path: Path) -> None:
    text = """
services:
  redis:
    image: redis:7
    command: redis-server --requirepass hunter2
"""
    path = write(tmp_path, text)
    project = read_compose(path)
    warnings = " ".join(project.warnings)
    assert "no volume at /data" in warnings
    assert "not published" in warnings
    assert "password is written in the compose file" in warnings
    assert "hunter2" not in warnings  # never repeat a secret
    assert instances_from_compose(path)["redis"]["production"]["password_env"] == "REDIS_PASSWORD"


def test_not_a_compose_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no services"):
        read_compose(write(tmp_path, "just: a mapping\n"))
    with pytest.raises(ConfigError, match="invalid YAML at line 3"):
        read_compose(write(tmp_path, "services:\n  redis: [\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        read_compose(tmp_path / "missing.yml")
    assert instances_from_compose(write(tmp_path, "services:\n  web:\n    image: nginx\n")) == {}


def test_init_reads_the_file_as_lint_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One parser: a quoted string command is split into shell words, an exporter stores nothing, and a
    password passed through from the shell (``- REDIS_PASSWORD``) names its variable."""
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    text = """
services:
  cache:
    image: redis:7
    command: redis-server --requirepass "${CACHE_PASSWORD}" --port 6390 --dir "/srv/redis data"
    ports: ["127.0.0.1:6390:6390"]
    volumes: [{type: volume, source: cache, target: "/srv/redis data"}]
  sessions:
    image: bitnami/redis:7.2
    environment: [REDIS_PASSWORD]
    ports: ["127.0.0.1:6381:6379"]
    volumes: ["sessions:/bitnami/redis/data"]
  metrics:
    image: oliver006/redis_exporter
volumes: {cache: {}, sessions: {}}
"""
    path = write(tmp_path, text)
    project = read_compose(path)
    assert [s.service for s in project.services] == ["cache", "sessions"]
    cache, sessions = project.services
    assert cache.command == ("redis-server", "--requirepass", "${CACHE_PASSWORD}", "--port", "6390", "--dir",
                             "/srv/redis data")
    assert (cache.secret_env, cache.url, cache.container_dir) == ("CACHE_PASSWORD", "redis://127.0.0.1:6390/0",
                                                                  "/srv/redis data")
    assert cache.volume == "agentic-backend-v13_cache"
    assert (sessions.secret_env, sessions.container_dir) == ("REDIS_PASSWORD", "/bitnami/redis/data")
    assert project.warnings == ()
