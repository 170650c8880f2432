"""The public API: the content digest of an RDB file as a typed, manifest-ready record.

:func:`digest_file` reads the file once (the C extension: mmap, GIL released) and returns a
:class:`ContentDigest`: the dataset digest, per-db key and expire counts, the aux fields
that identify the snapshot, and a deterministic sample of keys (bottom-k: the keys with the
smallest per-key hashes) that a restore can compare with a live server
(:func:`bdr.engines.redis.rdb.live.compare_sample`). :func:`key_hashes` gives every key's
hash (for tests and investigations).

When the extension is not built, the pure-Python reference runs instead, with a warning:
much slower, same answer; :attr:`ContentDigest.implementation` says which one ran.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from bdr.engines.redis.rdb import reference
from bdr.engines.redis.rdb.canonical import ALGORITHM
from bdr.engines.redis.rdb.raw import RawDigest, RawKeyHash
from bdr.errors import (
    DigestExtensionMissing,
    IntegrityError,
    RdbCorrupt,
    RdbNotFound,
    RdbUnreadable,
    RdbUnsupported,
)

try:
    from bdr.engines.redis.rdb import _digest
except ImportError as exc:  # not built: the reference takes over
    HAVE_C = False
    _IMPORT_ERROR = str(exc)
else:
    HAVE_C = True
    _IMPORT_ERROR = ""

logger = logging.getLogger(__name__)

AUX_FIELDS = ("redis-ver", "redis-bits", "ctime", "aof-base", "repl-stream-db", "repl-id", "repl-offset")
"""The aux fields of the RDB header kept in the digest record: which Redis wrote it, when, at which replication
offset, and whether it is the preamble of an AOF."""

DEFAULT_SAMPLE = 64


class Implementation(StrEnum):
    C = "c"
    PYTHON = "python"


Choice = Literal["auto", "c", "python"]


@dataclass(frozen=True, slots=True)
class KeyHash:
    """One key's hash: its database, name (bytes), per-key hash (32 hex digits) and type as TYPE names it."""

    db: int
    key: bytes
    hash: str
    type: str

    def to_facts(self) -> dict[str, Any]:
        return {"db": self.db, "key": base64.b64encode(self.key).decode("ascii"), "hash": self.hash,
                "type": self.type}

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> KeyHash:
        return cls(int(facts["db"]), base64.b64decode(str(facts["key"]), validate=True), str(facts["hash"]),
                   str(facts["type"]))


