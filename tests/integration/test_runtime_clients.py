"""Connection errors as the user reads them: the address once, the reason, and a password variable by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdr.clients import redis_client, redis_errors
from bdr.config import RedisInstance
from bdr.errors import ServiceError, ServiceUnavailable
from bdr.runtime.process import spawn_redis
from bdr.util.host import free_port


def test_a_refused_connection_names_the_address_once() -> None:
    port = free_port()
    instance = RedisInstance(name="production", url=f"redis://127.0.0.1:{port}/0")
    with pytest.raises(ServiceUnavailable) as info, redis_errors(instance):
        redis_client(instance, retries=0).ping()
    assert info.value.message == (f"cannot reach Redis at 127.0.0.1:{port}: connection refused; is it running? check "
                                  "the url in bdr.yaml")


def test_a_password_variable_that_is_not_set_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = spawn_redis(tmp_path / "data", name="production", password="the-password")
    try:
        port = server.address()[1]
        monkeypatch.delenv("REDIS_PASSWORD", raising=False)
        unset = RedisInstance(name="production", url=server.url())
        with pytest.raises(ServiceError) as info, redis_errors(unset):
            redis_client(unset, retries=0).ping()
        assert info.value.message == (f"Redis at 127.0.0.1:{port} requires a password: $REDIS_PASSWORD (password_env "
                                      "of redis.production in bdr.yaml) is not set")
        monkeypatch.setenv("REDIS_PASSWORD", "wrong")
        with pytest.raises(ServiceError, match="refused the credentials") as info, redis_errors(unset):
            redis_client(unset, retries=0).ping()
        assert "the-password" not in " ".join(server.argv)  # spawned: the password went to its stdin
    finally:
        server.stop()
