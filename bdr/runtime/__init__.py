"""How a service instance lives: started, stopped, killed, and where its data is.

Engines never shell out to ``redis-server``, ``systemctl`` or ``docker`` themselves: they
ask the instance's runtime, found by name in one registry (``redis/process``,
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

import importlib
from collections.abc import Callable
from typing import Any

from bdr.errors import ConfigError
from bdr.runtime.base import Launch, Needs, RedisRuntime, Runtime

_RUNTIMES: dict[str, Callable[..., Runtime]] = {}
_BUILTIN: dict[str, str] = {
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
}
"""Built-in runtimes: registry name -> the module that registers it when imported."""


def register_runtime(name: str, factory: Callable[..., Runtime]) -> None:
    """Make ``runtime: <kind>`` of a ``service`` (``name`` = ``service/kind``) build its runtime with
    ``factory(instance, launch=None, **options)``; a name registered twice is refused."""
    if "/" not in name:
        raise ValueError(f"runtime name {name!r} must be service/kind (redis/process)")
    if name in _RUNTIMES:
        raise ValueError(f"runtime {name!r} is registered twice ({_RUNTIMES[name]!r} and {factory!r})")
    _RUNTIMES[name] = factory


def runtime_names(service: str) -> list[str]:
    """The runtime kinds ``service`` can use (``process``, ``systemd`` ...), built-in or registered."""
    names = {key.split("/", 1)[1] for key in (*_BUILTIN, *_RUNTIMES) if key.startswith(f"{service}/")}
    return sorted(names)


def _factory(service: str, kind: str, where: str) -> Callable[..., Runtime]:
    key = f"{service}/{kind}"
    if key not in _RUNTIMES and key in _BUILTIN:
        try:
            importlib.import_module(_BUILTIN[key])
        except ImportError as exc:
            raise ConfigError(path="bdr.yaml", detail=f"{where}.runtime: {kind} needs {exc.name} "
                              f"(pip install 'bdr[{kind}]')") from exc
    try:
        return _RUNTIMES[key]
    except KeyError:
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
    """The runtime of Qdrant ``instance`` (only ``docker`` manages a Qdrant process today)."""
    kind = launch.runtime if launch is not None else instance.runtime
    return _factory("qdrant", kind, f"qdrant.{instance.name}")(instance, launch=launch, **options)


def prometheus_runtime(instance: Any, launch: Launch | None = None, **options: Any) -> Runtime:
    """The runtime of Prometheus ``instance`` (bdr.yaml), or the one that starts it again as ``launch`` says."""
    kind = launch.runtime if launch is not None else instance.runtime
    return _factory("prometheus", kind, f"prometheus.{instance.name}")(instance, launch=launch, **options)


__all__ = ["Launch", "Needs", "RedisRuntime", "Runtime", "prometheus_runtime", "qdrant_runtime", "redis_runtime",
           "register_runtime", "runtime_names"]
