"""Checked reading: each stored object hashed as it streams, a mismatch raised at its end, before any use."""

from __future__ import annotations

import hashlib
import io
from typing import Any, BinaryIO

from bdr.errors import ChecksumMismatch
from bdr.repository.manifest import CHUNK, StoredObject


class CheckedReader(io.RawIOBase):
    """A stored object's bytes, hashed as they are read, checked against the manifest at their end.

    At the end of the stream (or as soon as it runs longer than recorded) a size or sha256
    that differs from :class:`~bdr.repository.manifest.StoredObject` raises
    :class:`~bdr.errors.ChecksumMismatch`, and keeps raising on every later read.
    """

    def __init__(self, raw: BinaryIO, obj: StoredObject, ref: str) -> None:
        super().__init__()
        self._raw = raw
        self._obj = obj
        self._ref = ref
        self._digest = hashlib.sha256()
        self._size = 0
        self._failure: ChecksumMismatch | None = None
        self.checked = False

    def readable(self) -> bool:
        return True

    def _fail(self, actual: str) -> ChecksumMismatch:
        self._failure = ChecksumMismatch(name=self._obj.name, ref=self._ref, expected=self._obj.sha256[:16],
                                         actual=actual)
        return self._failure

    def read(self, size: int | None = -1) -> bytes:
        if self._failure is not None:
            raise self._failure
        whole = size is None or size < 0
        data = self._raw.read() if size is None or size < 0 else self._raw.read(size)
        if data:
            self._digest.update(data)
            self._size += len(data)
            if self._size > self._obj.size:
                raise self._fail(f"more than the {self._obj.size} bytes recorded")
        if whole or (not data and size != 0):
            self.finish()
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def finish(self) -> None:
        """Compare what was read with the manifest (once the whole object was read)."""
        if self._failure is not None:
            raise self._failure
        if self.checked:
            return
        actual = self._digest.hexdigest()
        if self._size != self._obj.size or actual != self._obj.sha256:
            detail = actual[:16] if self._size == self._obj.size else f"{actual[:16]} ({self._size} bytes of " \
                                                                        f"{self._obj.size}: truncated?)"
            raise self._fail(detail)
        self.checked = True

    def drain(self) -> None:
        """Read the rest of the object and check it."""
        while self.read(CHUNK):
            pass
        self.finish()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class VerifiedStream(io.RawIOBase):
    """The plaintext of a stored object; its stored bytes are checked when the plaintext ends.

    Used as a context manager, a clean exit reads what the caller left (a tar's padding, the
    end of a zstd frame) so the check always runs before the ``with`` block is left; an exit
    by an exception just closes.
    """

    def __init__(self, plain: BinaryIO, checked: CheckedReader) -> None:
        super().__init__()
        self._plain = plain
        self._checked = checked

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        whole = size is None or size < 0
        data = self._plain.read() if size is None or size < 0 else self._plain.read(size)
        if whole or (not data and size != 0):
            self.verify()
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def verify(self) -> None:
        """Read what is left and check the stored object (raises ChecksumMismatch)."""
        while self._plain.read(CHUNK):
            pass
        self._checked.drain()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and not self.closed:
                self.verify()
        finally:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self._plain.close()
            self._checked.close()
        super().close()


