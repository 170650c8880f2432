"""Restoring a whole Qdrant backup set: the runbook's steps, timed, with automatic rollback.

1. ``fetch``: the set's files, each checked against the manifest's sha256, into a scratch
   directory - before anything live is touched;
2. ``plan``: the method works out what will be replaced and refuses what cannot work (a
   snapshot from an incompatible Qdrant version, a snapshot into the embedded engine ...),
   still before any change;
3. ``safety backup`` of what the restore will replace: only the collections that exist in
   the target (scoped with the ``collections`` option), or the whole instance for ``volume``;
   skipped when there is nothing to protect;
4. ``replace``: collections recreated and imported (logical), snapshots uploaded with
   ``priority=snapshot`` (snapshot), or the storage directory swapped (volume);
5. ``verify``: config, point count and content (hash over all points, or a sample for
   snapshots) of every restored collection equal to the manifest, aliases in place.

A failure in 4-5 puts the safety backup back (with the method it was taken with), drops
collections the restore created, and raises :class:`~bdr.errors.RestoreRolledBack`.
Qdrant needs no ``stop``/``start``: the logical and snapshot methods work on a running
server, and the embedded engine is opened by bdr only while it works on it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from bdr.engines.base import Check, Engine, RestoreRequest, RestoreResult, safety_backup
from bdr.engines.qdrant.client import Target, connect, list_collections, qdrant_errors, target_of
from bdr.engines.qdrant.method import Method, RestorePlan, method_of
from bdr.errors import RestoreError, RestoreRolledBack, UsageError
from bdr.manifest import Manifest
from bdr.repository import extract_set

logger = logging.getLogger(__name__)


def scratch_near(target: Target) -> Path:
    """A scratch directory, beside the embedded directory when possible (same file system)."""
    if target.embedded:
        try:
            target.path.parent.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=".bdr-qdrant-", dir=target.path.parent))
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix="bdr-qdrant-"))


def fetch(request: RestoreRequest, files: Path, work: Path) -> Manifest:
    """The set's files in ``files``, checked against its manifest; a legacy snapshot converted."""
    if request.backup is not None:
        extract_set(request.repository, request.backup, files, request.cipher)
        return request.backup.manifest
    if request.legacy_path is None:
        raise UsageError(detail="nothing to restore: give a backup set")
    from bdr.engines.qdrant.legacy import convert

    return convert(request.legacy_path, files, request.selection.get("collection"), work)


def restore_full(engine: Engine, request: RestoreRequest) -> RestoreResult:
    target = target_of(request.config, request.target)
    log = request.log
    ref = request.backup.id if request.backup else str(request.legacy_path)
    result = RestoreResult(source="qdrant", ref=ref, target=target.name, steps=log.steps, dry_run=request.dry_run)
    scratch = scratch_near(target)
    files = scratch / "incoming"
    try:
        with log.step("fetch") as step:
            manifest = fetch(request, files, scratch / "convert")
            method = method_of(manifest)
            if request.backup:
                step.detail = f"{len(manifest.files)} file(s) match the manifest"
            else:
                converted = ", ".join(f"{n} ({c['points']} points)" for n, c in manifest.facts["collections"].items())
                step.detail = f"legacy snapshot converted with qdrant-edge: {converted}"
        with log.step("plan") as step:
            plan = method.plan(request, target, files, manifest)
            step.detail = plan.describe()
        points = sum(int(c.get("points", 0) or 0) for c in (manifest.facts.get("collections") or {}).values())
        result.counts = {"collections": len(plan.collections), "points": points}
        result.facts = {"method": method.name, "backup_version": manifest.facts.get("qdrant_version"),
                        "collections": plan.collections}
        if request.dry_run:
            log.skipped("safety backup", "dry run")
            result.checks.append(Check("dry run", True, f"would {plan.describe()} in {target.label()}"))
            return result
        result.safety_id = take_safety_backup(engine, request, target, plan)
        try:
            with log.step("replace") as step:
                notes = method.replace(request, target, files, manifest, plan)
                step.detail = "; ".join([plan.describe(), *notes])
            with log.step("verify") as step:
                checks = method.check_live(target, files, manifest, plan)
                result.checks.extend(checks)
                failed = [c for c in checks if not c.ok]
                step.detail = f"{len(checks) - len(failed)}/{len(checks)} checks passed"
                if failed:
                    raise RestoreError(detail="; ".join(f"{c.name}: {c.detail}" for c in failed))
        except (Exception, KeyboardInterrupt) as exc:  # Ctrl-C mid-replace rolls back too
            failed_step = next((s.name for s in reversed(log.steps) if s.status == "failed"), "replace")
            _roll_back(request, target, plan, result.safety_id, scratch, exc, ref)
            raise RestoreRolledBack(ref=ref, step=failed_step, detail=getattr(exc, "message", str(exc)),
                                    safety=result.safety_id or "(none needed: the collections were new)") from exc
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def take_safety_backup(engine: Engine, request: RestoreRequest, target: Target, plan: RestorePlan) -> str | None:
    """The safety backup of what ``plan`` replaces, or None when there is nothing to protect."""
    log = request.log
    if not request.safety_backup:
        log.skipped("safety backup", "disabled")
        return None
    if plan.whole_instance:
        if not _has_data(target):
            log.skipped("safety backup", f"nothing to protect: {target.label()} holds no data")
            return None
        options: dict[str, object] = {}
    else:
        if not plan.existing:
            log.skipped("safety backup", "nothing to protect: none of the collections exist in the target")
            return None
        options = {"collections": plan.existing}
    with log.step("safety backup") as step:
        safety = safety_backup(engine, request, target.name, options)
        step.detail = safety.id
    return safety.id


