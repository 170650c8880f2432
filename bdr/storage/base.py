"""The storage interface: keyed objects, written atomically, read as streams.

A write goes through an :class:`ObjectSink`: nothing is visible until its ``commit``, and
``abort`` discards it. A sink whose write failed is *broken*: it has already discarded
what it held, every later ``write`` or ``commit`` raises the same error again
(:func:`failed_again`), and ``abort`` still works (always, and as often as it is called).
That is what lets a stack of sinks (tar → zstd → AES → file or S3) fail anywhere and be
unwound from the top without a second, different error hiding the first.

A write in progress is an *upload*: a temporary file beside the final one (local) or a
multipart upload (S3). A process killed mid-write leaves its upload behind;
:meth:`Storage.stale_uploads` finds those and :meth:`Storage.abort_uploads` removes them.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from bdr.errors import BdrError, StorageError


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


def failed_again(failure: BaseException, where: str) -> BdrError:
    """The error for using a broken sink again: a copy of the one that broke it, so the user reads
    the real cause (disk full, S3 unreachable) whichever layer trips over it next."""
    if isinstance(failure, BdrError):
        try:
            return type(failure)(failure.message, **failure.fields)
        except TypeError:  # a subclass with its own constructor
            pass
    return StorageError(detail=f"write to {where} after it failed: {failure}")


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

    def abort_uploads(self, prefix: str = "") -> int:
        """Discard every write in progress under ``prefix`` (a key or a "directory"); how many.

        S3: abort each multipart upload whose key is ``prefix`` or under ``prefix/``. Local:
        remove bdr's temporary files there whose writer (the pid in the name) is no longer
        running on this host. The caller makes sure no live writer is at work there (the
        repository lock): the sweep calls this for every incomplete set it removes.
        """
        ...

    def stale_uploads(self, older_than_seconds: float = 0.0) -> builtins.list[str]:
        """Keys (sorted, each once) with a write in progress started more than ``older_than_seconds``
        ago and not finished: what a killed run left (local: only those whose writer is dead)."""
        ...


class ObjectCipher(Protocol):
    """Encrypts objects on their way into the repository, decrypts them on the way out, and seals manifests.

    ``digest`` / ``digest_matches`` are a keyed MAC (``hmac-sha256:<key id>:<ref>:<mac>``):
    what a set written with this key records as its manifest's ``mac``.
    """

    key_id: str

    def encrypting(self, sink: ObjectSink) -> ObjectSink: ...

    def decrypting(self, stream: BinaryIO, name: str) -> BinaryIO: ...

    def digest(self, data: bytes) -> str: ...

    def digest_matches(self, data: bytes, recorded: str, name: str = ...) -> bool: ...
