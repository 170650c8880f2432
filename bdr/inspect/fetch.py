"""Finding a set, fetching its files (checked against the manifest) into a scratch directory, and its copies.

``SET`` is what ``bdr restore`` takes: an id or unique prefix, a set directory, or
``latest`` (the newest good set of ``--source``/``--instance``, see :mod:`bdr.api.inputs`).
The files go to a private temporary directory that is removed after use; every object is
hashed as it is read (:func:`bdr.repository.extract_set`), so what is shown is what the
manifest vouches for. Where else the same backup is held (same id, or the same data) is
found by listing every repository bdr knows (:func:`bdr.monitoring.status.views_for`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdr.api.inputs import resolve_input
from bdr.api.keys import cipher_for_reading
from bdr.config import Config
from bdr.errors import UsageError
from bdr.repository import BackupSet, ObjectCipher, Repository, SkippedSet, extract_set
from bdr.repository.archive import copy_to_file


@dataclass(frozen=True, slots=True)
class OpenedSet:
    """A set found for inspection, the repository it is in, and how ``latest`` was chosen."""

    repository: Repository
    backup: BackupSet
    cipher: ObjectCipher | None
    skipped: tuple[SkippedSet, ...] = ()
    note: str | None = None


def open_set(config: Config, ref: str, *, source: str | None = None, instance: str | None = None,
             destination: str | Path | None = None, remote: str | None = None,
             key_file: str | None = None) -> OpenedSet:
    """The set ``ref`` names (a good one: a damaged set is refused with the reason, exit 6)."""
    resolved = resolve_input(config, ref, source, destination, remote, instance=instance)
    if resolved.backup is None:
        raise UsageError(detail=f"{ref} is not a backup set (a directory of an old script?): bdr show, diff and find "
                         "read sets; restore it with bdr restore, or back up again")
    cipher = cipher_for_reading(config, key_file)
    return OpenedSet(resolved.repository, resolved.backup, cipher, resolved.skipped, resolved.note)


@contextlib.contextmanager
def fetched(opened: OpenedSet, names: Sequence[str] = ()) -> Iterator[Path]:
    """The set's files in a scratch directory (only the objects ``names`` when the set stores them as such)."""
    scratch = Path(tempfile.mkdtemp(prefix="bdr-inspect-"))
    try:
        files = scratch / "files"
        files.mkdir()
        backup, repo = opened.backup, opened.repository
        objects = {o.name for o in backup.manifest.objects}
        if names and all(n in objects for n in names):
            repo.check_manifest(backup, opened.cipher)
            for name in names:
                with repo.open_object(backup, name, opened.cipher, check_manifest=False) as stream:
                    copy_to_file(stream, files / name)
        else:
            extract_set(repo, backup, files, opened.cipher)
        yield files
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Copy:
    """A repository holding this backup: the set itself, or another with the same data."""

    repository: str
    location: str
    set_id: str
    same: str
    """``this set``, ``same id`` (a copy of it) or ``same data`` (another run that stored the same files)."""

    def to_dict(self) -> dict[str, Any]:
        return {"repository": self.repository, "location": self.location, "id": self.set_id, "same": self.same}


def copies_of(config: Config, backup: BackupSet, destinations: Sequence[str | Path] = (),
              remote: str | None = None) -> tuple[list[Copy], list[str]]:
    """Every repository bdr knows that holds this backup, and the ones that could not be read."""
    from bdr.monitoring.status import fingerprint, views_for

    mine = fingerprint(backup.manifest)
    found: list[Copy] = []
    unreadable: list[str] = []
    urls = {backup.repository}
    for view in views_for(config, destinations, remote):
        urls.add(view.url)
        if view.error:
            unreadable.append(f"{view.url}: {view.error}")
            continue
        for other in view.sets:
            if other.id == backup.id:
                same = "this set" if view.url == backup.repository else "same id"
            elif mine is not None and other.source == backup.source and fingerprint(other.manifest) == mine:
                same = "same data"
            else:
                continue
            found.append(Copy(view.url, view.location, other.id, same))
    if not any(c.same == "this set" for c in found):
        found.insert(0, Copy(backup.repository, backup.location, backup.id, "this set"))
    return found, unreadable
