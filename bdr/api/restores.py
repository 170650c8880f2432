"""``bdr restore``: a set (or a legacy backup) back into a live instance, all or a selection.

Every restore runs through the runbook (:mod:`bdr.engines.runbook`); :func:`resume` finishes
or rolls back one that was interrupted (bdr killed, the host rebooted), from its journal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from bdr.api.inputs import open_repository, resolve_input
from bdr.api.keys import cipher_for_reading
from bdr.config import Config
from bdr.engines import engine_for
from bdr.engines.base import RestoreRequest, RestoreResult, Step, StepLog
from bdr.engines.runbook import journal_of, pending_entry, resume_restore
from bdr.journal import JournalEntry

CONFLICT_MODES = ("skip", "replace", "fail")


def restore(
    config: Config,
    source: str,
    ref: str | None,
    *,
    target: str | None = None,
    destination: str | Path | None = None,
    remote: str | None = None,
    selection: Mapping[str, Any] | None = None,
    conflict: str = "fail",
    dry_run: bool = False,
    key_file: str | None = None,
    safety_backup: bool = True,
    on_step: Callable[[Step], None] | None = None,
    to_time: str | datetime | None = None,
) -> RestoreResult:
    """Restore ``ref`` of ``source`` into ``target`` (the default instance when None); with ``to_time``, the
    archive's state at that moment (``ref``: its base, None for the newest that reaches it)."""
    if to_time is not None:
        from bdr.engines.redis.archive.restore import restore_to_time

        return restore_to_time(config, source, ref, to_time=to_time, target=target, destination=destination,
                               remote=remote, selection=selection, conflict=conflict, dry_run=dry_run,
                               key_file=key_file, safety_backup=safety_backup, on_step=on_step)
    if ref is None:
        from bdr.errors import UsageError

        raise UsageError(detail="which backup? give an id, 'latest' or a path (or --to-time TIME)")
    if source == "all":
        from bdr.api.system import restore_all

        return restore_all(config, ref, destination=destination, remote=remote, key_file=key_file,
                           dry_run=dry_run, on_step=on_step)
    if conflict not in CONFLICT_MODES:
        from bdr.errors import UsageError

        raise UsageError(detail=f"--conflict must be one of {', '.join(CONFLICT_MODES)}")
    engine = engine_for(source)
    resolved = resolve_input(config, ref, source, destination, remote, target=target)
    cipher = cipher_for_reading(config, key_file)
    request = RestoreRequest(
        config=config,
        repository=resolved.repository,
        backup=resolved.backup,
        legacy_path=resolved.legacy_path,
        target=target,
        cipher=cipher,
        selection=dict(selection or {}),
        conflict=conflict,
        dry_run=dry_run,
        safety_backup=safety_backup,
        safety_repository=open_repository(config, destination) if remote else None,
        log=StepLog(on_step=on_step),
    )
    reading = (
        resolved.repository.reading(resolved.backup.id) if resolved.backup else contextlib.nullcontext()
    )
    with reading:
        result = engine.restore(request)
    if resolved.skipped:
        result.facts["skipped_damaged"] = [d.describe() for d in resolved.skipped]
    if resolved.note:
        result.facts["latest"] = resolved.note
    if dry_run:
        result.facts["would"] = [c.detail for c in result.checks if c.name == "dry run"]
    return result


def resume(
    config: Config,
    source: str,
    *,
    target: str | None = None,
    abort: bool = False,
    force: bool = False,
    key_file: str | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> RestoreResult:
    """Finish (or with ``abort``, roll back) the interrupted restore of ``source`` into ``target``.

    ``target`` may be None when only one restore of ``source`` was interrupted. No backup
    argument and no ``data_dir`` in bdr.yaml are needed: the journal has everything.
    """
    engine = engine_for(source)
    entry = pending_entry(config, source, target)
    from bdr.engines.redis.archive.restore import MODES, POINT_IN_TIME

    if entry.state.get("mode") in MODES:  # a restore to a moment: its own restorer rebuilds it
        engine = POINT_IN_TIME  # type: ignore[assignment]
    cipher = cipher_for_reading(config, key_file)
    return resume_restore(engine, config, entry, abort=abort, log=StepLog(on_step=on_step), cipher=cipher,
                          force=force)


def interrupted_restores(config: Config) -> list[JournalEntry]:
    """Restores whose bdr process is gone before they finished (``bdr status`` fails on them)."""
    return journal_of(config).interrupted()


def refuse_if_interrupted(config: Config, source: str, instance: str) -> None:
    """Raise :class:`~bdr.errors.RestoreInterrupted` when a restore of this instance was interrupted."""
    journal_of(config).check_clear(source, instance)
