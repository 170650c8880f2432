"""Read-only looks at a live service: what an operator compares before and after a restore.

A drill (or a script) proves a restore by comparing the service with what it was: Redis's
key count and ``DEBUG DIGEST`` (:func:`redis_fingerprint`), the points of a Qdrant
collection through a client of the configured instance (:func:`qdrant_client`), where an
embedded Qdrant keeps its files (:func:`qdrant_embedded_path`), and how far a continuous
archive lags (:func:`archive_status`, :func:`archiver_state`), which dashboards a grafana.db
holds (:func:`grafana_dashboard_uids`). Nothing here changes a
service; errors are :mod:`bdr.errors` exceptions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bdr.config import Config
from bdr.engines.redis.info import DIGEST_UNAVAILABLE, digest

if TYPE_CHECKING:
    import redis
    from qdrant_client import QdrantClient

    from bdr.engines.redis.archive.report import ArchiveStatus


@dataclass(frozen=True, slots=True)
class RedisFingerprint:
    """A live Redis's content in two numbers: its key count and its ``DEBUG DIGEST``.

    ``digest`` is :data:`DIGEST_UNAVAILABLE` when the server refuses ``DEBUG`` (Redis 7's
    ``enable-debug-command no``): then only the key count can be compared.
    """

    keys: int
    digest: str

    @property
    def has_digest(self) -> bool:
        return self.digest != DIGEST_UNAVAILABLE


def redis_fingerprint(client: redis.Redis) -> RedisFingerprint:
    """Key count (``DBSIZE``) and content digest of the database ``client`` talks to."""
    return RedisFingerprint(int(client.dbsize()), digest(client))


@contextlib.contextmanager
def qdrant_client(config: Config, instance: str = "production", *, create: bool = False
                  ) -> Iterator[QdrantClient]:
    """A client of the configured Qdrant ``instance``, closed when the block ends.

    ``create`` lets an embedded instance start in a directory that does not exist yet.
    """
    from bdr.engines.qdrant.client import connect, target_of

    with connect(target_of(config, instance), create=create) as client:
        yield client


def qdrant_embedded_path(config: Config, instance: str = "production") -> Path:
    """The directory an embedded Qdrant ``instance`` keeps its storage in."""
    from bdr.engines.qdrant.client import target_of

    return target_of(config, instance).path


def qdrant_embedded_version() -> str:
    """The version of the embedded Qdrant engine (qdrant-client's local mode) bdr runs."""
    from bdr.engines.qdrant.client import embedded_version

    return embedded_version()


def archive_status(config: Config, instance: str = "production") -> ArchiveStatus:
    """The continuous archive of Redis ``instance``: its recoverable windows and how far it lags (as
    ``bdr status`` shows it)."""
    from bdr.engines.redis.archive.report import archive_status as status_of

    return status_of(config, config.archive_settings(instance))


def archiver_state(config: Config, instance: str = "production") -> dict[str, Any] | None:
    """The archiver's own status file for ``instance`` (``running`` checked against its lock); None when it
    never ran."""
    from bdr.engines.redis.archive.spool import read_status

    return read_status(config.archive_spool(instance))


def grafana_dashboard_uids(db_path: Path) -> list[str]:
    """The dashboard uids a grafana.db holds, sorted (opened read-only; a corrupt file is
    :class:`~bdr.errors.GrafanaDbCorrupt`)."""
    from bdr.engines.grafana.database import read_inventory

    return list(read_inventory(db_path).uids)


__all__ = [
    "DIGEST_UNAVAILABLE",
    "RedisFingerprint",
    "archive_status",
    "archiver_state",
    "grafana_dashboard_uids",
    "qdrant_client",
    "qdrant_embedded_path",
    "qdrant_embedded_version",
    "redis_fingerprint",
]
