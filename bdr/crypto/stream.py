"""The encrypted object format: AES-256-GCM in authenticated chunks, streamed, any size.

One encrypted object is a header and a run of sealed chunks::

    header  b"BDRE" | version (1) | kdf (1) | kdf cost (1) | log2 chunk size (1) | key id (8)
            | kdf salt (16) | object salt (16) | nonce prefix (7)                        55 bytes
    chunk   length (4, big endian) | AES-GCM ciphertext + 16-byte tag               repeated

- **Keys.** The *master key* is the key itself (kdf 0: a key file or ``$BDR_KEY``) or
  ``scrypt(passphrase, kdf salt, N=2**cost, r=8, p=1)`` (kdf 1). Each object is sealed with
  its own AES-256 key, ``HKDF-SHA256(master key, object salt)``, so the random nonces of
  different objects never meet under one key, however many objects a key encrypts.
- **Chunks** hold 1 MiB of plaintext (the last one less, possibly none). Chunk *i* is sealed
  with the nonce ``nonce prefix | i (4 bytes) | final flag (1 byte)`` and the whole header as
  associated data (the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár, as in
  Tink's AES-GCM-HKDF streaming AEAD). A changed byte, a dropped, duplicated or reordered
  chunk, an end cut off at a chunk boundary, bytes appended after the final chunk, or a
  header moved from another object all fail authentication: :class:`~bdr.errors.TamperedData`.
- **Wrong key first.** The header carries the master key's *id* (16 hex digits of an HMAC of
  the key, never the key); a reader compares it before decrypting anything, so a wrong key or
  passphrase is :class:`~bdr.errors.WrongKey` and the caller has not written a byte.
- **Only authenticated plaintext** leaves a reader: a chunk is handed out after its tag
  verified, and the reader knows a chunk is the final one only from the end of the stream, so
  a truncated object fails on its last chunk instead of ending early.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import secrets
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import BinaryIO, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bdr.errors import StorageError, TamperedData, WrongKey
from bdr.storage.base import ObjectSink, WrittenObject, failed_again

logger = logging.getLogger(__name__)

MAGIC = b"BDRE"
VERSION = 1
KEY_BYTES = 32
SALT_BYTES = 16
PREFIX_BYTES = 7
TAG_BYTES = 16
CHUNK_LOG2 = 20
CHUNK_SIZE = 1 << CHUNK_LOG2
MIN_CHUNK_LOG2, MAX_CHUNK_LOG2 = 12, 24
HEADER = struct.Struct(f">4sBBBB8s{SALT_BYTES}s{SALT_BYTES}s{PREFIX_BYTES}s")
LENGTH = struct.Struct(">I")
MAX_CHUNKS = 2**32

SCRYPT_COST = 15
"""log2 of scrypt's N: 2**15 x 8 x 128 bytes = 32 MiB of memory and ~0.1 s per derivation."""
MIN_SCRYPT_COST, MAX_SCRYPT_COST = 10, 18
"""Costs a reader accepts from a header: a forged header cannot make it allocate more than 256 MiB."""

ID_LABEL = b"bdr key id v1"
OBJECT_KEY_INFO = b"bdr object key v1"
DIGEST_LABEL = b"bdr secret digest v1"


class Kdf(IntEnum):
    """How the master key comes from what the operator holds."""

    RAW = 0
    SCRYPT = 1


def key_id_of(key: bytes) -> str:
    """The public fingerprint of a key: 16 hex digits of an HMAC keyed by it, never the key itself."""
    return hmac.new(key, ID_LABEL, hashlib.sha256).hexdigest()[:16]


def scrypt(passphrase: bytes, salt: bytes, cost: int = SCRYPT_COST) -> bytes:
    n = 1 << cost
    return hashlib.scrypt(passphrase, salt=salt, n=n, r=8, p=1, maxmem=2 * 128 * 8 * n, dklen=KEY_BYTES)


@dataclass(frozen=True, slots=True)
class MasterKey:
    """A key that seals objects, with how it was derived (recorded in each header)."""

    key: bytes = field(repr=False)
    kdf: Kdf = Kdf.RAW
    cost: int = 0
    salt: bytes = bytes(SALT_BYTES)

    @property
    def key_id(self) -> str:
        return key_id_of(self.key)

    def object_aead(self, object_salt: bytes) -> AESGCM:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=object_salt, info=OBJECT_KEY_INFO)
        return AESGCM(hkdf.derive(self.key))

    def mac(self, data: bytes) -> str:
        subkey = hmac.new(self.key, DIGEST_LABEL, hashlib.sha256).digest()
        return hmac.new(subkey, data, hashlib.sha256).hexdigest()

    @property
    def ref(self) -> str:
        """How to find this key again from what the operator holds (no secret in it)."""
        return "raw" if self.kdf is Kdf.RAW else f"scrypt.{self.cost}.{self.salt.hex()}"