def _has_data(target: Target) -> bool:
    if target.embedded:
        return target.path.is_dir() and any(target.path.iterdir())
    storage = target.instance.storage_dir
    return bool(storage) and Path(str(storage)).is_dir() and any(Path(str(storage)).iterdir())


def _roll_back(request: RestoreRequest, target: Target, plan: RestorePlan, safety_id: str | None, scratch: Path,
               cause: BaseException, ref: str) -> None:
    """Put the safety backup back and drop what the restore created; RestoreError when that fails."""
    if safety_id is None and plan.existing and not plan.whole_instance:
        raise RestoreError(detail=f"restore of {ref} failed ({getattr(cause, 'message', cause)}) and there is no "
                           "safety backup to roll back to (it was disabled)") from cause
    logger.warning("restore into qdrant %s failed; rolling back (safety backup %s)", target.name, safety_id)
    try:
        with request.log.step("rollback") as step:
            step.detail = roll_back(request, target, plan, safety_id, scratch / "rollback")
    except Exception as again:
        raise RestoreError(
            detail=f"restore of {ref} failed ({getattr(cause, 'message', cause)}) and so did the rollback "
            f"({getattr(again, 'message', again)}); the data from before the restore is kept in safety backup "
            f"{safety_id}"
        ) from cause


def roll_back(request: RestoreRequest, target: Target, plan: RestorePlan, safety_id: str | None,
              files: Path) -> str:
    """Restore the safety set with its own method, then drop collections the failed restore created."""
    done: list[str] = []
    restored: list[str] = []
    if safety_id is not None:
        repo = request.safety_repo
        safety = repo.get(safety_id)
        extract_set(repo, safety, files, request.cipher)
        method: Method = method_of(safety.manifest)
        safety_plan = method.plan(request, target, files, safety.manifest)
        method.replace(request, target, files, safety.manifest, safety_plan)
        restored = safety_plan.collections
        done.append(f"restored {safety_id}")
    if not plan.whole_instance:
        created = [c for c in plan.collections if c not in plan.existing and c not in restored]
        if created:
            drop_collections(target, created)
            done.append(f"dropped {', '.join(created)}")
    return "; ".join(done) or "nothing to undo"


def drop_collections(target: Target, names: list[str]) -> None:
    if target.embedded and not target.path.is_dir():
        return
    with connect(target, create=True) as client:
        live = set(list_collections(client, target))
        for name in names:
            if name in live:
                with qdrant_errors(target, f"delete collection {name!r}"):
                    client.delete_collection(name)
