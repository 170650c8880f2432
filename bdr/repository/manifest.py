"""The manifest: the last thing written into a backup set, and the proof that it is complete.

It records what the set holds (every logical file with its size and sha256), how it is
stored (the objects in the repository, compressed and/or encrypted, with their own sizes,
checksums and, off-site, per-part checksums) and the facts the engine observed at backup
time (server version, key counts, digests, collection configs). A set without a manifest
is by definition incomplete. Secrets never appear here: only a key *id*.

The manifest protects itself (format 2):

``digest``
    ``sha256:<hex>`` over the manifest's *canonical JSON*: the manifest as a JSON object
    without its ``digest`` and ``mac`` fields, keys sorted at every level, no whitespace
    (separators ``,`` and ``:``), non-ASCII characters as ``\\uXXXX`` escapes, numbers as
    Python's ``json`` writes them, no NaN or infinity (:func:`canonical_json`). It is
    computed over what the file holds, so any change of a value (an edited key count, a
    flipped byte, a truncation) makes it differ. It proves integrity, not origin: whoever
    edits the file can recompute it.
``mac``
    In a set written with a key (an encrypted set, or a configuration set whose secrets are
    encrypted), ``hmac-sha256:<key id>:<key ref>:<mac>``: an HMAC of the same canonical JSON
    under the encryption key (:meth:`bdr.crypto.stream.Cipher.digest`). Only the key's
    holder can make one, so it proves the manifest is the one bdr wrote. It is checked
    whenever the key is at hand (restore, verify).

Format-1 manifests (written by an older bdr) have neither; they still load, and ``bdr
verify`` reports them as :data:`NO_DIGEST`. A manifest whose digest or MAC does not match
makes its set *damaged* (see :mod:`bdr.repository`); :func:`load_manifest` says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from bdr import __version__
from bdr.errors import CorruptArchive, CryptoError

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 2
"""2: the manifest carries its own ``digest`` (and ``mac`` in a set written with a key)."""
CHUNK = 1024 * 1024
SEAL_FIELDS = ("digest", "mac")
"""The fields the canonical JSON leaves out: they are computed over the rest."""
DIGEST_PREFIX = "sha256:"

NO_DIGEST = "no manifest digest (written by an older bdr)"
DIGEST_MISMATCH = "manifest digest mismatch: edited or corrupt"
DIGEST_MISSING = "manifest digest missing from a format-2 manifest: edited"
MAC_MISMATCH = "manifest MAC mismatch: edited after bdr wrote it (the key proves it)"
MAC_MISSING = "manifest MAC missing from a set written with key {key_id}: edited"
MAC_OTHER_KEY = "manifest MAC made with key {mac_key}, not with the set's key {key_id}: edited"


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


def canonical_json(data: Mapping[str, Any]) -> bytes:
    """The bytes a manifest's digest and MAC are computed over (see the module docstring).

    ``data`` is the manifest as JSON values (what ``json.loads`` of the file gives);
    ``digest`` and ``mac`` are left out.
    """
    body = {key: value for key, value in data.items() if key not in SEAL_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def digest_of(data: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of :func:`canonical_json`."""
    return DIGEST_PREFIX + hashlib.sha256(canonical_json(data)).hexdigest()


class ManifestKey(Protocol):
    """What seals a manifest with a MAC: the encryption key (``bdr.crypto.stream.Cipher``)."""

    key_id: str

    def digest(self, data: bytes) -> str: ...

    def digest_matches(self, data: bytes, recorded: str, name: str = ...) -> bool: ...


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
    digest: str = ""
    """``sha256:<hex>`` of the canonical JSON (format 2); empty until :meth:`seal`."""
    mac: str = ""
    """HMAC of the canonical JSON under the key of a set written with one; empty otherwise."""

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

    def content(self) -> dict[str, Any]:
        """The manifest as the JSON values its file holds (what the digest is computed over)."""
        data: dict[str, Any] = json.loads(json.dumps(self.to_dict(), default=str))
        return data

    def canonical(self) -> bytes:
        return canonical_json(self.content())

    def seal(self, key: ManifestKey | None = None) -> Manifest:
        """This manifest in the current format with its digest, and a MAC under ``key`` when given."""
        current = dataclasses.replace(self, format=FORMAT_VERSION, digest="", mac="")
        body = current.canonical()
        return dataclasses.replace(
            current,
            digest=DIGEST_PREFIX + hashlib.sha256(body).hexdigest(),
            mac=key.digest(body) if key is not None else "",
        )

    @property
    def sealed(self) -> bool:
        """Written with a digest (format 2 or later)."""
        return self.format >= 2

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
        """Parse a manifest (no digest check: see :func:`load_manifest`)."""
        try:
            return cls.from_dict(json.loads(raw))
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptArchive(name=name, detail=f"unreadable manifest: {exc}") from exc


