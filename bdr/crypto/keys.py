"""Where the encryption key comes from: a key file, an environment variable, or a passphrase.

In order of precedence: ``--key-file``, ``encryption.key_file`` of bdr.yaml, the variable named
by ``encryption.key_env`` (``$BDR_KEY``) holding a key, and the variable named by
``encryption.passphrase_env`` (``$BDR_PASSPHRASE``) holding a passphrase (scrypt). A key is
32 random bytes written as 64 hex digits (what ``bdr key generate`` writes) or base64. A key
file must be a regular file that only its owner can read (mode 0600 or 0400): bdr refuses
one that others could read, as ssh does. Keys never appear in argv, logs or messages, only
their id.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from bdr.config import EncryptionSettings
from bdr.crypto.stream import KEY_BYTES, Cipher, key_id_of
from bdr.errors import ConfigError, MissingKey, UsageError

logger = logging.getLogger(__name__)

MIN_PASSPHRASE = 12
"""Below this many characters a passphrase is accepted with a warning."""


def parse_key(text: str, where: str) -> bytes:
    """A 32-byte key written as hex (64 digits) or base64 (44 characters); ``where`` names it in errors."""
    value = "".join(text.split())
    key = b""
    with contextlib.suppress(ValueError, binascii.Error):
        key = bytes.fromhex(value) if len(value) == 2 * KEY_BYTES else base64.b64decode(value, validate=True)
    if len(key) != KEY_BYTES:
        raise ConfigError(path=where, detail="not an encryption key: expected 32 bytes as 64 hex digits or "
                          "base64; make one with `bdr key generate PATH`")
    return key


def read_key_file(path: Path) -> bytes:
    """The key in ``path``; refuses a file others can read or write (``chmod 600`` fixes it)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(path=str(path), detail="the key file is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise ConfigError(path=str(path), detail=f"the key file is open to other users (mode {mode:o}); "
                              f"run `chmod 600 {path}`")
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError as exc:
        raise MissingKey(detail=f"key file {path} does not exist: check encryption.key_file in bdr.yaml or "
                         "--key-file, or make one with `bdr key generate PATH`") from exc
    except OSError as exc:
        raise MissingKey(detail=f"cannot read key file {path}: {exc.strerror or exc}") from exc
    return parse_key(text, str(path))


@dataclass(frozen=True, slots=True)
class KeySource:
    """Which configured source holds the key (for ``bdr key id`` and messages), never the key."""

    kind: str
    """``key file``, ``key env`` or ``passphrase env``."""
    where: str


def find_key_source(settings: EncryptionSettings, key_file: str | None = None) -> KeySource | None:
    path = key_file or settings.key_file
    if path:
        return KeySource("key file", os.path.expanduser(path))
    if settings.key_env and os.environ.get(settings.key_env):
        return KeySource("key env", f"${settings.key_env}")
    if settings.passphrase_env and os.environ.get(settings.passphrase_env):
        return KeySource("passphrase env", f"${settings.passphrase_env}")
    return None


def load_cipher(settings: EncryptionSettings, key_file: str | None = None, required: bool = False) -> Cipher | None:
    """The cipher of ``--key-file``, else the configured key file, key variable or passphrase variable.

    None when no key is configured, or :class:`~bdr.errors.MissingKey` when ``required``.
    """
    source = find_key_source(settings, key_file)
    if source is None:
        if required:
            raise MissingKey(detail=missing_key_hint(settings))
        return None
    if source.kind == "key file":
        return Cipher.from_key(read_key_file(Path(source.where)), origin=f"key file {source.where}")
    variable = source.where.removeprefix("$")
    value = os.environ[variable]
    if source.kind == "key env":
        return Cipher.from_key(parse_key(value, source.where), origin=source.where)
    if len(value) < MIN_PASSPHRASE:
        logger.warning("the passphrase in %s is shorter than %d characters: prefer a key file "
                       "(`bdr key generate`)", source.where, MIN_PASSPHRASE)
    return Cipher.from_passphrase(value.encode(), origin=source.where)


def missing_key_hint(settings: EncryptionSettings) -> str:
    places = [f"${v}" for v in (settings.key_env, settings.passphrase_env) if v]
    also = f" (or put a key or passphrase in {' / '.join(places)})" if places else ""
    return ("no encryption key: run `bdr key generate /etc/bdr/backup.key` and set encryption.key_file in "
            f"bdr.yaml or pass --key-file{also}")


def generate_key_file(path: Path, force: bool = False) -> tuple[str, Path | None]:
    """Write a new random key to ``path`` (mode 0600, atomically, fsynced); its id, and where an old key went.

    Without ``force`` an existing file is never touched. With it, the key it held is kept
    beside it as ``<name>.<key id>.old`` (0600): sets encrypted with it stay readable.
    """
    from bdr.storage.local import fsync_dir, translate_os_error

    if path.is_dir():
        raise UsageError(detail=f"{path} is a directory; give the key file's path, e.g. {path}/backup.key")
    if path.exists() and not force:
        raise UsageError(detail=f"{path} already exists; pass --force to replace it (the old key is kept as "
                         f"{path.name}.<key id>.old)")
    key = secrets.token_bytes(KEY_BYTES)
    kept: Path | None = None
    parent = path.parent
    tmp = parent / f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)  # whatever the umask
            handle.write(key.hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists() or path.is_symlink():
            kept = _keep_old_key(path)
        try:
            os.link(tmp, path)  # never replaces a file that appeared meanwhile
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(parent)
    except FileExistsError as exc:
        raise UsageError(detail=f"{path} appeared while the key was written; nothing was changed") from exc
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise translate_os_error(exc, parent) from exc
    return key_id_of(key), kept


def _keep_old_key(path: Path) -> Path:
    try:
        old_id = key_id_of(parse_key(path.read_text(encoding="ascii", errors="replace"), str(path)))
    except (ConfigError, OSError):
        old_id = "unreadable"
    kept = path.with_name(f"{path.name}.{old_id}.old")
    if kept.exists():
        kept = path.with_name(f"{path.name}.{old_id}.{secrets.token_hex(3)}.old")
    os.rename(path, kept)
    with contextlib.suppress(OSError):
        os.chmod(kept, 0o600)
    logger.info("kept the previous key of %s as %s", path, kept)
    return kept
