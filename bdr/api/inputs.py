"""Turning what an operator types into a repository and a backup set.

``BACKUP`` may be a set id (or unique prefix, or ``latest``) in the configured repository,
a set directory (holding ``manifest.json``), a set's ``data.tar.zst``, or, for people
migrating from the old shell scripts, a plain directory of data files or a ``.tar.gz``.

A damaged set (see :mod:`bdr.repository`) is refused with
:class:`~bdr.repository.DamagedBackup`, also when given as a set directory whose manifest
is gone (it is never taken for a legacy directory of data files); ``bdr verify`` asks for it
anyway (``allow_damaged``) to report what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bdr.config import Config
from bdr.errors import DamagedBackup, UsageError
from bdr.manifest import MANIFEST_NAME
from bdr.repository import SET_ID, SOURCES, BackupSet, DamagedSet, ObjectCipher, Repository

LEGACY_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.zst", ".snapshot")


@dataclass(frozen=True, slots=True)
class ResolvedInput:
    """The repository and set (or the legacy path) a restore or verify will read."""

    repository: Repository
    backup: BackupSet | None
    legacy_path: Path | None = None
    damaged: DamagedSet | None = None
    """With ``allow_damaged``: the damaged set ``ref`` named (``backup`` is None then)."""
    skipped: tuple[DamagedSet, ...] = ()
    """Damaged sets ``latest`` passed over (the CLI warns about each)."""

    @property
    def label(self) -> str:
        if self.damaged is not None:
            return self.damaged.id
        return self.backup.id if self.backup else str(self.legacy_path)


def open_repository(config: Config, destination: str | Path | None = None, remote: str | None = None,
                    cipher: ObjectCipher | None = None) -> Repository:
    """The repository to use: ``--remote``, else ``--destination``, else the configured one.

    ``cipher``: the key at hand, so manifests' MACs are checked as sets load.
    """
    if remote:
        return Repository.open(remote, cipher, settings=config.remote)
    return Repository.open(Path(destination) if destination else config.repository_path(), cipher)


def _in_repository(set_dir: Path) -> bool:
    """Whether ``set_dir`` sits where a repository keeps a set (``<repo>/<source>/<set id>``)."""
    match = SET_ID.match(set_dir.name)
    return match is not None and match["source"] == set_dir.parent.name and set_dir.parent.name in SOURCES


def resolve_input(
    config: Config,
    ref: str,
    source: str | None,
    destination: str | Path | None = None,
    remote: str | None = None,
    *,
    allow_damaged: bool = False,
) -> ResolvedInput:
    """Find what ``ref`` designates; raises BackupNotFound / IncompleteBackup / DamagedBackup / UsageError."""
    path = Path(ref)
    if not remote and path.exists():
        set_dir = path if path.is_dir() else path.parent
        if (set_dir / MANIFEST_NAME).is_file() or _in_repository(set_dir):
            repo = Repository.open(set_dir.parent.parent)
            found = repo.find(set_dir.name)
        elif path.is_dir() or path.name.endswith(LEGACY_SUFFIXES) or (source == "config" and path.is_file()):
            # a config backup of the old runbook may be any file: env_*.backup, env_encrypted_*.enc
            return ResolvedInput(open_repository(config, destination), None, path.resolve())
        else:
            raise UsageError(detail=f"{ref} is neither a backup set nor a directory or .tar.gz of data files")
    else:
        repo = open_repository(config, destination, remote)
        found = repo.find(ref, source if source != "all" or ref == "latest" else None)
    skipped = tuple(repo.skipped) if ref == "latest" else ()
    if source and found.source != source:
        raise UsageError(detail=f"backup {found.id} holds {found.source} data, not {source}")
    if isinstance(found, DamagedSet):
        if not allow_damaged:
            raise DamagedBackup(ref=found.id, reason=found.reason)
        return ResolvedInput(repo, None, damaged=found, skipped=skipped)
    return ResolvedInput(repo, found, skipped=skipped)
