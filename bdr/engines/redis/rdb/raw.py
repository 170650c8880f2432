"""What both implementations of the digest return, before :mod:`.digest` gives it types.

The C extension (``_digest``) and the Python reference (:mod:`.reference`) hand back the
same plain dictionary, :class:`RawDigest`, and raise the same kind of error: a
``ValueError`` whose ``args`` are ``(message, byte offset, kind)`` with kind ``"corrupt"``
or ``"unsupported"`` (the C one is ``_digest.RdbError``, the Python one
:class:`RdbParseError`). :mod:`.digest` turns either into typed results and ``bdr.errors``.
"""

from __future__ import annotations

from typing import TypedDict

RawKeyHash = tuple[int, bytes, bytes, str]
"""(db, key, per-key hash as 16 little-endian bytes, type as TYPE names it)."""


class RawDigest(TypedDict):
    value: bytes
    rdb_version: int
    dbs: list[tuple[int, int, int]]
    functions: int
    module_aux: int
    aux: list[tuple[bytes, bytes]]
    sample: list[RawKeyHash]
    keys: list[RawKeyHash] | None
    checksum: str
    bytes: int


class RdbParseError(ValueError):
    """An RDB file the Python reference cannot digest: args are (message, offset, kind)."""

    def __init__(self, message: str, offset: int, kind: str = "corrupt") -> None:
        super().__init__(message, offset, kind)
