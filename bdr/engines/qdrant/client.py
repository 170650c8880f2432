"""Connections to one Qdrant, opened for one operation and closed again, with errors translated.

A Qdrant instance in bdr.yaml is either a server (``url``, optional API key from the
environment or a file) or the embedded engine: qdrant-client's local mode over a directory
(``path``). Local mode takes an exclusive lock on ``<path>/.lock`` for as long as a client
is open (portalocker, non-blocking), so a second client - the application, or another bdr
- fails at once. bdr therefore never keeps a client open across calls: every operation
opens one with :func:`connect`, and the context manager closes it, also on errors.

qdrant-client, httpx and local-mode exceptions never reach the user: :func:`qdrant_errors`
turns them into :class:`~bdr.errors.ServiceUnavailable`, :class:`~bdr.errors.ServiceBusy` or
:class:`~bdr.errors.ServiceError` with the address and a hint.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ApiException, ResponseHandlingException, UnexpectedResponse

from bdr.config import Config, QdrantInstance
from bdr.errors import BdrError, ServiceBusy, ServiceError, ServiceUnavailable

logger = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded qdrant-client"
LOCK_FILE = ".lock"
META_FILE = "meta.json"


@dataclass(frozen=True, slots=True)
class Target:
    """Where one configured Qdrant lives: a server url, or an embedded directory."""

    instance: QdrantInstance
    location: str
    """The server url, or the absolute path of the embedded directory."""

    @property
    def embedded(self) -> bool:
        return self.instance.embedded

    @property
    def name(self) -> str:
        return self.instance.name

    @property
    def path(self) -> Path:
        """The embedded directory (only meaningful when :attr:`embedded`)."""
        return Path(self.location)

    def label(self) -> str:
        kind = "embedded Qdrant" if self.embedded else "Qdrant server"
        return f"{kind} {self.name} ({self.location})"


def target_of(config: Config, name: str | None) -> Target:
    """The configured instance ``name`` (the default one when None), with its location resolved."""
    instance = config.qdrant_instance(name)
    if instance.url:
        return Target(instance, instance.url.rstrip("/"))
    if not instance.path:
        from bdr.errors import ConfigError

        raise ConfigError(path=config.source_label, detail=f"qdrant.{instance.name}: set url (a server) or path "
                          "(the embedded engine)")
    return Target(instance, str(config.resolve(instance.path).resolve()))


def client_version() -> str:
    try:
        return importlib.metadata.version("qdrant-client")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - installed with bdr
        return "unknown"


def embedded_version() -> str:
    """How an embedded instance's "version" is recorded in manifests."""
    return f"{EMBEDDED_PREFIX} {client_version()}"


@contextlib.contextmanager
def qdrant_errors(target: Target, action: str) -> Iterator[None]:
    """Translate qdrant-client / httpx / local-mode errors raised inside the block."""
    try:
        yield
    except BdrError:
        raise
    except UnexpectedResponse as exc:
        detail = _response_detail(exc)
        if exc.status_code in (401, 403):
            raise ServiceError(
                detail=f"{target.label()} refused the credentials while trying to {action} ({detail}); check "
                f"api_key_env/api_key_file of qdrant.{target.name} in bdr.yaml"
            ) from exc
        raise ServiceError(detail=f"{target.label()} refused to {action}: HTTP {exc.status_code} {detail}") from exc
    except ResponseHandlingException as exc:
        raise ServiceUnavailable(service="Qdrant", address=target.location, detail=str(exc.source) or
                                 type(exc.source).__name__) from exc
    except (httpx.TransportError, ConnectionError) as exc:
        raise ServiceUnavailable(service="Qdrant", address=target.location, detail=str(exc) or
                                 type(exc).__name__) from exc
    except ApiException as exc:
        raise ServiceError(detail=f"{target.label()} failed to {action}: {exc}") from exc
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise ServiceBusy(
                service="embedded Qdrant", address=target.location,
                detail="another process has it open (local mode allows one client); stop the application "
                "that uses it, or point bdr.yaml at a Qdrant server",
            ) from exc
        raise ServiceError(detail=f"{target.label()} failed to {action}: {exc}") from exc
    except (ValueError, KeyError) as exc:  # local mode's errors; qdrant-client's validation of a request
        raise ServiceError(detail=f"{target.label()} failed to {action}: {exc}") from exc


def _response_detail(exc: UnexpectedResponse) -> str:
    try:
        status = exc.structured().get("status")
        if isinstance(status, dict) and status.get("error"):
            return str(status["error"])
    except (ValueError, AttributeError):
        pass
    return exc.content[:200].decode(errors="replace")


@contextlib.contextmanager
def connect(target: Target, *, create: bool = False, timeout: float | None = None) -> Iterator[QdrantClient]:
    """A client for ``target``, closed when the block ends.

    For the embedded engine, ``create`` allows a directory that does not exist yet (a
    restore onto an empty machine); a backup of a missing directory is an error instead of
    an empty set.
    """
    instance = target.instance
    with qdrant_errors(target, "open a connection"):
        if target.embedded:
            path = target.path
            if not create and not (path / META_FILE).is_file():
                raise ServiceUnavailable(
                    service="embedded Qdrant", address=str(path),
                    detail=f"no qdrant-client local-mode storage there (meta.json missing); check qdrant."
                    f"{instance.name}.path in bdr.yaml, or set url for a Qdrant server",
                )
            path.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "local mode is not recommended for > 20,000 points"
                client = QdrantClient(path=str(path))
        else:
            client = QdrantClient(url=target.location, api_key=instance.api_key(),
                                  timeout=int(timeout or instance.timeout), check_compatibility=False)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()


def server_version(client: QdrantClient, target: Target) -> str:
    """The server's version (``1.12.4``), or ``embedded qdrant-client X`` for local mode."""
    if target.embedded:
        return embedded_version()
    with qdrant_errors(target, "report its version"):
        return str(client.info().version)


def list_collections(client: QdrantClient, target: Target) -> list[str]:
    with qdrant_errors(target, "list its collections"):
        return sorted(c.name for c in client.get_collections().collections)


def aliases(client: QdrantClient, target: Target) -> dict[str, str]:
    """``alias -> collection`` for every alias of the instance."""
    with qdrant_errors(target, "list its aliases"):
        return {a.alias_name: a.collection_name for a in client.get_aliases().aliases}


def reachable(target: Target, timeout: float = 3.0) -> bool:
    """Whether a server answers at its url (never opens an embedded directory)."""
    if target.embedded:
        return False
    headers = {"api-key": key} if (key := target.instance.api_key()) else {}
    try:
        response = httpx.get(f"{target.location}/", headers=headers, timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code < 500
