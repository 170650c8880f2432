"""The storage interface: keyed objects, written atomically, read as streams."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class WrittenObject:
    """What a sink reports once its object is durable."""

    key: str
    size: int
    sha256: str
    parts: tuple[str, ...] = ()
    part_size: int | None = None


@runtime_checkable
class ObjectSink(Protocol):
    """A writable object: bytes go in with :meth:`write`; nothing is visible until :meth:`commit`."""

    def write(self, data: bytes) -> int: ...

    def commit(self) -> WrittenObject: ...

    def abort(self) -> None: ...


def write_all(sink: ObjectSink, data: bytes) -> WrittenObject:
    """Write ``data`` into ``sink`` and commit it; abort it (nothing visible) on any failure."""
    try:
        sink.write(data)
    except BaseException:
        sink.abort()
        raise
    return sink.commit()


@runtime_checkable
class Storage(Protocol):
    """Keyed objects. Keys use ``/`` separators and never start with ``/``."""

    location: str
    """``local`` or ``s3``: the medium, for the 3-2-1 rule."""
    url: str
    """Where it is, for messages (a path or ``s3://bucket/prefix``)."""

    def open_write(self, key: str) -> ObjectSink: ...

    def open_read(self, key: str) -> BinaryIO: ...

    def read_bytes(self, key: str) -> bytes: ...

    def put_bytes(self, key: str, data: bytes) -> WrittenObject: ...

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create ``key`` only if it does not exist; False when it does (used for locks)."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix`` (recursive), in no particular order."""
        ...

    def children(self, prefix: str = "") -> builtins.list[str]:
        """Names of the immediate children (files and "directories") under ``prefix``."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> None: ...

    def free_space(self) -> int | None:
        """Bytes free on the medium, when it can tell."""
        ...
