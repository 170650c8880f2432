"""Connections to Qdrant from bdr.yaml: locations, API keys, and errors a user can act on."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import httpx
import pytest
from qdrant_client.http.exceptions import UnexpectedResponse

from bdr.config import Config, QdrantInstance, parse_config
from bdr.engines import engine_for
from bdr.engines.base import BackupRequest, write_backup
from bdr.engines.qdrant.client import Target, qdrant_errors, reachable, target_of
from bdr.errors import ConfigError, ServiceError, ServiceUnavailable
from bdr.repository import Repository


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_embedded_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = parse_config({"qdrant": {"production": {"path": "data/qdrant"}}}, tmp_path / "bdr.yaml")
    target = target_of(config, None)
    assert target.embedded and target.path == tmp_path / "data/qdrant"
    server = parse_config({"qdrant": {"prod": {"url": "http://127.0.0.1:6333/", "method": "snapshot"}}}, None)
    assert target_of(server, "prod").location == "http://127.0.0.1:6333"


def test_unknown_keys_in_the_qdrant_section_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config({"qdrant": {"prod": {"url": "http://x", "colections": ["a"]}}}, None)


def test_api_key_comes_from_a_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "qdrant.key"
    key_file.write_text("s3cret-from-file\n")
    assert QdrantInstance(name="p", api_key_file=str(key_file)).api_key() == "s3cret-from-file"
    monkeypatch.setenv("MY_QDRANT_KEY", "s3cret-from-env")
    assert QdrantInstance(name="p", api_key_env="MY_QDRANT_KEY").api_key() == "s3cret-from-env"
    with pytest.raises(ConfigError, match="cannot read API key file"):
        QdrantInstance(name="p", api_key_file=str(tmp_path / "missing")).api_key()


def test_an_unreachable_server_is_a_service_error_with_its_address(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    config = dataclasses.replace(Config(), repository=str(tmp_path / "repo"),
                                 qdrant={"production": QdrantInstance(name="production", url=url, timeout=5)})
    repo = Repository.open(tmp_path / "repo")
    with pytest.raises(ServiceUnavailable, match=f"cannot reach Qdrant at {url}") as caught:
        write_backup(engine_for("qdrant"), BackupRequest(config=config, repository=repo), "production", "x")
    assert caught.value.exit_code == 7
    assert not reachable(target_of(config, None))
    assert repo.sets() == [] and repo.incomplete() == []


def test_refused_credentials_name_the_setting_to_fix() -> None:
    target = Target(QdrantInstance(name="prod", url="http://127.0.0.1:1"), "http://127.0.0.1:1")
    response = UnexpectedResponse(403, "Forbidden", b'{"status": {"error": "Invalid api-key"}}', httpx.Headers())
    with pytest.raises(ServiceError, match=r"refused the credentials .*Invalid api-key.*api_key_env"), \
            qdrant_errors(target, "list its collections"):
        raise response
