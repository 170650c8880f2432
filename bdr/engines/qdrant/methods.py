"""The Qdrant methods by name: ``logical``, ``snapshot``, ``volume`` (see :mod:`.method` for the interface).

The registry (:class:`bdr.registry.Registry`) is filled once from the three modules; a second
method under one name is refused at import, and an unknown name is a
:class:`~bdr.errors.UsageError` that lists the known ones.
"""

from __future__ import annotations

from bdr.engines.qdrant import logical, snapshot, volume
from bdr.engines.qdrant.method import Method
from bdr.errors import UsageError
from bdr.registry import Registry, UnknownEntry
from bdr.repository.manifest import Manifest

METHODS: Registry[Method] = Registry("Qdrant method")
for _method in (logical.IMPLEMENTATION, snapshot.IMPLEMENTATION, volume.IMPLEMENTATION):
    METHODS.register(_method.name, _method)


def method_for(name: str) -> Method:
    try:
        return METHODS.get(name)
    except UnknownEntry as exc:
        raise UsageError(detail=f"unknown Qdrant method {name!r}; one of {', '.join(sorted(exc.known))}") from None


def method_of(manifest: Manifest) -> Method:
    """The method a set was made with."""
    return method_for(str(manifest.facts.get("method") or manifest.method))


def known_methods() -> list[str]:
    return sorted(METHODS.names())
