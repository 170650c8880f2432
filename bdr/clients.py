"""Connections to the services bdr protects, built from bdr.yaml, with errors translated.

Passwords come from the environment or a file named in bdr.yaml, never from argv; ACL
users (``username``) and TLS (``rediss://`` or ``tls:``) are supported. A connection
failure becomes :class:`~bdr.errors.ServiceUnavailable` with the address, never a
redis-py traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from bdr.config import RedisInstance
from bdr.errors import ServiceError, ServiceUnavailable

_CONNECT_NOISE = re.compile(r"^Error -?\d+ connecting to (?:\S+:\d+|\S+?)\.(?:\s+|$)")
"""redis-py's ``Error 111 connecting to 127.0.0.1:6379. Connection refused.``: the prefix before the reason
(the address ends at the port, or at the first ``.`` followed by a space for a unix socket path)."""


def redis_address(url: str) -> tuple[str, int, int]:
    """Host, port and db number of a ``redis://`` url."""
    parsed = urlparse(url)
    db = int(parsed.path.strip("/") or 0) if parsed.path.strip("/").isdigit() else 0
    return parsed.hostname or "127.0.0.1", parsed.port or 6379, db


def redis_client(instance: RedisInstance, db: int | None = None, timeout: float = 30.0,
                 url: str | None = None, retries: int = 2) -> redis.Redis:
    """A client for ``instance`` (or ``url`` with the instance's credentials).

    ``retries`` reconnects with a short backoff; probes (is it up yet?) pass 0 so that a
    server that is down is reported at once, not after redis-py's default backoff.
    """
    target = url or instance.url
    host, port, url_db = redis_address(target)
    tls = instance.tls.enabled or target.startswith("rediss://")
    kwargs: dict[str, Any] = {
        "host": host,
        "port": port,
        "db": url_db if db is None else db,
        "username": instance.username or urlparse(target).username or None,
        "password": instance.password() or urlparse(target).password or None,
        "socket_timeout": timeout,
        "socket_connect_timeout": min(timeout, 10.0),
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries) if retries else Retry(NoBackoff(), 0),
    }
    if tls:
        kwargs.update(
            ssl=True,
            ssl_ca_certs=instance.tls.ca_file,
            ssl_certfile=instance.tls.cert_file,
            ssl_keyfile=instance.tls.key_file,
            ssl_cert_reqs="required" if instance.tls.verify else "none",
        )
    return redis.Redis(**kwargs)


@contextlib.contextmanager
def redis_errors(instance: RedisInstance | str, action: str = "talk to") -> Iterator[None]:
    """Translate redis-py errors raised inside the block into bdr's typed errors."""
    url = instance if isinstance(instance, str) else instance.url
    host, port, _ = redis_address(url)
    try:
        yield
    except redis.AuthenticationError as exc:
        raise ServiceError(detail=_auth_detail(instance, host, port, exc)) from exc
    except redis.ConnectionError as exc:
        detail = _CONNECT_NOISE.sub("", str(exc)).strip(" .") or "connection failed"
        raise ServiceUnavailable(service="Redis", address=f"{host}:{port}", detail=detail.lower()) from exc
    except redis.TimeoutError as exc:
        raise ServiceUnavailable(service="Redis", address=f"{host}:{port}", detail=f"timed out ({exc})") from exc
    except redis.ResponseError as exc:
        if _refused_auth(str(exc)):
            raise ServiceError(detail=_auth_detail(instance, host, port, exc)) from exc
        raise ServiceError(detail=f"Redis at {host}:{port} refused to {action}: {exc}") from exc


AUTH_REFUSALS = ("NOAUTH", "WRONGPASS", "Authentication required", "invalid username-password",
                 "without any password configured", "client already authenticated")


def _refused_auth(message: str) -> bool:
    return any(text in message for text in AUTH_REFUSALS)


def _auth_detail(instance: RedisInstance | str, host: str, port: int, exc: Exception) -> str:
    """What to fix when Redis refuses bdr's credentials: name a password variable that is not set."""
    if isinstance(instance, RedisInstance) and not instance.password_file and instance.password_env \
            and not os.environ.get(instance.password_env):
        return (f"Redis at {host}:{port} requires a password: ${instance.password_env} (password_env of "
                f"redis.{instance.name} in bdr.yaml) is not set")
    if isinstance(instance, RedisInstance) and not instance.password_env and not instance.password_file:
        return (f"Redis at {host}:{port} requires a password: set password_env or password_file of "
                f"redis.{instance.name} in bdr.yaml")
    return (f"Redis at {host}:{port} refused the credentials ({exc}); check username and "
            "password_env/password_file in bdr.yaml")
