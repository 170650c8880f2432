"""The volume method: Qdrant's storage directory, copied while nothing writes to it.

**Embedded** (qdrant-client local mode, ``path``): bdr takes the engine's own lock
(``<path>/.lock``, the exclusive non-blocking ``flock`` local mode takes) for the copy, so
no client - the application or another bdr - can open the directory meanwhile; when one has
it open the backup fails at once with :class:`~bdr.errors.ServiceBusy` instead of copying a
directory that is being written. The copy goes to a staging directory, the lock is
released, and the staged copy is opened to record the same facts a logical backup records
(config, point count and content hash per collection), then archived (tar + zstd) into the
set. A restore swaps the directory: the extracted copy is renamed into place under the
lock, the old directory removed.

**Server** (``storage_dir``): only while the server is stopped - bdr refuses when its url
answers, and does not stop or start a Qdrant server itself. The facts are the collection
directories found; the live check after a restore is that they are back (start the server
and run ``bdr verify`` / a logical check to go further).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from bdr.engines.base import BackupRequest, Check, RestoreRequest
from bdr.engines.qdrant import logical
from bdr.engines.qdrant.client import (
    LOCK_FILE,
    META_FILE,
    Target,
    aliases,
    connect,
    embedded_version,
    list_collections,
    reachable,
)
from bdr.engines.qdrant.method import PointOrigin, RestorePlan
from bdr.engines.qdrant.pointfile import HASH_NAME
from bdr.errors import ConfigError, CorruptArchive, ServiceBusy, ServiceError, UsageError
from bdr.repository import SetWriter
from bdr.repository.archive import ArchiveMember
from bdr.repository.manifest import Manifest

logger = logging.getLogger(__name__)

METHOD = "volume"
PREFIX = "storage"
"""Inside the set, the directory's files live under ``storage/``."""


@contextlib.contextmanager
def embedded_lock(directory: Path) -> Iterator[None]:
    """Hold the embedded engine's directory lock, as a qdrant-client would."""
    import portalocker

    lock_path = directory / LOCK_FILE
    if not lock_path.exists():
        lock_path.write_text("tmp lock file")
    handle: TextIO = lock_path.open("r+")
    try:
        try:
            portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        except portalocker.exceptions.LockException as exc:
            raise ServiceBusy(service="embedded Qdrant", address=str(directory),
                              detail="another process has it open; stop the application that uses it first") from exc
        try:
            yield
        finally:
            portalocker.unlock(handle)
    finally:
        handle.close()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != LOCK_FILE)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def server_storage(target: Target) -> Path:
    storage = target.instance.storage_dir
    if not storage:
        raise ConfigError(path="bdr.yaml", detail=f"qdrant.{target.name}: the volume method on a server needs "
                          "storage_dir (the Qdrant storage directory on this host)")
    return Path(storage)


def refuse_running(target: Target, what: str) -> None:
    if reachable(target):
        raise ServiceError(detail=f"Qdrant at {target.location} is running; stop it before a volume {what} "
                           "(or use --method logical / snapshot, which work on a running server)")


