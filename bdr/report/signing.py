"""Ed25519 signatures of drill records: who holds the key vouches for the report.

The sha256 of the report files and the hash chain of ``history.jsonl`` detect a change;
they do not tell who made the record, since whoever edits a file can recompute a hash. A
record signed with a key file (``drill.signing_key`` in bdr.yaml, ``--signing-key``) can only
be made by the key's holder. The signature covers the record's canonical JSON
(:func:`bdr.report.history.canonical`): the run's objectives, its open items, the sha256 of
its JSON, HTML and JUnit files, and the hash of the line before it, so it vouches for the
files and for the history up to that record.

A record carries its public key and key id (the first 16 hex digits of the sha256 of the raw
public key); :func:`check` verifies a signature with that key, and, given the auditor's
*trusted* public key (``bdr report verify --public-key FILE``), that it is the one expected:
a forger can re-sign with a key of their own, never with yours.

Key files: ``bdr report keygen FILE`` writes the private key (PKCS#8 PEM, 0600) and
``FILE.pub`` (the public key, SubjectPublicKeyInfo PEM) to hand to the auditor.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bdr.errors import CryptoError, MissingKey, UsageError
from bdr.report.history import canonical

ALGORITHM = "ed25519"


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(public)).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key loaded from its file, and what identifies it."""

    private: Ed25519PrivateKey
    path: str

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public)

    def sign(self, body: dict[str, Any]) -> dict[str, Any]:
        """The ``signature`` field of a record whose other fields are ``body``."""
        return {
            "algorithm": ALGORITHM,
            "key_id": self.key_id,
            "public_key": base64.b64encode(_raw(self.public)).decode("ascii"),
            "value": base64.b64encode(self.private.sign(canonical(body))).decode("ascii"),
        }


def generate_key(path: Path, force: bool = False) -> tuple[str, Path]:
    """Write a new Ed25519 key to ``path`` (0600) and its public key to ``path.pub``; the key id and that path."""
    from bdr.storage.local import fsync_dir, translate_os_error

    if path.is_dir():
        raise UsageError(detail=f"{path} is a directory; give the key file's path, e.g. {path}/drill-signing.key")
    if path.exists() and not force:
        raise UsageError(detail=f"{path} already exists; pass --force to replace it (reports signed with it stay "
                         "verifiable with its .pub file)")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    public_path = path.with_name(path.name + ".pub")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for target, data, mode in ((path, pem, 0o600), (public_path, public_pem, 0o644)):
            tmp = parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), mode)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        fsync_dir(parent)
    except OSError as exc:
        raise translate_os_error(exc, parent) from exc
    return key_id_of(private.public_key()), public_path


def load_signing_key(path: str | Path) -> SigningKey:
    """The private key in ``path``; refuses a file others can read (``chmod 600`` fixes it)."""
    where = Path(path)
    try:
        info = where.stat()
        if not stat.S_ISREG(info.st_mode):
            raise MissingKey(detail=f"signing key {where} is not a regular file")
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise MissingKey(detail=f"signing key {where} is open to other users (mode "
                             f"{stat.S_IMODE(info.st_mode):o}); run `chmod 600 {where}`")
        data = where.read_bytes()
    except FileNotFoundError as exc:
        raise MissingKey(detail=f"signing key {where} does not exist: check drill.signing_key in bdr.yaml or "
                         "--signing-key, or make one with `bdr report keygen FILE`") from exc
    except OSError as exc:
        raise MissingKey(detail=f"cannot read signing key {where}: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CryptoError(detail=f"{where} is not an Ed25519 private key in PEM (make one with "
                          "`bdr report keygen FILE`)") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CryptoError(detail=f"{where} holds a {type(key).__name__}, not an Ed25519 key (make one with "
                          "`bdr report keygen FILE`)")
    return SigningKey(key, str(where))


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """A trusted public key: a ``.pub`` file (PEM), or the private key file itself."""
    where = Path(path)
    try:
        data = where.read_bytes()
    except OSError as exc:
        raise MissingKey(detail=f"cannot read public key {where}: {exc.strerror or exc}") from exc
    try:
        public = serialization.load_pem_public_key(data)
    except ValueError:
        return load_signing_key(where).public
    if not isinstance(public, Ed25519PublicKey):
        raise CryptoError(detail=f"{where} holds a {type(public).__name__}, not an Ed25519 public key")
    return public


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """What a signature proves: ``ok`` True (valid), False (invalid or not the trusted key), None (unsigned)."""

    ok: bool | None
    detail: str
    key_id: str = ""


def check(body: dict[str, Any], signature: Any, trusted: Ed25519PublicKey | None = None) -> SignatureCheck:
    """The signature of a record whose other fields are ``body``."""
    if not signature:
        return SignatureCheck(None, "not signed")
    if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM:
        return SignatureCheck(False, f"unknown signature algorithm {signature.get('algorithm')!r}"
                              if isinstance(signature, dict) else "malformed signature")
    try:
        raw = base64.b64decode(str(signature["public_key"]), validate=True)
        value = base64.b64decode(str(signature["value"]), validate=True)
        public = Ed25519PublicKey.from_public_bytes(raw)
    except (KeyError, ValueError) as exc:
        return SignatureCheck(False, f"malformed signature ({exc})")
    key_id = key_id_of(public)
    if str(signature.get("key_id")) != key_id:
        return SignatureCheck(False, f"the signature names key {signature.get('key_id')} but carries key {key_id}",
                              key_id)
    try:
        public.verify(value, canonical(body))
    except InvalidSignature:
        return SignatureCheck(False, f"signature by key {key_id} does not match the record: edited after signing",
                              key_id)
    if trusted is not None and key_id_of(trusted) != key_id:
        return SignatureCheck(False, f"signed by key {key_id}, not by the trusted key {key_id_of(trusted)}", key_id)
    if trusted is None:
        return SignatureCheck(True, f"valid Ed25519 signature by the key the record carries ({key_id}); pass "
                              "--public-key to check it is yours", key_id)
    return SignatureCheck(True, f"valid Ed25519 signature by the trusted key {key_id}", key_id)
