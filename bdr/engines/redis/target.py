"""The Redis instance an operation works on: its runtime, where its files are, whether it runs.

One place answers "where are this instance's data files and how does it persist", up or
down: the runtime's effective settings (``CONFIG GET`` when the server answers; its config
file and launch arguments, parsed as Redis parses them, when it does not), with the data
directory as bdr reaches it on this host.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import redis

from bdr.config import RedisInstance
from bdr.engines.redis.info import LAYOUT_SETTINGS, PersistenceLayout
from bdr.errors import BdrError
from bdr.runtime import redis_runtime
from bdr.runtime.base import Launch, RedisRuntime


@dataclass(slots=True)
class RedisTarget:
    """An instance of bdr.yaml (or of a journal's record) with its runtime and layout."""

    instance: RedisInstance
    runtime: RedisRuntime
    layout: PersistenceLayout
    running: bool
    version: str | None = None

    @property
    def name(self) -> str:
        return self.instance.name


def server_version(runtime: RedisRuntime) -> str | None:
    """``redis_version`` of a running server, else what its runtime knows (None if nothing)."""
    with contextlib.suppress(redis.RedisError, BdrError):
        return str(runtime.client(timeout=5.0, retries=0).info("server")["redis_version"])
    with contextlib.suppress(BdrError, OSError):
        return runtime.describe().get("version") or None
    return None


def open_target(instance: RedisInstance, launch: Launch | None = None) -> RedisTarget:
    """The instance's runtime and layout, whether it runs or not (``launch``: from a journal)."""
    runtime = redis_runtime(instance, launch=launch)
    running = runtime.running()
    settings = runtime.settings(LAYOUT_SETTINGS)
    version = server_version(runtime)
    layout = PersistenceLayout.from_settings(settings, runtime.data_path(), version)
    return RedisTarget(instance, runtime, layout, running, version)