@dataclass(frozen=True, slots=True)
class LoadedManifest:
    """A manifest file as read: the manifest (None when unreadable) and what is wrong with it, if anything."""

    manifest: Manifest | None
    problem: str | None = None


def load_manifest(raw: bytes) -> LoadedManifest:
    """Parse a manifest file and check its digest; never raises for bad content."""
    try:
        data = json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        return LoadedManifest(None, f"unreadable manifest (truncated or not JSON): {exc}")
    if not isinstance(data, dict):
        return LoadedManifest(None, "unreadable manifest: not a JSON object")
    version = data.get("format", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return LoadedManifest(None, f"invalid manifest: format {version!r}")
    if version > FORMAT_VERSION:
        return LoadedManifest(None, f"manifest format {version} is newer than this bdr reads ({FORMAT_VERSION}): "
                                    "upgrade bdr")
    try:
        manifest = Manifest.from_dict(data)
    except (ValueError, TypeError, KeyError) as exc:
        return LoadedManifest(None, f"invalid manifest: {exc}")
    if version < 2:
        return LoadedManifest(manifest)
    recorded = data.get("digest")
    if not recorded:
        return LoadedManifest(manifest, DIGEST_MISSING)
    try:
        computed = digest_of(data)
    except ValueError:  # NaN or infinity: not JSON bdr writes
        return LoadedManifest(manifest, DIGEST_MISMATCH)
    if recorded != computed:
        return LoadedManifest(manifest, DIGEST_MISMATCH)
    return LoadedManifest(manifest)


def digest_problem(manifest: Manifest) -> str | None:
    """Why ``manifest``'s recorded digest does not prove its content (None: it does, or it has none: format 1)."""
    if not manifest.sealed:
        return None
    if not manifest.digest:
        return DIGEST_MISSING
    if manifest.digest != DIGEST_PREFIX + hashlib.sha256(manifest.canonical()).hexdigest():
        return DIGEST_MISMATCH
    return None


def mac_check(manifest: Manifest, key: ManifestKey | None) -> tuple[bool | None, str]:
    """The manifest's MAC against ``key``: (True, ...) matches, (False, why) damaged, (None, why) not checked."""
    if not manifest.sealed:
        return None, NO_DIGEST
    if not manifest.mac:
        if manifest.key_id:
            return False, MAC_MISSING.format(key_id=manifest.key_id)
        return None, "no MAC: the set was written without a key"
    made_with = manifest.mac.split(":")[1] if manifest.mac.count(":") == 3 else None
    if made_with != manifest.key_id:
        return False, MAC_OTHER_KEY.format(mac_key=made_with, key_id=manifest.key_id)
    if key is None:
        return None, f"not checked: no key at hand (key id {manifest.key_id})"
    try:
        matches = key.digest_matches(manifest.canonical(), manifest.mac, f"{manifest.id}/{MANIFEST_NAME}")
    except CryptoError as exc:
        return None, f"not checked: {exc.message}"
    if not matches:
        return False, MAC_MISMATCH
    return True, f"HMAC-SHA256 under key {manifest.key_id} matches"


def manifest_problem(manifest: Manifest, key: ManifestKey | None = None) -> str | None:
    """Why ``manifest`` cannot be trusted: its digest, or its MAC when ``key`` is given (None: it can)."""
    problem = digest_problem(manifest)
    if problem:
        return problem
    ok, detail = mac_check(manifest, key)
    return detail if ok is False else None
