"""Backup sets made to order for retention, status and metrics tests.

:func:`make_set` builds a :class:`BackupSet` in memory (for the pure functions);
:func:`store_set` writes one into a real repository through its storage, with the
finish time the test wants, so ``bdr prune``/``bdr status`` list it like any other set.

Tests that need a manifest to say something else than bdr wrote (a lying key count, an
older finish time) use :func:`rewrite_manifest`: it re-seals the manifest (a fresh digest),
as a bdr that recorded wrong facts would have; editing ``manifest.json`` by hand makes the
set *damaged* instead (see :func:`edit_manifest_by_hand`). :func:`leave_crashed_set` leaves
what a killed ``bdr backup`` leaves (a writing marker of a dead pid, objects, no manifest).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from bdr.repository import WRITING_MARKER, BackupSet, LockInfo, ObjectCipher, Repository, Verification, WriterMarker
from bdr.repository.manifest import MANIFEST_NAME, FileEntry, Manifest, StoredObject, to_iso, utcnow


def set_id(source: str, finished: datetime, instance: str = "production", salt: str = "") -> str:
    suffix = hashlib.sha256(f"{instance}|{finished.isoformat()}|{salt}".encode()).hexdigest()[:6]
    return f"{source}-{finished:%Y%m%dT%H%M%SZ}-{suffix}"


def make_manifest(
    finished: datetime,
    source: str = "redis",
    instance: str = "production",
    *,
    tags: Sequence[str] = (),
    data: bytes | None = None,
    children: Sequence[str] = (),
    ident: str | None = None,
    seconds: float = 2.0,
    size: int = 1000,
) -> Manifest:
    ident = ident or set_id(source, finished, instance, ",".join(tags))
    content = data if data is not None else ident.encode()
    digest = hashlib.sha256(content).hexdigest()
    started = datetime.fromtimestamp(finished.timestamp() - seconds, tz=finished.tzinfo)
    return Manifest(
        id=ident,
        source=source,
        instance=instance,
        method="safety" if "safety" in tags else "rdb",
        started_at=to_iso(started),
        finished_at=to_iso(finished),
        files=(FileEntry("dump.rdb", size, digest),),
        objects=(StoredObject("dump.rdb", size, hashlib.sha256(b"x" * size).hexdigest()),),
        tags=tuple(tags),
        children=tuple(children),
        host="test-host",
    )


def make_set(
    finished: datetime,
    source: str = "redis",
    instance: str = "production",
    *,
    location: str = "local",
    tags: Sequence[str] = (),
    verified: bool | None = None,
    verified_at: datetime | None = None,
    data: bytes | None = None,
    children: Sequence[str] = (),
    ident: str | None = None,
) -> BackupSet:
    manifest = make_manifest(finished, source, instance, tags=tags, data=data, children=children, ident=ident)
    verification = None
    if verified is not None:
        verification = Verification(at=to_iso(verified_at or finished), ok=verified)
    return BackupSet(manifest, f"/{location}-repo", location, verification)


def store_set(repo: Repository, manifest: Manifest, verification: Verification | None = None,
              key: ObjectCipher | None = None) -> BackupSet:
    """Write ``manifest`` (sealed: with its digest, and a MAC under ``key``) and an object of its size into
    ``repo`` as a complete set."""
    manifest = manifest.seal(key)
    prefix = f"{manifest.source}/{manifest.id}"
    for obj in manifest.objects:
        repo.storage.put_bytes(f"{prefix}/{obj.name}", b"x" * obj.size)
    repo.storage.put_bytes(f"{prefix}/{MANIFEST_NAME}", manifest.to_json())
    backup = BackupSet(manifest, repo.url, repo.storage.location, None)
    if verification is not None:
        repo.record_verification(backup, verification)
    return repo.get(manifest.id)


def manifest_key(repo: Repository, source: str, set_id: str) -> str:
    return f"{source}/{set_id}/{MANIFEST_NAME}"


def rewrite_manifest(repo: Repository, source: str, set_id: str, change: Callable[[dict[str, Any]], None],
                     key: ObjectCipher | None = None) -> Manifest:
    """Change a stored manifest's JSON with ``change`` and write it back re-sealed (as bdr would have written
    it): the set stays good, and says what ``change`` made it say."""
    data = json.loads(repo.storage.read_bytes(manifest_key(repo, source, set_id)))
    change(data)
    manifest = Manifest.from_dict({k: v for k, v in data.items() if k not in ("digest", "mac")}).seal(key)
    repo.storage.put_bytes(manifest_key(repo, source, set_id), manifest.to_json())
    return manifest


def edit_manifest_by_hand(repo: Repository, source: str, set_id: str,
                          change: Callable[[dict[str, Any]], None]) -> None:
    """Edit a stored manifest's JSON as a person with an editor would: its digest no longer matches."""
    data = json.loads(repo.storage.read_bytes(manifest_key(repo, source, set_id)))
    change(data)
    repo.storage.put_bytes(manifest_key(repo, source, set_id), json.dumps(data, indent=2).encode())


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped): nothing runs under it right now."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def leave_crashed_set(repo: Repository, source: str, set_id: str, objects: Mapping[str, bytes],
                      *, pid: int | None = None, host: str | None = None, started: datetime | None = None) -> None:
    """What a ``bdr backup`` killed mid-copy leaves: its writing marker (a dead pid by default), objects, no
    manifest."""
    marker = WriterMarker(set_id, pid if pid is not None else dead_pid(), host or socket.gethostname(),
                          to_iso(started or utcnow()), "0.1.0")
    repo.storage.put_bytes(f"{source}/{set_id}/{WRITING_MARKER}", marker.to_json())
    for name, data in objects.items():
        repo.storage.put_bytes(f"{source}/{set_id}/{name}", data)


def leave_read_marker(repo: Repository, set_id: str, pid: int | None = None) -> str:
    """The read marker a restore killed while reading ``set_id`` leaves (a dead pid by default); its key."""
    info = dataclasses.replace(LockInfo.here(f"read {set_id}"), pid=pid if pid is not None else dead_pid(),
                               process_start=None)
    key = f"locks/read-{set_id}-{info.pid}-dead.json"
    repo.storage.put_bytes(key, info.to_json())
    return key
