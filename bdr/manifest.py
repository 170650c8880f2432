"""The manifest: the last thing written into a backup set, and the proof that it is complete.

It records what the set holds (every logical file with its size and sha256), how it is
stored (the objects in the repository, compressed and/or encrypted, with their own sizes,
checksums and, off-site, per-part checksums) and the facts the engine observed at backup
time (server version, key counts, digests, collection configs). A set without a manifest
is by definition incomplete. Secrets never appear here: only a key *id*.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

from bdr import __version__
from bdr.errors import CorruptArchive

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
CHUNK = 1024 * 1024


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def sha256_file(path: Path) -> tuple[str, int]:
    """sha256 hex digest and size of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def sha256_stream(stream: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def read_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    """A stream's content in 1 MiB chunks."""
    while chunk := stream.read(CHUNK):
        yield chunk


def copy_hashed(stream: IO[bytes], dest: Path) -> tuple[str, int]:
    """Copy ``stream`` into the file ``dest``; the sha256 and size of what was copied."""
    digest = hashlib.sha256()
    size = 0
    with dest.open("wb") as out:
        for chunk in read_chunks(stream):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One logical file of the backed-up data (``dump.rdb``, ``appendonlydir/...``)."""

    path: str
    size: int
    sha256: str
    """Empty for a secret: its ciphertext is authenticated (AES-GCM) instead, and a plain hash of a
    low-entropy secret would let anyone holding the manifest test guesses."""
    mode: int | None = None
    secret: bool = False


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object as stored in the repository, after compression and encryption."""

    name: str
    size: int
    sha256: str
    parts: tuple[str, ...] = ()
    """Per-part checksums of a multipart upload (off-site storage)."""
    part_size: int | None = None
    encrypted: bool = False
    """Encrypted on its own in a set that is not (the secrets of a configuration set)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """Everything known about one backup set."""

    id: str
    source: str
    instance: str
    method: str
    started_at: str
    finished_at: str
    files: tuple[FileEntry, ...]
    objects: tuple[StoredObject, ...]
    compressed: bool = False
    encrypted: bool = False
    key_id: str | None = None
    tags: tuple[str, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)
    children: tuple[str, ...] = ()
    """Ids of the member sets of a whole-system (``all``) set."""
    host: str = field(default_factory=socket.gethostname)
    bdr_version: str = __version__
    format: int = FORMAT_VERSION

    @property
    def started(self) -> datetime:
        return from_iso(self.started_at)

    @property
    def finished(self) -> datetime:
        return from_iso(self.finished_at)

    @property
    def data_size(self) -> int:
        return sum(entry.size for entry in self.files)

    @property
    def stored_size(self) -> int:
        return sum(obj.size for obj in self.objects)

    def object(self, name: str) -> StoredObject:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["facts"] = dict(self.facts)
        return data

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str) + "\n").encode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        values = dict(data)
        values["files"] = tuple(FileEntry(**f) for f in values.get("files", ()))
        values["objects"] = tuple(
            StoredObject(**{**o, "parts": tuple(o.get("parts", ()))}) for o in values.get("objects", ())
        )
        for key in ("tags", "children"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)

    @classmethod
    def from_json(cls, raw: bytes, name: str = MANIFEST_NAME) -> Manifest:
        try:
            return cls.from_dict(json.loads(raw))
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptArchive(name=name, detail=f"unreadable manifest: {exc}") from exc
