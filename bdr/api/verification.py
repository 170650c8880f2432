"""``bdr verify``: the manifest's digest and MAC, every object and file checksum, the engine's checks, a restore test.

A damaged set is verified too, as far as it can be: an unreadable manifest is one failed
check; a readable one whose digest or MAC does not match fails those checks and the rest
still run, so the operator sees whether the data itself is intact. Nothing is recorded in
a damaged set (bdr leaves it alone).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdr.api.inputs import resolve_input
from bdr.api.keys import cipher_for_reading
from bdr.config import Config
from bdr.engines import engine_for
from bdr.engines.base import Check
from bdr.errors import BdrError, MissingKey, StorageError, UsageError, WrongKey
from bdr.repository import BackupSet, DamagedSet, ObjectCipher, Repository, Verification, extract_set
from bdr.repository.manifest import NO_DIGEST, Manifest, ManifestKey, digest_problem, mac_check, to_iso, utcnow

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class VerifyReport:
    """The checks run on one set and whether all passed."""

    backup_id: str
    source: str
    checks: list[Check] = field(default_factory=list)
    restore_test: bool = False
    skipped: tuple[str, ...] = ()
    """``skipped <id> (damaged: <reason>)``: damaged sets ``latest`` passed over."""

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.backup_id,
            "source": self.source,
            "ok": self.ok,
            "restore_test": self.restore_test,
            "checks": [c.to_dict() for c in self.checks],
            "not_verified": [f"{c.name}: {c.detail}" for c in self.checks if c.skipped],
            "skipped": list(self.skipped),
        }


def manifest_checks(manifest: Manifest, key: ManifestKey | None) -> list[Check]:
    """The manifest's own digest, and its MAC in a set written with a key (checked with ``key``)."""
    if not manifest.sealed:
        return [Check("manifest digest", True, NO_DIGEST, skipped=True)]
    problem = digest_problem(manifest)
    checks = [Check("manifest digest", problem is None, problem or f"{manifest.digest[:23]}... matches its content")]
    if manifest.mac or manifest.key_id:
        ok, detail = mac_check(manifest, key)
        checks.append(Check("manifest MAC", ok is True, detail))
    return checks


def verify_set(repo: Repository, backup: BackupSet, restore_test: bool, key_file: str | None,
               config: Config, *, cipher: ObjectCipher | None = None, damage: str | None = None) -> VerifyReport:
    """Run every check on ``backup``; ``damage``: why the repository holds it for damaged (reported as a check)."""
    if cipher is None:
        cipher = cipher_for_reading(config, key_file)
    report = VerifyReport(backup.id, backup.source, restore_test=restore_test)
    report.checks += manifest_checks(backup.manifest, cipher)
    if damage and all(damage != c.detail for c in report.checks):
        report.checks.append(Check("manifest", False, damage))
    problems = repo.check_objects(backup)
    report.checks.append(Check("stored objects", not problems,
                               "; ".join(problems) or f"{len(backup.manifest.objects)} object(s) match sha256"))
    if problems:
        return report
    if backup.source == "all" or backup.manifest.children:  # a whole-system set, or a Redis cluster set
        for child_id in backup.manifest.children:
            report.checks += [Check(f"{child_id}: {c.name}", c.ok, c.detail, c.skipped)
                              for c in _verify_found(repo, child_id, restore_test, key_file, config, cipher).checks]
        verify_parent = getattr(engine_for(backup.source), "verify_parent", None) if backup.source != "all" else None
        if verify_parent is not None:
            report.checks += verify_parent(backup.manifest, [repo.get(c).manifest for c in backup.manifest.children])
        return report
    scratch = Path(tempfile.mkdtemp(prefix="bdr-verify-"))
    try:
        try:
            extract_set(repo, backup, scratch / "files", cipher, check_manifest=False)
        except (StorageError, MissingKey, WrongKey):
            raise  # the scratch disk or the key at hand, not the backup: exit 9 or 8, the set is not judged
        except BdrError as exc:
            report.checks.append(Check("files", False, exc.message))
            return report
        report.checks.append(Check("files", True, f"{len(backup.manifest.files)} file(s) match sha256"))
        report.checks += engine_for(backup.source).verify(backup.manifest, scratch / "files", restore_test)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def verify_damaged(repo: Repository, damaged: DamagedSet, restore_test: bool, key_file: str | None,
                   config: Config, cipher: ObjectCipher | None = None) -> VerifyReport:
    """A damaged set: one failed check when its manifest does not read, else every check of a good set."""
    if damaged.manifest is None:
        return VerifyReport(damaged.id, damaged.source, [Check("manifest", False, damaged.reason)], restore_test)
    backup = BackupSet(damaged.manifest, repo.url, repo.storage.location)
    return verify_set(repo, backup, restore_test, key_file, config, cipher=cipher, damage=damaged.reason)


def _verify_found(repo: Repository, ref: str, restore_test: bool, key_file: str | None, config: Config,
                  cipher: ObjectCipher | None) -> VerifyReport:
    found = repo.find(ref)
    if isinstance(found, DamagedSet):
        return verify_damaged(repo, found, restore_test, key_file, config, cipher)
    return verify_set(repo, found, restore_test, key_file, config, cipher=cipher)


def verify(
    config: Config,
    ref: str,
    *,
    source: str | None = None,
    instance: str | None = None,
    restore_test: bool = False,
    destination: str | Path | None = None,
    remote: str | None = None,
    key_file: str | None = None,
) -> VerifyReport:
    """Verify one set and record the result next to it (``bdr list`` shows it); a damaged set is not written to."""
    resolved = resolve_input(config, ref, source, destination, remote, allow_damaged=True, instance=instance)
    skipped = tuple(f"skipped {d.describe()}" for d in resolved.skipped)
    if resolved.damaged is not None:
        report = verify_damaged(resolved.repository, resolved.damaged, restore_test, key_file, config)
        report.skipped = skipped
        return report
    if resolved.backup is None:
        raise UsageError(detail=f"{ref} is not a backup set; verify works on sets (ids or set directories)")
    report = verify_set(resolved.repository, resolved.backup, restore_test, key_file, config)
    report.skipped = skipped
    resolved.repository.record_verification(
        resolved.backup,
        Verification(at=to_iso(utcnow()), ok=report.ok, restore_test=restore_test,
                     detail="; ".join(f"{c.name}: {c.detail}" for c in report.checks if not c.ok)),
    )
    try:
        from bdr.monitoring.metrics import record_verify
    except ImportError:
        return report
    try:
        record_verify(config, resolved.backup, report.ok)
    except Exception:  # metrics must never fail a verify
        logger.exception("could not write verify metrics")
    return report
