"""Writing one set into another repository, and checking what was written."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator

from bdr.copy.plan import Mode, check_key, same_backup
from bdr.errors import BackupNotFound, ChecksumMismatch, CopyCheckFailed, IncompleteBackup
from bdr.repository import BackupSet, CheckedReader, DamagedSet, ObjectCipher, Repository, SetWriter
from bdr.repository.manifest import CHUNK, Manifest
from bdr.safety.failpoints import failpoint

logger = logging.getLogger(__name__)


def _chunks(stream: CheckedReader) -> Iterator[bytes]:
    """The stored bytes in 1 MiB chunks; the failpoint ``copy.object`` after each one is written."""
    while chunk := stream.read(CHUNK):
        yield chunk
        failpoint("copy.object")


def write_copy(src: Repository, backup: BackupSet, dest: Repository, mode: Mode,
               cipher: ObjectCipher | None = None) -> Manifest:
    """Write ``backup`` into ``dest`` (whose lock the caller holds): marker, objects, manifest last.

    Each object is read through the checked stream of ``src``: a stored object that does not
    match the source manifest raises :class:`~bdr.errors.ChecksumMismatch` before anything of
    it is committed, and the whole set is deleted again (as on any failure or interrupt).
    ``mode`` :attr:`Mode.RE_ENCRYPTED` encrypts each plain object with ``cipher`` and seals a
    rewritten manifest with it; :attr:`Mode.AS_IS` writes the source manifest unchanged.
    """
    manifest = backup.manifest
    if mode is Mode.RE_ENCRYPTED:
        if cipher is None:
            raise ValueError("re-encrypting needs a cipher")
        check_key(manifest, cipher)
    writer = SetWriter(dest, backup.source, manifest.instance, manifest.method, manifest.tags, set_id=backup.id)
    with writer:
        for obj in manifest.objects:
            encrypt = mode is Mode.RE_ENCRYPTED and not obj.encrypted
            with src.open_stored(backup, obj.name) as stream:
                stored = writer.add_object(obj.name, _chunks(stream), cipher=cipher if encrypt else None,
                                           encrypted=obj.encrypted, total=obj.size)
            if not encrypt and (stored.size, stored.sha256) != (obj.size, obj.sha256):
                raise ChecksumMismatch(name=obj.name, ref=backup.id, expected=obj.sha256[:16],
                                       actual=f"{stored.sha256[:16]} as written to {dest.url}")
        if mode is Mode.AS_IS:
            written = writer.commit(manifest)
        else:
            assert cipher is not None
            written = writer.commit(dataclasses.replace(manifest, objects=tuple(writer.objects), encrypted=True,
                                                        key_id=cipher.key_id).seal(cipher))
    logger.info("backup set %s copied %s from %s to %s", backup.id, mode, src.url, dest.url)
    return written


def check_copy(dest: Repository, written: Manifest) -> BackupSet:
    """Load the copy again and re-hash every stored object against its manifest; delete it when it fails.

    Loading checks the manifest's digest (and its MAC when ``dest`` has the key); the
    manifest must be the one written, and each object's size and sha256 the manifest's.
    Raises :class:`~bdr.errors.CopyCheckFailed`.
    """
    try:
        found = dest.find(written.id, written.source)
    except (BackupNotFound, IncompleteBackup) as exc:
        raise CopyCheckFailed(ref=written.id, repo=dest.url, detail=f"it cannot be read back: {exc.message}") from exc
    if isinstance(found, DamagedSet):
        problems = [found.reason]
    elif found.manifest.canonical() != written.canonical() or not same_backup(found.manifest, written):
        problems = ["its manifest is not the one written"]
    else:
        problems = dest.check_objects(found)
    if not problems:
        assert isinstance(found, BackupSet)
        return found
    logger.warning("the copy of %s in %s failed its check: %s; deleting it", written.id, dest.url, problems)
    dest.delete(BackupSet(written, dest.url, dest.storage.location))  # ours, written under the lock just now
    raise CopyCheckFailed(ref=written.id, repo=dest.url, detail="; ".join(problems))
