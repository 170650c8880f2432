"""The Qdrant methods by name: ``logical``, ``snapshot``, ``volume`` (see :mod:`.method` for the interface).

The registry is built once from the three modules; a second method under one name is
refused at import, and an unknown name is a :class:`~bdr.errors.UsageError` that lists
the known ones.
"""

from __future__ import annotations

from collections.abc import Mapping

from bdr.engines.qdrant import logical, snapshot, volume
from bdr.engines.qdrant.method import Method
from bdr.errors import UsageError
from bdr.manifest import Manifest


def _registry(*methods: Method) -> dict[str, Method]:
    found: dict[str, Method] = {}
    for method in methods:
        if method.name in found:
            raise RuntimeError(f"two Qdrant methods are named {method.name!r}")
        found[method.name] = method
    return found


METHODS: Mapping[str, Method] = _registry(logical.IMPLEMENTATION, snapshot.IMPLEMENTATION, volume.IMPLEMENTATION)


def method_for(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise UsageError(detail=f"unknown Qdrant method {name!r}; one of {', '.join(sorted(METHODS))}") from None


def method_of(manifest: Manifest) -> Method:
    """The method a set was made with."""
    return method_for(str(manifest.facts.get("method") or manifest.method))


def known_methods() -> list[str]:
    return sorted(METHODS)
