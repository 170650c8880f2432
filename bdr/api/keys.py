"""Choosing the cipher for an operation: encrypted on request, and always off-site unless told not to."""

from __future__ import annotations

from bdr.config import Config
from bdr.errors import UsageError
from bdr.repository import ObjectCipher


def cipher_for_backup(
    config: Config, encrypt: bool, remote: str | None, key_file: str | None, allow_plaintext: bool
) -> ObjectCipher | None:
    """The cipher a backup writes with: ``--encrypt``, or any off-site copy unless plaintext is allowed."""
    offsite = remote is not None
    if encrypt or (offsite and not (allow_plaintext or config.remote.allow_plaintext)):
        from bdr.crypto import load_cipher

        try:
            cipher: ObjectCipher | None = load_cipher(config.encryption, key_file=key_file, required=True)
            return cipher
        except Exception as exc:
            if offsite and not encrypt:
                raise UsageError(
                    detail=f"off-site backups are encrypted by default and no key is configured ({exc}); run "
                    "`bdr key generate` and set encryption.key_file, or pass --allow-plaintext"
                ) from exc
            raise
    return None


def cipher_for_reading(config: Config, key_file: str | None) -> ObjectCipher | None:
    """The cipher to read encrypted sets with, when a key is configured (None otherwise)."""
    from bdr.crypto import load_cipher

    cipher: ObjectCipher | None = load_cipher(config.encryption, key_file=key_file, required=False)
    return cipher
