"""Backup sets made to order for retention, status and metrics tests.

:func:`make_set` builds a :class:`BackupSet` in memory (for the pure functions);
:func:`store_set` writes one into a real repository through its storage, with the
finish time the test wants, so ``bdr prune``/``bdr status`` list it like any other set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from bdr.manifest import FileEntry, Manifest, StoredObject, to_iso
from bdr.repository import BackupSet, Repository, Verification


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


def store_set(repo: Repository, manifest: Manifest, verification: Verification | None = None) -> BackupSet:
    """Write ``manifest`` (and an object of its size) into ``repo`` as a complete set."""
    prefix = f"{manifest.source}/{manifest.id}"
    for obj in manifest.objects:
        repo.storage.put_bytes(f"{prefix}/{obj.name}", b"x" * obj.size)
    repo.storage.put_bytes(f"{prefix}/manifest.json", manifest.to_json())
    backup = BackupSet(manifest, repo.url, repo.storage.location, None)
    if verification is not None:
        repo.record_verification(backup, verification)
    return repo.get(manifest.id)
