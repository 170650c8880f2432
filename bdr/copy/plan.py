"""Deciding a copy before anything is written: which sets go, how, and what the destination already holds."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from bdr.errors import BackupNotFound, CopyConflict, CopyRefused, IncompleteBackup
from bdr.repository import BackupSet, DamagedSet, Entry, ObjectCipher, Repository, Unfinished
from bdr.repository.manifest import MANIFEST_NAME, Manifest, mac_check
from bdr.repository.retention import is_safety


class Mode(StrEnum):
    """How one set reaches the destination."""

    AS_IS = "as is"
    """Every object and the manifest byte for byte (an encrypted set, or plaintext allowed)."""
    RE_ENCRYPTED = "re-encrypted"
    """A plain set encrypted object by object on its way, its manifest rewritten and sealed again."""
    ALREADY_THERE = "already there"
    """The destination holds it (same id, same data) and its objects match: nothing written."""


def refuse(backup: BackupSet) -> None:
    """Raise :class:`CopyRefused` for a set that is not a backup to keep: a safety set, or one its verify failed."""
    if is_safety(backup):
        raise CopyRefused(ref=backup.id, reason="it is a safety backup (taken before a restore to undo it), not a "
                          "backup to keep: copy a backup set (`bdr list --no-safety` lists them)")
    verification = backup.verification
    if verification is not None and not verification.ok:
        detail = f" ({verification.detail})" if verification.detail else ""
        raise CopyRefused(ref=backup.id, reason=f"its last `bdr verify` failed at {verification.at}{detail}: copy "
                          f"another set, or run `bdr verify {backup.id}` again once it is fixed")


def members_first(repo: Repository, backup: BackupSet) -> list[BackupSet]:
    """The sets copying ``backup`` means: a whole-system set's members (each good), then the set itself."""
    members: list[BackupSet] = []
    for child in backup.manifest.children:
        try:
            found = repo.find(child)
        except (BackupNotFound, IncompleteBackup) as exc:
            raise CopyRefused(ref=backup.id, reason=f"its member set {child} cannot be read ({exc.message})") from exc
        if isinstance(found, DamagedSet):
            raise CopyRefused(ref=backup.id, reason=f"its member set {child} is damaged ({found.reason})")
        refuse(found)
        members.append(found)
    return [*members, backup]


def mode_for(backup: BackupSet, cipher: ObjectCipher | None) -> Mode:
    """As is when the set is encrypted already or no cipher is asked for; re-encrypted otherwise."""
    return Mode.AS_IS if backup.manifest.encrypted or cipher is None else Mode.RE_ENCRYPTED


def check_key(manifest: Manifest, cipher: ObjectCipher) -> None:
    """Before re-encrypting: objects encrypted on their own (secrets) go as they are, so ``cipher`` must be their key.

    The manifest's MAC was made with that key; only the same key (or passphrase) proves it.
    """
    if not any(obj.encrypted for obj in manifest.objects):
        return
    ok, detail = mac_check(manifest, cipher)
    if ok is not True:
        raise CopyRefused(ref=manifest.id, reason=f"its secrets are encrypted with key {manifest.key_id} and the key "
                          f"given cannot open them ({detail}): give that key with --key-file")


def existing_copy(dest: Repository, entries: Mapping[str, Entry], backup: BackupSet) -> BackupSet | None:
    """The destination's set of the same id, when it is the same backup; None when there is none.

    ``entries``: the destination's sets by id, from one scan made under its lock (the sweep
    has run). A damaged set, one still being written, or another backup under the same id is
    left alone: :class:`~bdr.errors.CopyConflict` says what to delete.
    """
    found = entries.get(backup.id)
    if found is None:
        return None
    path = f"{dest.url.rstrip('/')}/{backup.source}/{backup.id}"
    if isinstance(found, DamagedSet):
        raise CopyConflict(repo=dest.url, ref=backup.id, detail=f"is damaged ({found.reason})", path=path)
    if isinstance(found, Unfinished):
        writer = found.writer
        who = f"pid {writer.pid} on {writer.host} since {writer.started}" if writer else "an unknown writer"
        raise CopyConflict(repo=dest.url, ref=backup.id, detail=f"has no {MANIFEST_NAME} yet and is being written "
                           f"by {who}", path=path)
    if not same_backup(found.manifest, backup.manifest):
        raise CopyConflict(repo=dest.url, ref=backup.id, detail="holds other data than the set being copied",
                           path=path)
    return found


def same_backup(one: Manifest, other: Manifest) -> bool:
    """The same snapshot: same id, source, instance, times and files (objects may differ: re-encrypted)."""
    return ((one.id, one.source, one.instance, one.started_at, one.finished_at, one.files, one.children)
            == (other.id, other.source, other.instance, other.started_at, other.finished_at, other.files,
                other.children))