class Cipher:
    """Encrypts and decrypts objects with one key or passphrase; implements ``ObjectCipher``.

    ``key_id`` is the id manifests record. With a key it never changes; with a passphrase
    it is that of the scrypt key of this cipher's own random salt, so every backup run has
    its own id, and a reader derives the key of each object's salt (cached) to check it.
    """

    __slots__ = ("_derived", "_own", "_passphrase", "key_id", "origin")

    def __init__(self, own: MasterKey, passphrase: bytes | None = None, origin: str = "key") -> None:
        self._own = own
        self._passphrase = passphrase
        self._derived: dict[str, MasterKey] = {own.ref: own}
        self.key_id: str = own.key_id
        """The id manifests record (16 hex digits); never the key."""
        self.origin = origin
        """Where the key came from, for messages: ``key file /etc/bdr/backup.key``, ``$BDR_KEY`` ..."""

    @classmethod
    def from_key(cls, key: bytes, origin: str = "key") -> Cipher:
        if len(key) != KEY_BYTES:
            raise ValueError(f"an encryption key is {KEY_BYTES} bytes, got {len(key)}")
        return cls(MasterKey(bytes(key)), origin=origin)

    @classmethod
    def from_passphrase(cls, passphrase: bytes, origin: str = "passphrase", cost: int = SCRYPT_COST) -> Cipher:
        if not passphrase:
            raise ValueError("empty passphrase")
        salt = secrets.token_bytes(SALT_BYTES)
        return cls(MasterKey(scrypt(passphrase, salt, cost), Kdf.SCRYPT, cost, salt), passphrase, origin)

    @property
    def is_passphrase(self) -> bool:
        return self._passphrase is not None

    def __repr__(self) -> str:  # never show key material
        return f"Cipher(key_id={self.key_id!r}, origin={self.origin!r})"

    # --- the keys of stored objects -----------------------------------------------------------

    def master(self, kdf: int, cost: int, salt: bytes, wanted_id: str, name: str) -> MasterKey:
        """The master key an object was sealed with, or :class:`WrongKey` when ours is not it."""
        if kdf == Kdf.SCRYPT and self._passphrase is not None:
            if not MIN_SCRYPT_COST <= cost <= MAX_SCRYPT_COST:
                raise TamperedData(name=name)
            ref = f"scrypt.{cost}.{salt.hex()}"
            if ref not in self._derived:
                self._derived[ref] = MasterKey(scrypt(self._passphrase, salt, cost), Kdf.SCRYPT, cost, salt)
            master = self._derived[ref]
        elif kdf == Kdf.RAW and self._passphrase is None:
            master = self._own
        elif kdf in (Kdf.RAW, Kdf.SCRYPT):
            made_with = "a passphrase" if kdf == Kdf.SCRYPT else "a key file or $BDR_KEY"
            raise WrongKey(name=name, expected=f"{wanted_id}, made with {made_with}", actual=self.describe())
        else:
            raise TamperedData(name=name)
        if master.key_id != wanted_id:
            raise WrongKey(name=name, expected=wanted_id, actual=self.describe())
        return master

    def describe(self) -> str:
        if self._passphrase is not None:
            return f"a passphrase from {self.origin}"
        return f"{self.key_id} from {self.origin}"

    # --- ObjectCipher ---------------------------------------------------------------------------

    def encrypting(self, sink: ObjectSink) -> ObjectSink:
        """A sink that seals what it is given into ``sink``; its commit seals the final chunk."""
        own = self._own
        object_salt = secrets.token_bytes(SALT_BYTES)
        header = HEADER.pack(MAGIC, VERSION, own.kdf, own.cost, CHUNK_LOG2, bytes.fromhex(own.key_id), own.salt,
                             object_salt, secrets.token_bytes(PREFIX_BYTES))
        return EncryptingSink(sink, own.object_aead(object_salt), header)

    def decrypting(self, stream: BinaryIO, name: str) -> BinaryIO:
        """The plaintext of ``stream``; the header (and key) is checked before this returns."""
        try:
            return cast(BinaryIO, DecryptingReader(stream, self, name))
        except BaseException:
            stream.close()
            raise

    # --- small objects and secret digests ---------------------------------------------------------

    def seal(self, data: bytes) -> bytes:
        """Encrypt a small object in memory."""
        out = MemorySink()
        sink = self.encrypting(out)
        sink.write(data)
        sink.commit()
        return out.getvalue()

    def open(self, data: bytes, name: str = "data") -> bytes:
        """Decrypt a small object in memory."""
        with self.decrypting(io.BytesIO(data), name) as reader:
            return reader.read()

    def digest(self, data: bytes) -> str:
        """A keyed digest of a secret's content: ``hmac-sha256:<key id>:<key ref>:<mac>``.

        A manifest cannot carry a plain sha256 of a secret: for a short or guessable value (a
        password, an API key with a known prefix) the hash lets whoever reads the manifest test
        guesses offline. An HMAC keyed by the encryption key proves the same thing (this file
        is the one that was backed up) to whoever holds the key, and nothing to anyone else.
        """
        own = self._own
        return f"hmac-sha256:{own.key_id}:{own.ref}:{own.mac(data)}"

    def digest_matches(self, data: bytes, recorded: str, name: str = "secret") -> bool:
        """Whether ``data`` is what :meth:`digest` recorded (:class:`WrongKey` if made with another key)."""
        try:
            scheme, key_id, ref, mac = recorded.split(":")
            if scheme != "hmac-sha256":
                raise ValueError(scheme)
            if ref == "raw":
                master = self.master(Kdf.RAW, 0, bytes(SALT_BYTES), key_id, name)
            else:
                _kdf, cost, salt = ref.split(".")
                master = self.master(Kdf.SCRYPT, int(cost), bytes.fromhex(salt), key_id, name)
        except ValueError:
            return False
        return hmac.compare_digest(master.mac(data), mac)


