"""One registry shape for every "named entries of one kind" table in bdr (runtimes, storage
schemes, engines, Qdrant methods, sources, drill runtimes).

An entry is registered once under its name (a second entry under that name is refused, naming
both); built-ins may be declared as name -> module, imported only when that name is first
looked up, so reading bdr.yaml never imports boto3 or the Docker SDK. An unknown name raises
:class:`UnknownEntry`, which lists the known names; callers translate it to the
:mod:`bdr.errors` class their layer uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class DuplicateEntry(ValueError, RuntimeError):
    """A second entry for a name that already has one (a programming error, raised at import; a
    ValueError and a RuntimeError, what the registries it replaced raised)."""


class UnknownEntry(LookupError):
    """A name nothing is registered under; ``known`` lists the names that are."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r}; one of {', '.join(known)}")


class Registry(Generic[T]):
    """Named entries of one ``kind``; ``builtins`` maps a name to the module that registers it, or,
    with ``attribute``, to the module whose ``attribute`` is the entry (``ENGINE``)."""

    def __init__(self, kind: str, builtins: Mapping[str, str] | None = None, *, attribute: str | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._builtins: dict[str, str] = dict(builtins or {})
        self._attribute = attribute

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; refused when ``name`` already has one (even the same)."""
        old = self._entries.get(name)
        if old is not None:
            raise DuplicateEntry(f"{self.kind} {name!r} is registered twice ({old!r} and {entry!r})")
        self._entries[name] = entry
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated object."""
        return lambda entry: self.register(name, entry)

    def find(self, name: str) -> T | None:
        """The entry of ``name`` (its built-in module imported first), or None.

        An ImportError of a built-in's module (a missing optional dependency) propagates.
        """
        if name not in self._entries and name in self._builtins:
            module = importlib.import_module(self._builtins[name])
            if self._attribute is not None and name not in self._entries:
                self.register(name, getattr(module, self._attribute))
        return self._entries.get(name)

    def get(self, name: str) -> T:
        """The entry of ``name``; :class:`UnknownEntry` (listing the names) when there is none."""
        entry = self.find(name)
        if entry is None:
            raise UnknownEntry(self.kind, name, self.names())
        return entry

    def names(self) -> list[str]:
        """Every name, built-in (imported or not) or registered, in registration/declaration order."""
        return list(dict.fromkeys((*self._builtins, *self._entries)))

    def loaded(self, name: str) -> T | None:
        """The entry of ``name`` if it is registered already (never imports anything)."""
        return self._entries.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._builtins
