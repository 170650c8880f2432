"""Turning what an operator types into a repository and a backup set.

``BACKUP`` may be a set id (or unique prefix, or ``latest``) in the configured repository,
a set directory (holding ``manifest.json``), a set's ``data.tar.zst``, or, for people
migrating from the old shell scripts, a plain directory of data files or a ``.tar.gz``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bdr.config import Config
from bdr.errors import UsageError
from bdr.manifest import MANIFEST_NAME
from bdr.repository import BackupSet, Repository

LEGACY_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.zst", ".snapshot")


@dataclass(frozen=True, slots=True)
class ResolvedInput:
    """The repository and set (or the legacy path) a restore or verify will read."""

    repository: Repository
    backup: BackupSet | None
    legacy_path: Path | None = None

    @property
    def label(self) -> str:
        return self.backup.id if self.backup else str(self.legacy_path)


def open_repository(config: Config, destination: str | Path | None = None, remote: str | None = None) -> Repository:
    """The repository to use: ``--remote``, else ``--destination``, else the configured one."""
    if remote:
        return Repository.open(remote, settings=config.remote)
    return Repository.open(Path(destination) if destination else config.repository_path())


def resolve_input(
    config: Config,
    ref: str,
    source: str | None,
    destination: str | Path | None = None,
    remote: str | None = None,
) -> ResolvedInput:
    """Find what ``ref`` designates; raises BackupNotFound / IncompleteBackup / UsageError."""
    path = Path(ref)
    if not remote and path.exists():
        set_dir = path if path.is_dir() else path.parent
        if (set_dir / MANIFEST_NAME).is_file():
            repo = Repository.open(set_dir.parent.parent)
            backup = repo.get(set_dir.name)
        elif path.is_dir() or path.name.endswith(LEGACY_SUFFIXES) or (source == "config" and path.is_file()):
            # a config backup of the old runbook may be any file: env_*.backup, env_encrypted_*.enc
            return ResolvedInput(open_repository(config, destination), None, path.resolve())
        else:
            raise UsageError(detail=f"{ref} is neither a backup set nor a directory or .tar.gz of data files")
    else:
        repo = open_repository(config, destination, remote)
        backup = repo.get(ref, source if source != "all" or ref == "latest" else None)
    if source and backup.source != source:
        raise UsageError(detail=f"backup {backup.id} holds {backup.source} data, not {source}")
    return ResolvedInput(repo, backup)
