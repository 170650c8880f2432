"""How a service instance lives: started, stopped, killed, and where its data is.

Engines never shell out to ``redis-server`` or ``docker`` themselves: they ask the
instance's runtime, found by name in a registry (``process``, ``docker``, ...).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from bdr.errors import ConfigError
from bdr.runtime.base import Runtime

_RUNTIMES: dict[str, Callable[..., Runtime]] = {}


def register_runtime(name: str, factory: Callable[..., Runtime]) -> None:
    """Make ``runtime: name`` in bdr.yaml build its runtime with ``factory(instance, **options)``."""
    _RUNTIMES[name] = factory


def redis_runtime(instance: Any, **options: Any) -> Runtime:
    """The runtime that manages a configured Redis instance."""
    _load_builtin()
    try:
        factory = _RUNTIMES[f"redis/{instance.runtime}"]
    except KeyError:
        known = sorted(k.split("/", 1)[1] for k in _RUNTIMES if k.startswith("redis/"))
        raise ConfigError(
            path="bdr.yaml", detail=f"redis.{instance.name}.runtime: unknown runtime {instance.runtime!r} "
            f"(known: {', '.join(known)})"
        ) from None
    return factory(instance, **options)


def _load_builtin() -> None:
    import bdr.runtime.process

    with contextlib.suppress(ImportError):  # the docker runtime is optional
        import bdr.runtime.docker  # noqa: F401


__all__ = ["Runtime", "redis_runtime", "register_runtime"]
