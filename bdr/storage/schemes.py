"""The registry of url schemes a repository location may use (``s3://``), and their storage factories.

A backend registers itself when its module is imported (:mod:`bdr.storage.s3`); a second
factory for one scheme is refused. :func:`bdr.storage.open_storage` imports a known
backend on first use, so a local repository never loads boto3.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bdr.storage.base import Storage

BACKENDS: dict[str, str] = {"s3": "bdr.storage.s3"}
"""The module that registers each built-in scheme."""

_FACTORIES: dict[str, Callable[..., Storage]] = {}


def register_scheme(scheme: str, factory: Callable[..., Storage]) -> None:
    """Make ``scheme://...`` locations open with ``factory(location, **options)``."""
    if _FACTORIES.get(scheme, factory) is not factory:
        raise RuntimeError(f"two storage backends for {scheme}://")
    _FACTORIES[scheme] = factory


def factory_for(scheme: str) -> Callable[..., Any] | None:
    """The factory of ``scheme`` (its built-in backend imported first); None when no backend has it."""
    if scheme not in _FACTORIES and scheme in BACKENDS:
        importlib.import_module(BACKENDS[scheme])
    return _FACTORIES.get(scheme)