@dataclass(frozen=True, slots=True)
class ContentDigest:
    """The content digest of one RDB file (see the package docstring for its exact definition)."""

    algorithm: str
    value: str
    rdb_version: int
    keys: dict[int, int]
    expires: dict[int, int]
    functions: int
    module_aux: int
    aux: dict[str, str]
    checksum: str
    """``verified`` (the file's CRC64 matched), ``absent`` (written with ``rdbchecksum no``) or ``none`` (RDB < 5)."""
    sample: tuple[KeyHash, ...]
    implementation: Implementation
    bytes_read: int
    seconds: float = field(compare=False)

    @property
    def total_keys(self) -> int:
        return sum(self.keys.values())

    @property
    def megabytes_per_second(self) -> float:
        return self.bytes_read / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def same_content(self, other: ContentDigest) -> bool:
        """Both describe the same data: same algorithm and digest (and so, barring collisions, same keys)."""
        return self.algorithm == other.algorithm and self.value == other.value

    def to_facts(self) -> dict[str, Any]:
        """JSON-ready facts for a manifest (keys in base64: key names are bytes)."""
        return {
            "algorithm": self.algorithm,
            "value": self.value,
            "rdb_version": self.rdb_version,
            "keys": {str(db): n for db, n in sorted(self.keys.items())},
            "expires": {str(db): n for db, n in sorted(self.expires.items())},
            "functions": self.functions,
            "module_aux": self.module_aux,
            "aux": dict(self.aux),
            "checksum": self.checksum,
            "sample": [k.to_facts() for k in self.sample],
            "implementation": str(self.implementation),
            "bytes": self.bytes_read,
            "seconds": round(self.seconds, 6),
        }

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> ContentDigest:
        try:
            return cls(
                algorithm=str(facts["algorithm"]),
                value=str(facts["value"]),
                rdb_version=int(facts["rdb_version"]),
                keys={int(db): int(n) for db, n in dict(facts["keys"]).items()},
                expires={int(db): int(n) for db, n in dict(facts.get("expires", {})).items()},
                functions=int(facts.get("functions", 0)),
                module_aux=int(facts.get("module_aux", 0)),
                aux={str(k): str(v) for k, v in dict(facts.get("aux", {})).items()},
                checksum=str(facts.get("checksum", "none")),
                sample=tuple(KeyHash.from_facts(k) for k in facts.get("sample", [])),
                implementation=Implementation(str(facts.get("implementation", "c"))),
                bytes_read=int(facts.get("bytes", 0)),
                seconds=float(facts.get("seconds", 0.0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise IntegrityError(detail=f"the manifest's content digest facts are malformed: {exc!r}") from exc


def available() -> tuple[Implementation, ...]:
    """The implementations this installation has (the C one only when the extension is built)."""
    return (Implementation.C, Implementation.PYTHON) if HAVE_C else (Implementation.PYTHON,)


_warned = False


def _pick(choice: Choice) -> Implementation:
    global _warned
    if choice == "python":
        return Implementation.PYTHON
    if HAVE_C:
        return Implementation.C
    if choice == "c":
        raise DigestExtensionMissing(detail=_IMPORT_ERROR)
    if not _warned:
        logger.warning("the C extension of the RDB digest is not built (%s): using the pure-Python reference, "
                       "which is about 500 times slower", _IMPORT_ERROR)
        _warned = True
    return Implementation.PYTHON


def _hex(h: bytes) -> str:
    return int.from_bytes(h, "little").to_bytes(16, "big").hex()


def _key(raw: RawKeyHash) -> KeyHash:
    db, key, h, kind = raw
    return KeyHash(db, key, _hex(h), kind)


def _run(source: str, call: Callable[[], RawDigest]) -> RawDigest:
    """Run one implementation, translating its errors to bdr's."""
    try:
        return call()
    except FileNotFoundError as exc:
        raise RdbNotFound(path=source) from exc
    except OSError as exc:
        raise RdbUnreadable(path=source, detail=exc.strerror or str(exc)) from exc
    except ValueError as exc:
        if len(exc.args) != 3:
            raise
        message, offset, kind = exc.args
        error = RdbUnsupported if kind == "unsupported" else RdbCorrupt
        raise error(path=source, offset=offset, detail=message) from exc


def _record(raw: RawDigest, implementation: Implementation, seconds: float) -> ContentDigest:
    aux: dict[str, str] = {}
    for name, value in raw["aux"]:
        text = name.decode("utf-8", "backslashreplace")
        if text in AUX_FIELDS:
            aux[text] = value.decode("utf-8", "backslashreplace")
    return ContentDigest(
        algorithm=ALGORITHM,
        value=_hex(raw["value"]),
        rdb_version=raw["rdb_version"],
        keys={db: keys for db, keys, _ in raw["dbs"]},
        expires={db: expires for db, _, expires in raw["dbs"]},
        functions=raw["functions"],
        module_aux=raw["module_aux"],
        aux=aux,
        checksum=raw["checksum"],
        sample=tuple(_key(k) for k in raw["sample"]),
        implementation=implementation,
        bytes_read=raw["bytes"],
        seconds=seconds,
    )


def _digest_path(path: Path, sample: int, all_keys: bool, implementation: Implementation) -> RawDigest:
    if implementation is Implementation.C:
        return _run(str(path), lambda: _digest.digest_file(str(path), sample, all_keys))
    return _run(str(path), lambda: reference.digest_file(path, sample, all_keys))


def digest_file(path: Path, *, sample: int = DEFAULT_SAMPLE, implementation: Choice = "auto") -> ContentDigest:
    """The content digest of the RDB file at ``path`` with a bottom-``sample`` key sample.

    Raises :class:`~bdr.errors.RdbNotFound`, ``RdbUnreadable`` (a directory,
    no permission), ``RdbCorrupt`` (truncated, not an RDB, CRC64 mismatch) or ``RdbUnsupported``
    (a type or opcode this version does not know, a pre-GA module value); the last two name
    the byte offset.
    """
    chosen = _pick(implementation)
    started = time.perf_counter()
    raw = _digest_path(Path(path), max(sample, 0), False, chosen)
    return _record(raw, chosen, time.perf_counter() - started)


def digest_bytes(data: bytes, *, sample: int = DEFAULT_SAMPLE, implementation: Choice = "auto") -> ContentDigest:
    """The same for RDB bytes in memory (a ``DUMP``-free way to digest what a replica sent, and for tests)."""
    chosen = _pick(implementation)
    started = time.perf_counter()
    if chosen is Implementation.C:
        raw = _run("<bytes>", lambda: _digest.digest_bytes(data, max(sample, 0), False))
    else:
        raw = _run("<bytes>", lambda: reference.digest_bytes(data, max(sample, 0), False))
    return _record(raw, chosen, time.perf_counter() - started)


def key_hashes(path: Path, *, implementation: Choice = "auto") -> dict[tuple[int, bytes], KeyHash]:
    """Every key of the file with its per-key hash, by (db, key)."""
    chosen = _pick(implementation)
    raw = _digest_path(Path(path), 0, True, chosen)
    return {(k.db, k.key): k for k in (_key(r) for r in raw["keys"] or [])}
