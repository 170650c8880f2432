"""Files of the old runbook: ``openssl enc -aes-256-cbc -salt`` with a passphrase.

The runbook encrypted ``.env`` with ``openssl enc -aes-256-cbc -salt -in .env -out
env_encrypted_YYYYMMDD.enc``. Such a file is ``Salted__``, an 8-byte salt and AES-256-CBC
ciphertext with PKCS#7 padding (or all of that in base64 with ``-a``). Key and IV come from
the passphrase and salt by one of three derivations, and the file does not say which:

1. EVP_BytesToKey with SHA-256: the default of OpenSSL 1.1.0 and later (this runbook's era),
2. EVP_BytesToKey with MD5: the default before OpenSSL 1.1.0,
3. PBKDF2-HMAC-SHA256, 10,000 iterations: ``-pbkdf2`` (OpenSSL 1.1.1 and later).

Each is tried in that order. CBC has no authentication: a wrong key shows only as bad
padding, which random bytes pass about once in 256 tries, so a candidate must also decode as
UTF-8 when the content is text (an ``.env``), which a wrong key's garbage never does at any
real length. No candidate passing means a wrong passphrase: :class:`~bdr.errors.WrongPassphrase`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bdr.errors import TamperedData, WrongPassphrase

OPENSSL_MAGIC = b"Salted__"
BASE64_MAGIC = b"U2FsdGVkX1"
"""``Salted__`` in base64: a file made with ``openssl enc -a``."""
PBKDF2_ITERATIONS = 10_000
BLOCK = 16

Derivation = Callable[[bytes, bytes], tuple[bytes, bytes]]


def evp_bytes_to_key(digest: str) -> Derivation:
    """OpenSSL's EVP_BytesToKey with one iteration: key and IV of AES-256-CBC."""

    def derive(passphrase: bytes, salt: bytes) -> tuple[bytes, bytes]:
        out = b""
        block = b""
        while len(out) < 48:
            block = hashlib.new(digest, block + passphrase + salt).digest()
            out += block
        return out[:32], out[32:48]

    return derive


def pbkdf2(iterations: int = PBKDF2_ITERATIONS) -> Derivation:
    def derive(passphrase: bytes, salt: bytes) -> tuple[bytes, bytes]:
        out = hashlib.pbkdf2_hmac("sha256", passphrase, salt, iterations, dklen=48)
        return out[:32], out[32:]

    return derive


DERIVATIONS: tuple[tuple[str, Derivation], ...] = (
    ("EVP_BytesToKey sha256 (openssl >= 1.1)", evp_bytes_to_key("sha256")),
    ("EVP_BytesToKey md5 (openssl < 1.1)", evp_bytes_to_key("md5")),
    ("-pbkdf2 (PBKDF2-HMAC-SHA256, 10000 iterations)", pbkdf2()),
)


def is_openssl_file(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) starts an ``openssl enc -salt`` file."""
    return head.startswith(OPENSSL_MAGIC) or head.startswith(BASE64_MAGIC)


def _unarmor(data: bytes, name: str) -> bytes:
    if data.startswith(BASE64_MAGIC):
        try:
            return base64.b64decode(b"".join(data.split()), validate=True)
        except (ValueError, binascii.Error) as exc:
            raise TamperedData(name=name) from exc
    return data


def decrypt_openssl_legacy(data: bytes, passphrase: str, name: str = "file", text: bool = True,
                           where: str = "$BDR_PASSPHRASE") -> bytes:
    """The plaintext of ``openssl enc -aes-256-cbc -salt [-md md5|sha256] [-pbkdf2] [-a]`` output.

    ``text``: the content must be UTF-8 (an ``.env``), which rules out a wrong derivation
    whose padding happens to look right. Without it (binary content) only the padding tells:
    a file made with a derivation late in the order can, about once in 256, pass for one
    made with an earlier derivation and decrypt to garbage. :class:`~bdr.errors.WrongPassphrase` when no
    derivation gives a valid plaintext; :class:`~bdr.errors.TamperedData` when ``data`` is not
    such a file at all. ``where`` names the passphrase's variable in the message.
    """
    data = _unarmor(data, name)
    if not data.startswith(OPENSSL_MAGIC) or len(data) < 32 or (len(data) - 16) % BLOCK:
        raise TamperedData(name=name)
    salt, body = data[8:16], data[16:]
    secret = passphrase.encode()
    for _label, derive in DERIVATIONS:
        key, iv = derive(secret, salt)
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(body) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            plain = unpadder.update(padded) + unpadder.finalize()
            if text:
                plain.decode("utf-8")
        except ValueError:  # bad padding, or not text (UnicodeDecodeError is a ValueError)
            continue
        return plain
    raise WrongPassphrase(name=name, where=where)