class VolumeMethod:
    """The storage directory (see the module docstring)."""

    name = METHOD

    # --- backup ----------------------------------------------------------------------------

    def backup(self, request: BackupRequest, writer: SetWriter, target: Target) -> None:
        writer.method = METHOD
        if not target.embedded:
            self._backup_server(writer, target)
            return
        directory = target.path
        if not (directory / META_FILE).is_file():
            raise ServiceError(detail=f"no embedded Qdrant storage at {directory} (meta.json missing)")
        staging = directory.parent / f".{directory.name}.bdr-copy-{secrets.token_hex(3)}"
        try:
            with embedded_lock(directory):
                for source in _files(directory):
                    dest = staging / source.relative_to(directory)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, dest)
            staged = Target(target.instance, str(staging))
            with connect(staged) as client:
                names = list_collections(client, staged)
                collections = {name: logical.live_facts(client, staged, name) for name in names}
                all_aliases = aliases(client, staged)
            writer.add_archive([ArchiveMember(p, f"{PREFIX}/{p.relative_to(staging).as_posix()}")
                                for p in _files(staging)], compress=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        writer.facts.update(method=METHOD, mode="embedded", qdrant_version=embedded_version(),
                            hash=HASH_NAME, collections=collections, aliases=all_aliases)

    def _backup_server(self, writer: SetWriter, target: Target) -> None:
        storage = server_storage(target)
        refuse_running(target, "backup")
        if not storage.is_dir():
            raise ServiceError(detail=f"Qdrant storage directory {storage} does not exist")
        writer.add_archive([ArchiveMember(p, f"{PREFIX}/{p.relative_to(storage).as_posix()}")
                            for p in _files(storage)], compress=True)
        found = sorted(p.name for p in (storage / "collections").iterdir()) if (storage / "collections").is_dir() \
            else []
        writer.facts.update(method=METHOD, mode="server", collections={c: {} for c in found},
                            storage_dir=str(storage))

    # --- restore ---------------------------------------------------------------------------

    def plan(self, request: RestoreRequest, target: Target, files: Path, manifest: Manifest) -> RestorePlan:
        mode = manifest.facts.get("mode")
        if (mode == "embedded") != target.embedded:
            kind = "an embedded Qdrant" if mode == "embedded" else "a Qdrant server"
            raise UsageError(detail=f"this volume backup is of {kind} and cannot go into {target.label()}; use a "
                             "logical backup to move data between the two")
        if not (files / PREFIX).is_dir():
            raise CorruptArchive(name=manifest.id, detail="the set holds no storage directory")
        collections = list(manifest.facts.get("collections") or {})
        if target.embedded:
            live = logical.existing_collections(target)
        else:
            refuse_running(target, "restore")
            live_dir = server_storage(target) / "collections"
            live = sorted(p.name for p in live_dir.iterdir()) if live_dir.is_dir() else []
        plan = RestorePlan(collections, [c for c in live if c in collections], whole_instance=True)
        gone = [c for c in live if c not in collections]
        if gone:
            plan.notes.append(f"the whole directory is replaced: {', '.join(gone)} (not in the backup) will be "
                              "removed (the safety backup keeps them)")
        return plan

    def replace(self, request: RestoreRequest, target: Target, files: Path, manifest: Manifest,
                plan: RestorePlan) -> list[str]:
        directory = target.path if target.embedded else server_storage(target)
        if not target.embedded:
            refuse_running(target, "restore")
        staged = directory.parent / f".{directory.name}.bdr-new-{secrets.token_hex(3)}"
        old = directory.parent / f".{directory.name}.bdr-old-{secrets.token_hex(3)}"
        directory.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(files / PREFIX), str(staged))  # a rename: the scratch directory is beside the target
        try:
            if directory.exists():
                lock = embedded_lock(directory) if target.embedded else contextlib.nullcontext()
                with lock:
                    directory.rename(old)
                    staged.rename(directory)
            else:
                staged.rename(directory)
            _fsync_dir(directory.parent)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
        return [f"storage directory {directory} replaced"]

    def check_live(self, target: Target, files: Path, manifest: Manifest, plan: RestorePlan) -> list[Check]:
        collections: dict[str, dict[str, Any]] = dict(manifest.facts.get("collections") or {})
        if not target.embedded:
            live_dir = server_storage(target) / "collections"
            found = sorted(p.name for p in live_dir.iterdir()) if live_dir.is_dir() else []
            missing = [c for c in collections if c not in found]
            return [Check("collections", not missing, f"missing {', '.join(missing)}" if missing else
                          f"{len(found)} collection directories in place; start Qdrant to serve them")]
        checks: list[Check] = []
        with connect(target) as client:
            live = list_collections(client, target)
            extra = [c for c in live if c not in collections]
            checks.append(Check("collections", not extra and all(c in live for c in collections),
                                f"{len(live)} collection(s)" + (f"; unexpected {', '.join(extra)}" if extra else "")))
            for name, facts in collections.items():
                if name in live:
                    checks += logical.verify_collection(client, target, name, facts, None)
            checks.append(logical.alias_check(client, target, dict(manifest.facts.get("aliases") or {})))
        return checks

    def point_origin(self, manifest: Manifest, files: Path, facts: dict[str, Any], work: Path) -> PointOrigin:
        """An embedded copy, opened where it was fetched; a server's storage directory cannot be read."""
        if manifest.facts.get("mode") != "embedded":
            raise UsageError(detail=f"backup {manifest.id} is a {METHOD} backup of a Qdrant server's storage "
                             "directory; selective restores need a logical, snapshot or embedded volume backup")
        from bdr.config import QdrantInstance

        storage = files / PREFIX
        return PointOrigin(target=Target(QdrantInstance(name="backup", path=str(storage)), str(storage)))

    # --- verify ----------------------------------------------------------------------------

    def verify(self, manifest: Manifest, files: Path, restore_test: bool) -> list[Check]:
        storage = files / PREFIX
        if not storage.is_dir():
            return [Check("storage directory", False, "the set holds no storage directory")]
        if manifest.facts.get("mode") != "embedded":
            return [Check("storage directory", True, f"{len(_files(storage))} file(s); a server's storage can only "
                          "be checked by starting Qdrant on it")]
        if not (storage / META_FILE).is_file():
            return [Check("storage directory", False, "meta.json is missing: not a qdrant-client local-mode storage")]
        checks = [Check("storage directory", True, f"{len(_files(storage))} file(s)")]
        if restore_test:
            import tempfile

            from bdr.config import QdrantInstance

            with tempfile.TemporaryDirectory(prefix="bdr-qdrant-test-") as scratch:
                copy = Path(scratch) / "storage"
                shutil.copytree(storage, copy)
                target = Target(QdrantInstance(name="restore-test", path=str(copy)), str(copy))
                with connect(target) as client:
                    for name, facts in (manifest.facts.get("collections") or {}).items():
                        checks += [Check(f"restore test: {c.name}", c.ok, c.detail)
                                   for c in logical.verify_collection(client, target, name, facts, None)]
        return checks


IMPLEMENTATION = VolumeMethod()
