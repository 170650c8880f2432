"""How a service instance lives: started, stopped, killed, and where its data is.

Engines never shell out to ``redis-server``, ``systemctl`` or ``docker`` themselves: they
ask the instance's runtime, found by name in one :class:`~bdr.registry.Registry` (``redis/process``,
``redis/systemd``, ``redis/command``, ``redis/docker``, ``qdrant/docker``, ``prometheus/process``
... ``prometheus/docker``: :mod:`bdr.runtime.prometheus`). Registering a
name twice is refused at start-up; the list of names (for validation and help) is derived
from the registry. The built-in runtimes are imported when first asked for, so reading
bdr.yaml does not import the Docker SDK.

:func:`redis_runtime` builds the runtime of a configured instance, or, given the
:class:`~bdr.runtime.base.Launch` a restore journal recorded, the runtime that starts
that instance again exactly that way (``bdr restore --resume/--abort`` after bdr was
killed), whatever bdr.yaml says about its config file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bdr.errors import ConfigError
from bdr.registry import Registry, UnknownEntry
from bdr.runtime.base import Launch, Needs, RedisRuntime, Runtime

RUNTIMES: Registry[Callable[..., Runtime]] = Registry("runtime", {
    "redis/process": "bdr.runtime.process",
    "redis/systemd": "bdr.runtime.systemd",
    "redis/command": "bdr.runtime.command",
    "redis/docker": "bdr.runtime.docker",
    "qdrant/docker": "bdr.runtime.docker",
    "grafana/systemd": "bdr.runtime.grafana",
    "grafana/command": "bdr.runtime.grafana",
    "grafana/docker": "bdr.runtime.grafana",
    "prometheus/process": "bdr.runtime.prometheus",
    "prometheus/systemd": "bdr.runtime.prometheus",
    "prometheus/command": "bdr.runtime.prometheus",
    "prometheus/docker": "bdr.runtime.prometheus",
})
"""Runtimes by ``service/kind``; a built-in's module is imported (and registers it) on first lookup."""


def register_runtime(name: str, factory: Callable[..., Runtime]) -> None:
    """Make ``runtime: <kind>`` of a ``service`` (``name`` = ``service/kind``) build its runtime with
    ``factory(instance, launch=None, **options)``; a name registered twice is refused."""
    if "/" not in name:
        raise ValueError(f"runtime name {name!r} must be service/kind (redis/process)")
    RUNTIMES.register(name, factory)


def runtime_names(service: str) -> list[str]:
    """The runtime kinds ``service`` can use (``process``, ``systemd`` ...), built-in or registered."""
    return sorted({key.split("/", 1)[1] for key in RUNTIMES.names() if key.startswith(f"{service}/")})


def _factory(service: str, kind: str, where: str) -> Callable[..., Runtime]:
    try:
        return RUNTIMES.get(f"{service}/{kind}")
    except ImportError as exc:
        raise ConfigError(path="bdr.yaml", detail=f"{where}.runtime: {kind} needs {exc.name} "
                          f"(pip install 'bdr[{kind}]')") from exc
    except UnknownEntry:
        raise ConfigError(
            path="bdr.yaml", detail=f"{where}.runtime: unknown runtime {kind!r} (known: "
            f"{', '.join(runtime_names(service))})"
        ) from None


def redis_runtime(instance: Any, launch: Launch | None = None, **options: Any) -> RedisRuntime:
    """The runtime of Redis ``instance`` (bdr.yaml), or the one that starts it again as ``launch`` says."""
    kind = launch.runtime if launch is not None else instance.runtime
    runtime = _factory("redis", kind, f"redis.{instance.name}")(instance, launch=launch, **options)
    return runtime  # type: ignore[return-value]


def qdrant_runtime(instance: Any, launch: Launch | None = None, **options: Any) -> Runtime:
    """The runtime of Qdrant ``instance`` (only ``docker`` manages a Qdrant process today).

    ``qdrant/docker`` stays registered: ``qdrant.<name>.runtime: docker`` (what ``bdr init`` writes from a
    compose file) is validated against this registry, and this is the one way to build its container
    handle. No restore path calls it yet: bdr never stops or starts a Qdrant server (the volume method
    refuses while it answers), so there is nothing for the runtime to do there.
    """
    kind = launch.runtime if launch is not None else instance.runtime
    return _factory("qdrant", kind, f"qdrant.{instance.name}")(instance, launch=launch, **options)


def prometheus_runtime(instance: Any, launch: Launch | None = None, **options: Any) -> Runtime:
    """The runtime of Prometheus ``instance`` (bdr.yaml), or the one that starts it again as ``launch`` says."""
    kind = launch.runtime if launch is not None else instance.runtime
    return _factory("prometheus", kind, f"prometheus.{instance.name}")(instance, launch=launch, **options)


__all__ = ["RUNTIMES", "Launch", "Needs", "RedisRuntime", "Runtime", "prometheus_runtime", "qdrant_runtime",
           "redis_runtime", "register_runtime", "runtime_names"]
