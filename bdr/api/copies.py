"""``bdr copy``: existing backup sets sent to another repository (off-site, another disk), no new snapshot.

The sets are chosen in the source repository (the configured one unless ``--from``): one set
(an id, a unique prefix, ``latest`` of a source and instance) or, with ``all_missing``,
every good set the destination does not hold yet, oldest first. Safety sets, damaged sets
and sets whose last ``bdr verify`` failed are refused with the reason. Each goes as
:mod:`bdr.copy` describes (as is, or re-encrypted when a plain set goes off-site), under
the destination's lock, and is checked there; a set the destination already holds (same
id, same data, its objects matching) is a no-op that says so. ``bdr backup --also-remote``
/ ``--also-local`` copy the set they just took with :func:`copy_taken`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdr.api.inputs import latest_of, open_repository
from bdr.api.keys import cipher_for_backup, cipher_for_reading
from bdr.config import Config
from bdr.copy import CopyRecord, Mode, check_copy, existing_copy, members_first, mode_for, refuse, write_copy
from bdr.engines.base import Step, StepLog
from bdr.errors import CopyConflict, DamagedBackup, UsageError
from bdr.repository import BackupSet, Entry, ObjectCipher, Repository, SkippedSet
from bdr.repository.manifest import to_iso, utcnow
from bdr.repository.retention import is_good, is_safety


@dataclass(slots=True)
class CopyOutcome:
    """One set copied (or found in place) in the destination, with its members first for a system set."""

    backup: BackupSet
    """The set as it now is in the destination."""
    mode: Mode
    record: CopyRecord
    seconds: float = 0.0
    members: list[CopyOutcome] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.backup.id

    @property
    def written(self) -> bool:
        return self.mode is not Mode.ALREADY_THERE

    def to_dict(self) -> dict[str, Any]:
        m = self.backup.manifest
        return {"id": m.id, "source": m.source, "instance": m.instance, "repository": self.backup.repository,
                "location": self.backup.location, "mode": str(self.mode), "written": self.written,
                "encrypted": m.encrypted, "stored_bytes": m.stored_size, "seconds": round(self.seconds, 4),
                "record": self.record.to_dict(), "members": [c.to_dict() for c in self.members]}


@dataclass(slots=True)
class CopyRun:
    """What one ``bdr copy`` did: from where, to where, each set."""

    source: str
    destination: str
    location: str
    outcomes: list[CopyOutcome] = field(default_factory=list)
    skipped: tuple[SkippedSet, ...] = ()
    """Sets ``latest`` passed over (damaged, failed by their verify)."""
    note: str | None = None
    steps: list[Step] = field(default_factory=list)

    @property
    def copied(self) -> list[CopyOutcome]:
        return [o for o in flatten(self.outcomes) if o.written]

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.destination, "location": self.location,
                "sets": [o.to_dict() for o in self.outcomes], "copied": [o.id for o in self.copied],
                "skipped": [s.describe() for s in self.skipped], "note": self.note,
                "steps": [s.to_dict() for s in self.steps]}


def flatten(outcomes: list[CopyOutcome]) -> Iterator[CopyOutcome]:
    """Every outcome, members before their system set."""
    for outcome in outcomes:
        yield from flatten(outcome.members)
        yield outcome


# --- where from, where to ---------------------------------------------------------------------------


def destination_url(config: Config, remote: str | None, to: str | Path | None) -> tuple[str, bool]:
    """The destination (a url or an absolute directory) and whether it is off-site; one of the two is given.

    ``remote`` ``""``: ``--remote`` without a URL, i.e. ``remote.url`` of bdr.yaml.
    """
    if (remote is None) == (to is None):
        raise UsageError(detail="give one destination: --remote [URL] (off-site, S3) or --to DIR (another disk)")
    if remote is not None:
        url = remote or config.remote.url
        if not url:
            raise UsageError(detail="--remote without a URL needs remote.url in bdr.yaml; or pass --remote "
                             "s3://bucket/prefix")
        return url, True
    return str(Path(str(to)).expanduser().resolve()), False


def _open(config: Config, location: str, cipher: ObjectCipher | None) -> Repository:
    if "://" in location:
        return open_repository(config, remote=location, cipher=cipher)
    return open_repository(config, Path(location), cipher=cipher)


def source_url(config: Config, from_location: str | Path | None) -> str:
    if from_location is None:
        return str(config.repository_path().resolve())
    text = str(from_location)
    return text if "://" in text else str(Path(text).expanduser().resolve())


# --- choosing the sets ----------------------------------------------------------------------------


def _chosen(config: Config, src: Repository, ref: str, source: str | None,
            instance: str | None) -> tuple[BackupSet, tuple[SkippedSet, ...], str | None]:
    if ref == "latest":
        backup, note = latest_of(config, src, source, instance)
        return backup, tuple(src.skipped), note
    found = src.find(ref, source)
    if source and found.source != source:
        raise UsageError(detail=f"backup {found.id} holds {found.source} data, not {source}")
    if not isinstance(found, BackupSet):
        raise DamagedBackup(ref=found.id, reason=found.reason)
    return found, (), None


def _missing(src: Repository, dest_ids: set[str], source: str | None, instance: str | None) -> list[BackupSet]:
    """Every good, non-safety set of ``src`` (of ``source``/``instance``) not among the destination's good sets
    (``dest_ids``), oldest first: a damaged or unfinished one of the same id there is a conflict to report."""
    sets = [b for b in src.catalog(source).sets
            if (instance is None or b.manifest.instance == instance) and not is_safety(b) and is_good(b)
            and b.id not in dest_ids]
    return sorted(sets, key=lambda b: (b.manifest.finished_at, b.id))


def _entries(dest: Repository) -> dict[str, Entry]:
    catalog = dest.catalog()
    entries: dict[str, Entry] = {e.id: e for e in catalog.unfinished}
    entries.update({e.id: e for e in catalog.damaged})
    entries.update({e.id: e for e in catalog.sets})
    return entries


def write_cipher(config: Config, sets: list[BackupSet], offsite_url: str | None, key_file: str | None, encrypt: bool,
                 allow_plaintext: bool) -> ObjectCipher | None:
    """The key plain sets are encrypted with on their way: off-site (unless plaintext is allowed) or ``encrypt``.

    Asked for only when a plain set goes: encrypted sets travel as they are and need no key.
    """
    if all(b.manifest.encrypted for b in sets):
        return None
    return cipher_for_backup(config, encrypt, offsite_url, key_file, allow_plaintext)


# --- copying ----------------------------------------------------------------------------------------


def _copy_one(src: Repository, backup: BackupSet, dest: Repository, entries: dict[str, Entry],
              cipher: ObjectCipher | None, log: StepLog) -> CopyOutcome:
    """One set (no members): a no-op when the destination holds it already, else written, checked and noted."""
    begun = time.perf_counter()
    existing = existing_copy(dest, entries, backup)
    if existing is not None:
        return _in_place(src, existing, dest, begun)
    mode = mode_for(backup, cipher)
    with log.step(f"copy {backup.id}") as step, src.reading(backup.id):
        copied_at = to_iso(utcnow())
        written = write_copy(src, backup, dest, mode, cipher)
        seconds = time.perf_counter() - begun
        step.detail = f"{mode} to {dest.url}"
    with log.step(f"check {backup.id}") as step:
        copied = check_copy(dest, written)
        step.detail = f"{len(written.objects)} object(s) re-hashed"
    record = CopyRecord(src.url, src.storage.location, str(mode), to_iso(utcnow()), len(written.objects),
                        written.stored_size, copied_at, round(seconds, 3))
    dest.record_copy(copied, record.to_dict())
    entries[backup.id] = copied
    return CopyOutcome(copied, mode, record, time.perf_counter() - begun)


def _in_place(src: Repository, existing: BackupSet, dest: Repository, begun: float) -> CopyOutcome:
    """The destination holds the set: trusted when a copy note or a passed verify says it was checked, else
    its objects are re-hashed now (and noted)."""
    raw = dest.copy_record(existing)
    record = CopyRecord.from_dict(raw) if raw is not None else None
    if record is None and existing.verified and existing.verification is not None:
        record = CopyRecord(src.url, src.storage.location, str(Mode.ALREADY_THERE), existing.verification.at,
                            len(existing.manifest.objects), existing.manifest.stored_size)
    if record is None:
        problems = dest.check_objects(existing)
        if problems:
            raise CopyConflict(repo=dest.url, ref=existing.id, detail=f"does not match its manifest ({problems[0]})",
                               path=f"{dest.url.rstrip('/')}/{existing.source}/{existing.id}")
        record = CopyRecord(src.url, src.storage.location, str(Mode.ALREADY_THERE), to_iso(utcnow()),
                            len(existing.manifest.objects), existing.manifest.stored_size)
        dest.record_copy(existing, record.to_dict())
    return CopyOutcome(existing, Mode.ALREADY_THERE, record, time.perf_counter() - begun)


def copy_set(src: Repository, backup: BackupSet, dest: Repository, entries: dict[str, Entry],
             cipher: ObjectCipher | None, log: StepLog) -> CopyOutcome:
    """``backup`` and, for a system set, its members first (the caller holds ``dest``'s lock)."""
    *members, own = members_first(src, backup)
    done = [copy_set(src, member, dest, entries, cipher, log) for member in members]
    outcome = _copy_one(src, own, dest, entries, cipher, log)
    outcome.members = done
    return outcome


def copy_sets(
    config: Config,
    ref: str | None,
    *,
    source: str | None = None,
    instance: str | None = None,
    from_location: str | Path | None = None,
    remote: str | None = None,
    to: str | Path | None = None,
    all_missing: bool = False,
    key_file: str | None = None,
    encrypt: bool = False,
    allow_plaintext: bool = False,
    on_step: Callable[[Step], None] | None = None,
) -> CopyRun:
    """``bdr copy``: ``ref`` (or every missing set) from the source repository to ``remote`` / ``to``."""
    if all_missing == (ref is not None):
        raise UsageError(detail="name one set (an id, or latest with --source) or give --all-missing, not both")
    target, offsite = destination_url(config, remote, to)
    origin = source_url(config, from_location)
    if origin == target:
        raise UsageError(detail=f"{target} is the repository the sets are in: copy them somewhere else")
    reading = cipher_for_reading(config, key_file)
    src = _open(config, origin, reading)
    dest = _open(config, target, reading)
    run = CopyRun(src.url, dest.url, dest.storage.location)
    log = StepLog(on_step=on_step)
    run.steps = log.steps
    chosen: list[BackupSet] = []
    if ref is not None:
        backup, run.skipped, run.note = _chosen(config, src, ref, source, instance)
        refuse(backup)
        chosen = [backup]
    with dest.lock(f"copy {ref or 'missing sets'}"):
        entries = _entries(dest)
        if all_missing:
            chosen = _missing(src, {i for i, e in entries.items() if isinstance(e, BackupSet)}, source, instance)
        sets = [s for backup in chosen for s in members_first(src, backup)]
        cipher = write_cipher(config, sets, target if offsite else None, key_file, encrypt, allow_plaintext)
        for backup in chosen:
            run.outcomes.append(copy_set(src, backup, dest, entries, cipher, log))
    _record_metrics(config, run)
    return run


def copy_taken(config: Config, backup: BackupSet, src: Repository, target: str, cipher: ObjectCipher | None,
               on_step: Callable[[Step], None] | None = None) -> CopyRun:
    """The copy half of ``bdr backup --also-remote`` / ``--also-local``: the set just taken, to ``target``."""
    dest = _open(config, target, src.cipher)
    run = CopyRun(src.url, dest.url, dest.storage.location)
    log = StepLog(on_step=on_step)
    run.steps = log.steps
    with dest.lock(f"copy {backup.id}"):
        run.outcomes.append(copy_set(src, backup, dest, _entries(dest), cipher, log))
    _record_metrics(config, run)
    return run


def _record_metrics(config: Config, run: CopyRun) -> None:
    """Rewrite the metrics; a destination bdr.yaml does not name is remembered (through its newest copy)."""
    copied = run.copied
    if not copied:
        return
    configured = {str(config.repository_path().resolve()), config.remote.url}
    if run.destination in configured:
        from bdr.monitoring.metrics import refresh

        refresh(config)
        return
    from bdr.api.records import record_success

    newest = max(copied, key=lambda o: o.backup.manifest.finished_at).backup.manifest
    record_success(config, newest, (newest.finished - newest.started).total_seconds(), run.location,
                   run.destination)
