"""Options several commands share (repository location, keys, instance overrides)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import click

from bdr.config import Config
from bdr.errors import BdrError, UsageError
from bdr.sources import source_names

SOURCES = source_names(with_all=True)


def repository_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--destination DIR`` and ``--remote s3://...``: where the sets are."""
    func = click.option("--remote", metavar="URL", help="Off-site repository, e.g. s3://bucket/prefix.")(func)
    func = click.option("--destination", "-d", metavar="DIR", type=click.Path(file_okay=False),
                        help="Local repository directory (default: repository in bdr.yaml).")(func)
    return func


def key_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--key-file", metavar="FILE", type=click.Path(dir_okay=False),
                        help="Encryption key file (default: encryption settings in bdr.yaml, $BDR_KEY).")(func)


def with_redis_url(config: Config, url: str | None, instance: str | None) -> Config:
    """``--redis-url`` replaces the url of the chosen Redis instance (never carries a password)."""
    if not url:
        return config
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss"):
        raise UsageError(detail=f"--redis-url must start with redis:// or rediss://, got {url!r}")
    if parsed.password:
        raise UsageError(
            detail="do not put a password in --redis-url (it would show in ps and shell history); "
            "set REDIS_PASSWORD or password_file in bdr.yaml"
        )
    current = config.redis_instance(instance)
    updated = dataclasses.replace(current, url=url)
    return dataclasses.replace(config, redis={**config.redis, current.name: updated})


def target_label(config: Config, source: str, target: str | None) -> str:
    """The instance a restore writes over, with its address: ``redis production at redis://127.0.0.1:6379/0``."""
    if source == "redis":
        instance = config.redis_instance(target)
        return f"redis {instance.name} at {instance.url}"
    if source == "qdrant":
        qdrant = config.qdrant_instance(target)
        where = qdrant.url or f"embedded {config.resolve(qdrant.path or '.')}"
        return f"qdrant {qdrant.name} at {where}"
    if source == "config":
        return f"the configuration files under {config.resolve(config.files.root)}"
    if source == "prometheus":
        prometheus = config.prometheus_instance(target)
        return f"prometheus {prometheus.name} at {prometheus.url} (its whole TSDB)"
    if source == "grafana":
        grafana = config.grafana_instance(target)
        return f"grafana {grafana.name} ({config.resolve(grafana.db_path)} and its config files)"
    return (f"the whole system: redis {config.redis_instance().name} at {config.redis_instance().url}, qdrant "
            f"{config.qdrant_instance().name} and the configuration under {config.resolve(config.files.root)}")


def restore_prompt(config: Config, source: str, backup: str, target: str | None, selective: bool,
                   destination: str | None = None, remote: str | None = None) -> str:
    """The confirmation question of ``bdr restore``: which set (``latest`` resolved), over what, where."""
    shown = backup
    if backup == "latest":
        from bdr.api.inputs import resolve_input

        try:
            resolved = resolve_input(config, backup, source, destination, remote, target=target)
            shown = f"latest ({resolved.label})"
        except BdrError:
            pass  # the restore itself reports it
    what = "the matching items of" if selective else "ALL data of"
    return f"Restore {shown} over {what} {target_label(config, source, target)}? A safety backup is taken first"
