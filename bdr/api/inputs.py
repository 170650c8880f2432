"""Turning what an operator types into a repository and a backup set.

``BACKUP`` may be a set id (or unique prefix, or ``latest``) in the configured repository,
a set directory (holding ``manifest.json``), a set's ``data.tar.zst``, or, for people
migrating from the old shell scripts, a plain directory of data files or a ``.tar.gz``.

``latest`` is the newest *good* set of one instance: the one named by ``instance``
(``--instance``), else the restore's ``target`` (``--target``), else the source's default
instance; never a safety backup, a damaged set or one whose last ``bdr verify`` failed (those
it passed over are in :attr:`ResolvedInput.skipped`, and the CLI names them). A restore
target with no backup set of its own (the monthly test's ``test``, an instance marked
``backup: false``) takes the newest of the default instance, and says so
(:attr:`ResolvedInput.note`).

A damaged set (see :mod:`bdr.repository`) is refused with
:class:`~bdr.repository.DamagedBackup`, also when given as a set directory whose manifest
is gone (it is never taken for a legacy directory of data files); ``bdr verify`` asks for it
anyway (``allow_damaged``) to report what is wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bdr.config import Config
from bdr.errors import BackupNotFound, DamagedBackup, UsageError
from bdr.repository import SET_ID, SOURCES, BackupSet, DamagedSet, ObjectCipher, Repository, SkippedSet
from bdr.repository.manifest import MANIFEST_NAME
from bdr.sources import ALL, CATALOGUE

logger = logging.getLogger(__name__)

LEGACY_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.zst", ".snapshot")


@dataclass(frozen=True, slots=True)
class ResolvedInput:
    """The repository and set (or the legacy path) a restore or verify will read."""

    repository: Repository
    backup: BackupSet | None
    legacy_path: Path | None = None
    damaged: DamagedSet | None = None
    """With ``allow_damaged``: the damaged set ``ref`` named (``backup`` is None then)."""
    skipped: tuple[SkippedSet, ...] = ()
    """Sets ``latest`` passed over: damaged, or failed by their last verify (the CLI warns about each)."""
    note: str | None = None
    """How ``latest`` was chosen when that is not obvious (a target without sets of its own)."""

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


def default_instance(config: Config, source: str | None) -> str | None:
    """The instance ``latest`` means without ``--instance``/``--target`` (None: any, for an unknown source)."""
    if source == ALL:
        return "system"
    found = CATALOGUE.find(source or "")
    if found is None:
        return None
    name = found.default_instance(config)
    return (name or None) if found.optional else name


def _own_sets(repo: Repository, source: str, instance: str) -> bool:
    """Whether ``instance`` has any set of its own (good, failed or damaged), safety backups aside."""
    catalog = repo.catalog(source)
    return any(b.manifest.instance == instance and "safety" not in b.tags for b in catalog.sets) or any(
        d.instance == instance for d in catalog.damaged)


def latest_of(config: Config, repo: Repository, source: str | None, instance: str | None = None,
              target: str | None = None) -> tuple[BackupSet, str | None]:
    """``latest`` as the module docstring defines it: the set, and a note when it came from another instance."""
    if source is None:
        return repo.latest(None, instance), None
    chosen = instance or target or default_instance(config, source)
    fallback = default_instance(config, source)
    try:
        return repo.latest(source, chosen), None
    except BackupNotFound:
        if instance or not target or chosen == fallback or _own_sets(repo, source, str(chosen)):
            raise
    found = repo.latest(source, fallback)
    note = (f"{source} {chosen} has no backup set of its own: latest is the newest of {fallback}, {found.id} "
            f"(give --instance to choose another)")
    logger.warning("%s", note)
    return found, note


def resolve_input(
    config: Config,
    ref: str,
    source: str | None,
    destination: str | Path | None = None,
    remote: str | None = None,
    *,
    allow_damaged: bool = False,
    instance: str | None = None,
    target: str | None = None,
) -> ResolvedInput:
    """Find what ``ref`` designates; raises BackupNotFound / IncompleteBackup / DamagedBackup / UsageError.

    ``instance`` / ``target``: whose ``latest`` (see the module docstring); ignored for an id or a path.
    """
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
    elif ref == "latest":
        repo = open_repository(config, destination, remote)
        backup, note = latest_of(config, repo, source, instance, target)
        return ResolvedInput(repo, backup, skipped=tuple(repo.skipped), note=note)
    else:
        repo = open_repository(config, destination, remote)
        found = repo.find(ref, source if source != "all" else None)
    skipped: tuple[SkippedSet, ...] = ()
    if source and found.source != source:
        raise UsageError(detail=f"backup {found.id} holds {found.source} data, not {source}")
    if isinstance(found, DamagedSet):
        if not allow_damaged:
            raise DamagedBackup(ref=found.id, reason=found.reason)
        return ResolvedInput(repo, None, damaged=found, skipped=skipped)
    return ResolvedInput(repo, found, skipped=skipped)
