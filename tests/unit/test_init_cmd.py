"""``bdr init``: the example file, and one filled in from a compose file."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bdr.cli.main import cli
from bdr.config import load_config

COMPOSE = """services:
  redis:
    image: redis:7-alpine
    container_name: agentic-redis
    command: ["redis-server", "--appendonly", "yes", "--requirepass", "${REDIS_PASSWORD}"]
    ports: ["127.0.0.1:6379:6379"]
    volumes: ["redis_data:/data"]
volumes:
  redis_data: {}
"""


def test_from_compose_fills_in_the_containers_and_volumes(tmp_path: Path) -> None:
    compose = tmp_path / "agentic-backend" / "docker-compose.yml"
    compose.parent.mkdir()
    compose.write_text(COMPOSE)
    target = tmp_path / "bdr.yaml"
    result = CliRunner().invoke(cli, ["init", "--from-compose", str(compose), str(target)])
    assert result.exit_code == 0, result.output
    config = load_config(target)
    redis = config.redis_instance()
    assert (redis.runtime, redis.container, redis.volume) == ("docker", "agentic-redis", "agentic-backend_redis_data")
    assert redis.password_env == "REDIS_PASSWORD"
    assert config.targets.rpo["sessions"] == 3600  # the rest of the example is kept


def test_compose_without_datastores_is_refused(tmp_path: Path) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("services:\n  web:\n    image: nginx\n")
    result = CliRunner().invoke(cli, ["init", "--from-compose", str(compose), str(tmp_path / "bdr.yaml")])
    assert result.exit_code == 2
    assert "no Redis or Qdrant service" in result.output
