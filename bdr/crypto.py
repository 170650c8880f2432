"""Encryption of backup objects: AES-256-GCM in authenticated chunks, streaming, any size.

Format of an encrypted object::

    header   b"BDRE" | version (1) | kdf (1) | key id (8) | salt (16) | nonce prefix (7)
    chunks   length (4, big endian) | AES-GCM ciphertext + 16-byte tag, repeated

Each chunk holds up to 1 MiB of plaintext. Its 12-byte nonce is the object's random nonce
prefix, the chunk's index (4 bytes) and a final-chunk flag (1 byte), and the header is
its associated data (the STREAM construction): a changed byte, a dropped, duplicated or
reordered chunk, a cut-off end, or a header from another object all fail authentication
(:class:`~bdr.errors.TamperedData`). Plaintext is handed out only after its chunk
authenticated. The key *id* (an HMAC of the key, never the key) is checked first, so a
wrong key is reported as :class:`~bdr.errors.WrongKey` before anything is written.

Keys come from a key file (``bdr key generate``: 32 random bytes as hex, mode 0600), an
environment variable holding such a key, or a passphrase (environment variable) through
scrypt. The old runbook's ``openssl enc -aes-256-cbc -salt`` files can be read with
:func:`decrypt_openssl_legacy`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import os
import secrets
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bdr.config import EncryptionSettings
from bdr.errors import ConfigError, MissingKey, TamperedData, WrongKey
from bdr.storage.base import ObjectSink, WrittenObject

MAGIC = b"BDRE"
VERSION = 1
KDF_RAW, KDF_SCRYPT = 0, 1
CHUNK_SIZE = 1024 * 1024
TAG = 16
HEADER = struct.Struct(">4sBB8s16s7s")
LENGTH = struct.Struct(">I")
KEY_BYTES = 32
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
ID_LABEL = b"bdr key id v1"
PASSPHRASE_ID_SALT = b"bdr passphrase id salt v1"


def key_id_of(key: bytes) -> str:
    """The public fingerprint of a key: 16 hex characters of an HMAC, never the key itself."""
    return hmac.new(key, ID_LABEL, hashlib.sha256).hexdigest()[:16]


def _scrypt(passphrase: bytes, salt: bytes) -> bytes:
    return hashlib.scrypt(passphrase, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024,
                          dklen=KEY_BYTES)


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if final else 0)


def parse_key(text: str, where: str) -> bytes:
    """A 32-byte key written as hex (64 characters) or base64."""
    value = text.strip()
    try:
        key = bytes.fromhex(value) if len(value) == 2 * KEY_BYTES else base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(path=where, detail="not an encryption key: expected 32 bytes as 64 hex characters or base64"
                          " (make one with `bdr key generate`)")
    return key


@dataclass
class StreamCipher:
    """Encrypts and decrypts objects with one key (or passphrase); implements ``ObjectCipher``."""

    key: bytes | None = None
    passphrase: bytes | None = field(default=None, repr=False)
    _derived: dict[bytes, bytes] = field(default_factory=dict, repr=False)
    _salt: bytes = field(default_factory=lambda: secrets.token_bytes(16), repr=False)

    def __post_init__(self) -> None:
        if (self.key is None) == (self.passphrase is None):
            raise ValueError("give exactly one of key and passphrase")
        base = self.key if self.key is not None else _scrypt(self.passphrase or b"", PASSPHRASE_ID_SALT)
        self.key_id = key_id_of(base)

    def __repr__(self) -> str:  # never show key material
        return f"StreamCipher(key_id={self.key_id!r})"

    @property
    def kdf(self) -> int:
        return KDF_RAW if self.key is not None else KDF_SCRYPT

    def key_for(self, salt: bytes) -> bytes:
        if self.key is not None:
            return self.key
        if salt not in self._derived:
            self._derived[salt] = _scrypt(self.passphrase or b"", salt)
        return self._derived[salt]

    def encrypting(self, sink: ObjectSink) -> ObjectSink:
        salt = self._salt if self.kdf == KDF_SCRYPT else bytes(16)
        header = HEADER.pack(MAGIC, VERSION, self.kdf, bytes.fromhex(self.key_id), salt, secrets.token_bytes(7))
        return EncryptingSink(sink, AESGCM(self.key_for(salt)), header)

    def decrypting(self, stream: BinaryIO, name: str) -> BinaryIO:
        return io.BufferedReader(DecryptingReader(stream, self, name), buffer_size=CHUNK_SIZE)  # type: ignore[return-value]

    def seal(self, data: bytes) -> bytes:
        """Encrypt a small object in memory."""
        out = _MemorySink()
        sink = self.encrypting(out)
        sink.write(data)
        sink.commit()
        return out.buffer.getvalue()

    def open(self, data: bytes, name: str = "data") -> bytes:
        """Decrypt a small object in memory."""
        with self.decrypting(io.BytesIO(data), name) as reader:
            return reader.read()


class _MemorySink:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes) -> int:
        return self.buffer.write(data)

    def commit(self) -> WrittenObject:
        value = self.buffer.getvalue()
        return WrittenObject("memory", len(value), hashlib.sha256(value).hexdigest())

    def abort(self) -> None:
        self.buffer = io.BytesIO()


class EncryptingSink:
    """Seals 1 MiB chunks on their way into ``inner``; :meth:`commit` seals the final one."""

    def __init__(self, inner: ObjectSink, aead: AESGCM, header: bytes) -> None:
        self._inner = inner
        self._aead = aead
        self._header = header
        self._prefix = header[-7:]
        self._buffer = bytearray()
        self._index = 0
        inner.write(header)

    def _seal(self, data: bytes | memoryview, final: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._prefix, self._index, final), data, self._header)
        self._inner.write(LENGTH.pack(len(sealed)))
        self._inner.write(sealed)
        self._index += 1

    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) > CHUNK_SIZE:  # keep at least one byte back for the final chunk
            start = 0
            with memoryview(self._buffer) as view:
                while len(self._buffer) - start > CHUNK_SIZE:
                    self._seal(view[start:start + CHUNK_SIZE], final=False)
                    start += CHUNK_SIZE
            del self._buffer[:start]
        return len(data)

    def commit(self) -> WrittenObject:
        self._seal(bytes(self._buffer), final=True)
        self._buffer.clear()
        return self._inner.commit()

    def abort(self) -> None:
        self._buffer.clear()
        self._inner.abort()


class DecryptingReader(io.RawIOBase):
    """Plaintext of an encrypted stream, one authenticated chunk at a time."""

    def __init__(self, inner: BinaryIO, cipher: StreamCipher, name: str) -> None:
        self._inner = inner
        self._cipher = cipher
        self._name = name
        self._aead: AESGCM | None = None
        self._header = b""
        self._index = 0
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._inner.close()
        super().close()

    def _read_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self._inner.read(size - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def _open(self) -> None:
        header = self._read_exact(HEADER.size)
        if len(header) < HEADER.size or header[:4] != MAGIC:
            raise TamperedData(name=self._name)
        _magic, version, kdf, key_id, salt, _prefix = HEADER.unpack(header)
        if version != VERSION or kdf not in (KDF_RAW, KDF_SCRYPT):
            raise TamperedData(name=self._name)
        if key_id.hex() != self._cipher.key_id:
            raise WrongKey(name=self._name, expected=key_id.hex(), actual=self._cipher.key_id)
        self._header = header
        self._aead = AESGCM(self._cipher.key_for(salt))

    def _next_chunk(self) -> None:
        if self._aead is None:
            self._open()
        assert self._aead is not None
        raw_length = self._read_exact(LENGTH.size)
        if len(raw_length) < LENGTH.size:
            raise TamperedData(name=self._name)  # the end was cut off before the final chunk
        (length,) = LENGTH.unpack(raw_length)
        if length < TAG or length > CHUNK_SIZE + TAG:
            raise TamperedData(name=self._name)
        sealed = self._read_exact(length)
        if len(sealed) < length:
            raise TamperedData(name=self._name)
        prefix = self._header[-7:]
        for final in (False, True):
            try:
                plain = self._aead.decrypt(_nonce(prefix, self._index, final), sealed, self._header)
            except InvalidTag:
                continue
            self._index += 1
            if final:
                if self._inner.read(1):
                    raise TamperedData(name=self._name)  # bytes after the final chunk
                self._done = True
            self._pending = plain
            return
        raise TamperedData(name=self._name)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._done:
            self._next_chunk()
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


# --- where keys come from ---------------------------------------------------------------------


def read_key_file(path: Path) -> bytes:
    try:
        info = path.stat()
        text = path.read_text()
    except OSError as exc:
        raise MissingKey(detail=f"cannot read key file {path}: {exc.strerror}") from exc
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigError(path=str(path), detail=f"key file is readable by others (mode "
                          f"{stat.S_IMODE(info.st_mode):o}); run `chmod 600 {path}`")
    return parse_key(text, str(path))


def load_cipher(settings: EncryptionSettings, key_file: str | None = None,
                required: bool = False) -> StreamCipher | None:
    """The cipher of ``--key-file``, else the configured key file, key variable or passphrase."""
    path = key_file or settings.key_file
    if path:
        return StreamCipher(key=read_key_file(Path(os.path.expanduser(path))))
    if settings.key_env and os.environ.get(settings.key_env):
        return StreamCipher(key=parse_key(os.environ[settings.key_env], f"${settings.key_env}"))
    if settings.passphrase_env and os.environ.get(settings.passphrase_env):
        return StreamCipher(passphrase=os.environ[settings.passphrase_env].encode())
    if required:
        raise MissingKey(detail="no encryption key: run `bdr key generate /etc/bdr/backup.key` and set "
                         "encryption.key_file in bdr.yaml (or $BDR_KEY, or a passphrase in $BDR_PASSPHRASE)")
    return None


def generate_key_file(path: Path, force: bool = False) -> str:
    """Write a new random key to ``path`` (mode 0600, atomically); returns its key id."""
    from bdr.errors import UsageError
    from bdr.storage.local import translate_os_error

    if path.exists() and not force:
        raise UsageError(detail=f"{path} exists; use --force to replace it (sets encrypted with it become unreadable)")
    key = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise translate_os_error(exc, path.parent) from exc
    return key_id_of(key)


# --- the old runbook's openssl files -----------------------------------------------------------


def _evp_bytes_to_key(passphrase: bytes, salt: bytes, digest: str) -> tuple[bytes, bytes]:
    out = b""
    block = b""
    while len(out) < 48:
        block = hashlib.new(digest, block + passphrase + salt).digest()
        out += block
    return out[:32], out[32:48]


def _pbkdf2(passphrase: bytes, salt: bytes) -> tuple[bytes, bytes]:
    out = hashlib.pbkdf2_hmac("sha256", passphrase, salt, 10000, dklen=48)
    return out[:32], out[32:]


def decrypt_openssl_legacy(data: bytes, passphrase: str, name: str = "file", text: bool = True) -> bytes:
    """Plaintext of ``openssl enc -aes-256-cbc -salt [-pbkdf2]`` output (md5 or sha256 key derivation).

    CBC has no authentication: a wrong passphrase is recognised by bad padding, which a
    random key passes about once in 256 tries, so for text (an ``.env``) the plaintext must
    also be valid UTF-8.
    """
    if data[:8] != b"Salted__" or len(data) < 32 or (len(data) - 16) % 16:
        raise TamperedData(name=name)
    salt, body = data[8:16], data[16:]
    secret = passphrase.encode()
    for derive in (lambda: _pbkdf2(secret, salt), lambda: _evp_bytes_to_key(secret, salt, "sha256"),
                   lambda: _evp_bytes_to_key(secret, salt, "md5")):
        key, iv = derive()
        decryptor = _Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(body) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            plain = unpadder.update(padded) + unpadder.finalize()
            if text:
                plain.decode("utf-8")
            return plain
        except ValueError:  # bad padding, or not text (UnicodeDecodeError is a ValueError)
            continue
    raise WrongKey(name=name, expected="openssl passphrase", actual="the given passphrase")
