"""What a configuration restore puts back: the files of a set, or of an old runbook's backup.

Files are read from the set's archives and checked against the manifest before anything is
planned or written: every listed file present, sizes and sha256 equal, secrets equal to
their keyed digest. Plain files are unpacked into a private scratch directory; **secrets
stay in memory**: their plaintext is written nowhere but to their place in the root.

The old runbook left three kinds of configuration backup, all accepted as ``BACKUP``:

- ``configs_YYYYMMDD.tar.gz`` (``tar czf ... docker-compose*.yml nginx.conf redis.conf
  monitoring/``), or a directory of such files;
- ``env_YYYYMMDD.backup``, a plain copy of ``.env`` (restored as ``.env``, mode 0600);
- ``env_encrypted_YYYYMMDD.enc`` from ``openssl enc -aes-256-cbc -salt`` (restored as
  ``.env``; the passphrase from ``encryption.passphrase_env``, else ``$BDR_PASSPHRASE``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import zstandard

from bdr.config import Config
from bdr.crypto import Cipher, decrypt_openssl_legacy, is_openssl_file
from bdr.errors import ChecksumMismatch, CorruptArchive, MissingKey, UsageError
from bdr.repository import BackupSet, ObjectCipher, Repository
from bdr.repository.archive import check_member, copy_to_file, open_tar_stream
from bdr.repository.manifest import CHUNK, sha256_file

logger = logging.getLogger(__name__)

SECRETS_OBJECT = "secrets.tar.zst"
LEGACY_ENV_NAME = ".env"
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst")


@dataclass(frozen=True, slots=True)
class IncomingFile:
    """One file to restore: where its content is, its mode, and its sha256."""

    path: str
    mode: int
    size: int
    sha256: str
    """Of the content. A secret's is kept in memory to check the restored file, never recorded."""
    secret: bool = False
    data: bytes | None = field(default=None, repr=False)
    """The content of a secret (in memory only)."""
    source: Path | None = None
    """Where a plain file's content is (the scratch directory, or an old runbook's directory)."""

    def chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            yield self.data
            return
        assert self.source is not None
        with self.source.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def read_bytes(self) -> bytes:
        return b"".join(self.chunks())


Incoming = dict[str, IncomingFile]


def _in_memory(path: str, data: bytes, mode: int, secret: bool = True) -> IncomingFile:
    return IncomingFile(path, mode, len(data), hashlib.sha256(data).hexdigest(), secret, data=data)


def read_tar(stream: BinaryIO, name: str, scratch: Path, secret: Callable[[str], bool],
             wanted: Callable[[str], bool]) -> Incoming:
    """The wanted regular files of a tar stream: secrets into memory, the others into ``scratch``."""
    out: Incoming = {}
    tar = open_tar_stream(stream, name)
    try:
        for member in tar:
            relative = check_member(member)
            if not relative or member.isdir() or not wanted(relative):
                continue
            if relative in out:
                raise CorruptArchive(name=name, detail=f"{relative!r} appears twice")
            content = tar.extractfile(member)
            if content is None:
                raise CorruptArchive(name=name, detail=f"cannot read member {member.name!r}")
            mode = member.mode & 0o7777
            if secret(relative):
                data = content.read()
                if len(data) != member.size:
                    raise CorruptArchive(name=name, detail=f"member {relative!r} is truncated")
                out[relative] = _in_memory(relative, data, mode)
                continue
            dest = scratch / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            sha256, size = copy_to_file(content, dest)
            if size != member.size:
                raise CorruptArchive(name=name, detail=f"member {relative!r} is truncated")
            out[relative] = IncomingFile(relative, mode, size, sha256, source=dest)
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
        raise CorruptArchive(name=name, detail=str(exc) or type(exc).__name__) from exc
    finally:
        tar.close()
    return out


