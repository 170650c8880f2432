"""Encryption of backup objects: AES-256-GCM in authenticated chunks, keys, and the old openssl files.

- :mod:`bdr.crypto.stream`: the object format (a header, then 1 MiB chunks each sealed with
  AES-256-GCM, their index and a final flag bound into the nonce) and :class:`Cipher`, the
  ``ObjectCipher`` the repository encrypts and decrypts objects with;
- :mod:`bdr.crypto.keys`: where the key comes from (``--key-file``, ``encryption.key_file``,
  ``$BDR_KEY``, a passphrase in ``$BDR_PASSPHRASE``), :func:`load_cipher` and
  ``bdr key generate``;
- :mod:`bdr.crypto.openssl`: reading the old runbook's ``openssl enc -aes-256-cbc -salt`` files.
"""

from __future__ import annotations

from bdr.crypto.keys import generate_key_file, load_cipher, parse_key, read_key_file
from bdr.crypto.openssl import decrypt_openssl_legacy, is_openssl_file
from bdr.crypto.stream import CHUNK_SIZE, HEADER, LENGTH, Cipher, key_id_of

__all__ = [
    "CHUNK_SIZE",
    "HEADER",
    "LENGTH",
    "Cipher",
    "decrypt_openssl_legacy",
    "generate_key_file",
    "is_openssl_file",
    "key_id_of",
    "load_cipher",
    "parse_key",
    "read_key_file",
]
