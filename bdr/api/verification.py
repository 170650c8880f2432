"""``bdr verify``: checksums of every object and file, the engine's own checks, a restore test."""

from __future__ import annotations

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
from bdr.errors import BdrError
from bdr.manifest import to_iso, utcnow
from bdr.repository import BackupSet, Repository, Verification, extract_set


@dataclass(slots=True)
class VerifyReport:
    """The checks run on one set and whether all passed."""

    backup_id: str
    source: str
    checks: list[Check] = field(default_factory=list)
    restore_test: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.backup_id,
            "source": self.source,
            "ok": self.ok,
            "restore_test": self.restore_test,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


def verify_set(repo: Repository, backup: BackupSet, restore_test: bool, key_file: str | None,
               config: Config) -> VerifyReport:
    report = VerifyReport(backup.id, backup.source, restore_test=restore_test)
    problems = repo.check_objects(backup)
    report.checks.append(Check("stored objects", not problems,
                               "; ".join(problems) or f"{len(backup.manifest.objects)} object(s) match sha256"))
    if problems:
        return report
    if backup.source == "all":
        for child_id in backup.manifest.children:
            child = verify_set(repo, repo.get(child_id), restore_test, key_file, config)
            report.checks += [Check(f"{child_id}: {c.name}", c.ok, c.detail) for c in child.checks]
        return report
    scratch = Path(tempfile.mkdtemp(prefix="bdr-verify-"))
    try:
        try:
            extract_set(repo, backup, scratch / "files", cipher_for_reading(config, key_file))
        except BdrError as exc:
            report.checks.append(Check("files", False, exc.message))
            return report
        report.checks.append(Check("files", True, f"{len(backup.manifest.files)} file(s) match sha256"))
        report.checks += engine_for(backup.source).verify(backup.manifest, scratch / "files", restore_test)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def verify(
    config: Config,
    ref: str,
    *,
    source: str | None = None,
    restore_test: bool = False,
    destination: str | Path | None = None,
    remote: str | None = None,
    key_file: str | None = None,
) -> VerifyReport:
    """Verify one set and record the result next to it (``bdr list`` shows it)."""
    resolved = resolve_input(config, ref, source, destination, remote)
    if resolved.backup is None:
        from bdr.errors import UsageError

        raise UsageError(detail=f"{ref} is not a backup set; verify works on sets (ids or set directories)")
    report = verify_set(resolved.repository, resolved.backup, restore_test, key_file, config)
    resolved.repository.record_verification(
        resolved.backup,
        Verification(at=to_iso(utcnow()), ok=report.ok, restore_test=restore_test,
                     detail="; ".join(f"{c.name}: {c.detail}" for c in report.checks if not c.ok)),
    )
    try:
        from bdr.metrics import record_verify
    except ImportError:
        return report
    try:
        record_verify(config, resolved.backup, report.ok)
    except Exception:  # metrics must never fail a verify
        import logging

        logging.getLogger(__name__).exception("could not write verify metrics")
    return report