def read_set(repo: Repository, backup: BackupSet, cipher: ObjectCipher | None, scratch: Path,
             wanted: Callable[[str], bool]) -> Incoming:
    """The wanted files of a configuration set, each checked against the manifest."""
    manifest = backup.manifest
    expected = {f.path: f for f in manifest.files if wanted(f.path)}
    secrets_wanted = any(f.secret for f in expected.values())
    digests: Mapping[str, str] = manifest.facts.get("secret_digests") or {}
    out: Incoming = {}
    for obj in manifest.objects:
        if obj.name == SECRETS_OBJECT and not secrets_wanted:
            continue  # a selection without secrets restores without the key
        if not obj.name.endswith((".tar.zst", ".tar")):
            continue
        with repo.open_object(backup, obj.name, cipher) as stream:
            out.update(read_tar(stream, f"{backup.id}/{obj.name}", scratch,
                                secret=lambda p: p in expected and expected[p].secret, wanted=wanted))
    for path, entry in expected.items():
        got = out.get(path)
        if got is None:
            raise CorruptArchive(name=backup.id, detail=f"file {path!r} listed in the manifest is missing")
        if got.size != entry.size or (entry.sha256 and got.sha256 != entry.sha256):
            raise ChecksumMismatch(name=path, ref=backup.id, expected=entry.sha256[:16] or f"{entry.size} bytes",
                                   actual=got.sha256[:16] if entry.sha256 else f"{got.size} bytes")
        recorded = digests.get(path)
        if (entry.secret and recorded and isinstance(cipher, Cipher) and got.data is not None
                and not cipher.digest_matches(got.data, recorded, name=path)):
            raise ChecksumMismatch(name=path, ref=backup.id, expected="(keyed digest)", actual="(differs)")
    unlisted = sorted(set(out) - set(expected))
    if unlisted:
        raise CorruptArchive(name=backup.id, detail=f"files not listed in the manifest: {', '.join(unlisted[:5])}")
    return out


def passphrase_for(config: Config) -> tuple[str, str]:
    """The passphrase of the old runbook's openssl files, and the variable it came from."""
    names = [n for n in (config.encryption.passphrase_env, "BDR_PASSPHRASE") if n]
    for name in dict.fromkeys(names):
        value = os.environ.get(name)
        if value:
            return value, f"${name}"
    raise MissingKey(detail=f"this file was encrypted with `openssl enc`: put its passphrase in ${names[0]} "
                     "(export it from your password manager; it is never read from the command line)")


def read_legacy(source: Path, scratch: Path, config: Config, secret: Callable[[str], bool],
                wanted: Callable[[str], bool]) -> Incoming:
    """The files of an old runbook's configuration backup (a tarball, a directory, an env file)."""
    if source.is_dir():
        return _read_directory(source, secret, wanted)
    with source.open("rb") as handle:
        head = handle.read(16)
    if is_openssl_file(head):
        passphrase, where = passphrase_for(config)
        data = decrypt_openssl_legacy(source.read_bytes(), passphrase, name=source.name, where=where)
        return _legacy_env(data, source, wanted)
    if head[:2] == b"\x1f\x8b" or head[:4] == b"\x28\xb5\x2f\xfd" or source.name.endswith(TAR_SUFFIXES):
        with source.open("rb") as stream:
            return read_tar(stream, source.name, scratch, secret, wanted)
    return _legacy_env(source.read_bytes(), source, wanted, plain=True)


def _legacy_env(data: bytes, source: Path, wanted: Callable[[str], bool], plain: bool = False) -> Incoming:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(detail=f"{source} is neither a bdr set, a tar archive, an `openssl enc` file nor an env "
                         "file (not text)") from None
    if b"\0" in data:
        raise UsageError(detail=f"{source} is not an env file (binary content)")
    if plain:
        logger.warning("%s is a plaintext copy of secrets: once bdr has backed them up (encrypted), delete it",
                       source)
    if not wanted(LEGACY_ENV_NAME):
        return {}
    return {LEGACY_ENV_NAME: _in_memory(LEGACY_ENV_NAME, data, 0o600)}


def _read_directory(source: Path, secret: Callable[[str], bool], wanted: Callable[[str], bool]) -> Incoming:
    out: Incoming = {}
    for current, _dirs, names in os.walk(source, followlinks=False):
        for name in names:
            path = Path(current) / name
            relative = path.relative_to(source).as_posix()
            if path.is_symlink() or not path.is_file() or not wanted(relative):
                continue
            mode = path.stat().st_mode & 0o7777
            if secret(relative):
                out[relative] = _in_memory(relative, path.read_bytes(), mode)
            else:
                sha256, size = sha256_file(path)
                out[relative] = IncomingFile(relative, mode, size, sha256, source=path)
    return out
