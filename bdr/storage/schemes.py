"""The registry of url schemes a repository location may use (``s3://``), and their storage factories.

A backend registers itself when its module is imported (:mod:`bdr.storage.s3`); a second
factory for one scheme is refused. :func:`bdr.storage.open_storage` imports a known
backend on first use, so a local repository never loads boto3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bdr.registry import DuplicateEntry, Registry

if TYPE_CHECKING:
    from bdr.storage.base import Storage

SCHEMES: Registry[Callable[..., Storage]] = Registry("repository url scheme", {"s3": "bdr.storage.s3"})
"""Storage factories by url scheme; a built-in's module registers it when first looked up."""


def register_scheme(scheme: str, factory: Callable[..., Storage]) -> None:
    """Make ``scheme://...`` locations open with ``factory(location, **options)`` (the same one again is a
    no-op, a re-import; a different one is refused)."""
    old = SCHEMES.loaded(scheme)
    if old is factory:
        return
    try:
        SCHEMES.register(scheme, factory)
    except DuplicateEntry:
        raise DuplicateEntry(f"two storage backends for {scheme}://") from None


def factory_for(scheme: str) -> Callable[..., Any] | None:
    """The factory of ``scheme`` (its built-in backend imported first); None when no backend has it."""
    return SCHEMES.find(scheme)


def scheme_examples() -> str:
    """``s3://bucket/prefix``-style examples of every known scheme, for error messages."""
    return " or ".join(f"{name}://bucket/prefix" for name in SCHEMES.names())
