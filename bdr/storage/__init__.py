"""Where repository objects live: a local directory or an S3 bucket, behind one interface.

A storage knows keys (``redis/<set-id>/dump.rdb``) and bytes, nothing about backup sets:
that is the repository's job. :func:`open_storage` picks the implementation from a
location (a path or an ``s3://bucket/prefix`` url) through a registry of url schemes.

Every failure of the medium is translated here into a typed :mod:`bdr.errors` error (exit
9 for a file system, 7 for S3), whichever layer of a sink stack meets it first
(:mod:`bdr.storage.base`); :mod:`bdr.storage.retry` rides out a network that drops for a
moment; writes left by a killed run are found and removed with ``stale_uploads`` and
``abort_uploads``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bdr.storage.base import ObjectSink, Storage, WrittenObject
from bdr.storage.local import LocalStorage
from bdr.storage.schemes import factory_for, register_scheme, scheme_examples


def open_storage(location: str | Path, **options: Any) -> Storage:
    """The storage for a local path or a url whose scheme is registered (:mod:`bdr.storage.schemes`)."""
    text = str(location)
    if "://" in text:
        factory = factory_for(text.split("://", 1)[0])
        if factory is None:
            from bdr.errors import UsageError

            raise UsageError(detail=f"unsupported repository url {text!r}: use a path or {scheme_examples()}")
        storage: Storage = factory(text, **options)
        return storage
    return LocalStorage(Path(text))


__all__ = ["LocalStorage", "ObjectSink", "Storage", "WrittenObject", "open_storage", "register_scheme"]