class MemorySink:
    """An :class:`ObjectSink` into memory (small objects, tests, benchmarks)."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()

    def write(self, data: bytes) -> int:
        return self._buffer.write(data)

    def getvalue(self) -> bytes:
        return self._buffer.getvalue()

    def commit(self) -> WrittenObject:
        value = self._buffer.getvalue()
        return WrittenObject("memory", len(value), hashlib.sha256(value).hexdigest())

    def abort(self) -> None:
        self._buffer = io.BytesIO()


def nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if final else 0)


class EncryptingSink:
    """Seals 1 MiB chunks on their way into ``inner``; :meth:`commit` seals the final one.

    A full chunk is sealed only once a byte beyond it has arrived: until then it may be the
    final one, and the final chunk carries the final flag. Data is staged in one reused
    1 MiB buffer, and a large write is sealed straight from the caller's bytes, so bytes are
    copied at most once on their way to AES.

    When a write into ``inner`` fails, the chunk sequence in ``inner`` is cut at an unknown
    point: the sink is broken from then on (every later write or commit raises the same
    error again, never a chunk twice under one nonce) and :meth:`abort` still discards it.
    """

    def __init__(self, inner: ObjectSink, aead: AESGCM, header: bytes) -> None:
        self._inner = inner
        self._aead = aead
        self._header = header
        self._prefix = header[-PREFIX_BYTES:]
        self._stage = bytearray(CHUNK_SIZE)
        self._staged = 0
        self._index = 0
        self._open = True
        self._failure: BaseException | None = None
        try:
            inner.write(header)
        except BaseException:
            self.abort()
            raise

    def _seal(self, data: bytes | memoryview, final: bool) -> None:
        if self._index >= MAX_CHUNKS:
            raise StorageError(detail="object too large for one encrypted stream (4 PiB): split the backup")
        sealed = self._aead.encrypt(nonce(self._prefix, self._index, final), data, self._header)
        self._index += 1  # never reused, whatever happens below
        self._inner.write(LENGTH.pack(len(sealed)))
        self._inner.write(sealed)

    def _check_open(self, what: str) -> None:
        if self._failure is not None:
            raise failed_again(self._failure, "an encrypted object")
        if not self._open:
            raise StorageError(detail=f"{what} of an encrypted object after it was committed or aborted")

    def write(self, data: bytes) -> int:
        self._check_open("write")
        try:
            return self._write(data)
        except BaseException as exc:
            self._failure = exc
            raise

    def _write(self, data: bytes) -> int:
        with memoryview(data) as view, memoryview(self._stage) as stage:
            size = len(view)
            pos = 0
            while pos < size:
                if self._staged == CHUNK_SIZE:  # a full chunk and more to come: not the final one
                    self._staged = 0
                    self._seal(stage, final=False)
                if self._staged == 0 and size - pos > CHUNK_SIZE:
                    self._seal(view[pos:pos + CHUNK_SIZE], final=False)
                    pos += CHUNK_SIZE
                    continue
                take = min(CHUNK_SIZE - self._staged, size - pos)
                stage[self._staged:self._staged + take] = view[pos:pos + take]
                self._staged += take
                pos += take
        return size

    def commit(self) -> WrittenObject:
        self._check_open("commit")
        try:
            with memoryview(self._stage) as stage:
                self._seal(stage[:self._staged], final=True)
            self._open = False
            written = self._inner.commit()
        except BaseException as exc:
            self._failure = exc
            raise
        self._stage = bytearray()
        return written

    def abort(self) -> None:
        """Discard the object (idempotent, and works after any failure)."""
        self._open = False
        self._stage = bytearray()
        self._staged = 0
        self._inner.abort()


class DecryptingReader(io.RawIOBase):
    """Plaintext of an encrypted stream, one authenticated chunk at a time.

    The header is read and the key checked when the reader is made. Each chunk's length is
    read ahead of its use, so a chunk is opened as the final one exactly when nothing follows it.
    """

    def __init__(self, inner: BinaryIO, cipher: Cipher, name: str) -> None:
        super().__init__()
        self._inner = inner
        self._name = name
        header = self._read_exact(HEADER.size)
        if len(header) < HEADER.size or header[:4] != MAGIC:
            raise TamperedData(name=name)
        _magic, version, kdf, cost, chunk_log2, key_id, kdf_salt, object_salt, prefix = HEADER.unpack(header)
        if version != VERSION or not MIN_CHUNK_LOG2 <= chunk_log2 <= MAX_CHUNK_LOG2:
            raise TamperedData(name=name)
        master = cipher.master(kdf, cost, kdf_salt, key_id.hex(), name)
        self._aead = master.object_aead(object_salt)
        self._header = header
        self._prefix = prefix
        self._chunk_size = 1 << chunk_log2
        self._index = 0
        self._next_length: int | None = self._read_length(first=True)
        self._plain = b""
        self._offset = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()

    def _read_exact(self, size: int) -> bytes:
        data = self._inner.read(size)
        if len(data) == size or not data:
            return data
        parts = [data]
        got = len(data)
        while got < size:
            more = self._inner.read(size - got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def _read_length(self, first: bool = False) -> int | None:
        """The next chunk's length; None at the end of the stream (never before the first chunk)."""
        raw = self._read_exact(LENGTH.size)
        if not raw and not first:
            return None
        if len(raw) < LENGTH.size:
            raise TamperedData(name=self._name)
        length: int = LENGTH.unpack(raw)[0]
        if not TAG_BYTES <= length <= self._chunk_size + TAG_BYTES:
            raise TamperedData(name=self._name)
        return length

    def _next_chunk(self) -> None:
        length = self._next_length
        if length is None:  # _fill never asks past the final chunk; a reader driven otherwise is at the end
            raise TamperedData(name=self._name)
        sealed = self._read_exact(length)
        if len(sealed) < length:
            raise TamperedData(name=self._name)
        self._next_length = self._read_length()
        final = self._next_length is None
        if self._index >= MAX_CHUNKS:
            raise TamperedData(name=self._name)
        try:
            plain = self._aead.decrypt(nonce(self._prefix, self._index, final), sealed, self._header)
        except InvalidTag:
            logger.debug("chunk %d of %s failed authentication", self._index, self._name)
            raise TamperedData(name=self._name) from None
        self._index += 1
        self._done = final
        self._plain = plain
        self._offset = 0

    def _fill(self) -> bool:
        """Make plaintext pending; False at the end."""
        while self._offset >= len(self._plain) and not self._done:
            self._next_chunk()
        return self._offset < len(self._plain)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._fill():
            return 0
        n = min(len(buffer), len(self._plain) - self._offset)
        buffer[:n] = self._plain[self._offset:self._offset + n]
        self._offset += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if size == 0 or not self._fill():
            return b""
        start = self._offset
        if start == 0 and size >= len(self._plain):  # a whole chunk: no copy
            self._offset = len(self._plain)
            return self._plain
        self._offset = min(start + size, len(self._plain))
        return self._plain[start:self._offset]

    def readall(self) -> bytes:
        parts = []
        while self._fill():
            parts.append(self._plain[self._offset:] if self._offset else self._plain)
            self._offset = len(self._plain)
        return b"".join(parts)
