"""``bdr restore``: a set (or a legacy backup) back into a live instance, all or a selection.

Every restore runs through the runbook (:mod:`bdr.engines.runbook`); :func:`resume` finishes
or rolls back one that was interrupted (bdr killed, the host rebooted), from its journal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bdr.api.inputs import open_repository, resolve_input
from bdr.api.keys import cipher_for_reading
from bdr.api.records import refuse_if_interrupted
from bdr.config import Config
from bdr.engines import engine_for
from bdr.engines.base import RestoreRequest, RestoreResult, Step, StepLog
from bdr.engines.runbook import journal_of, pending_entry, resume_restore
from bdr.engines.selection import Conflict, Selection
from bdr.errors import UsageError
from bdr.repository import BackupSet, ObjectCipher, Repository
from bdr.safety.journal import JournalEntry


def selection_for(source: str, selection: Selection | None = None, **options: Any) -> Selection:
    """The typed selection of a ``source`` restore: ``selection`` as given, else built from ``options``, the
    fields of the source's kind by name (``keys``, ``db``, ``node``, ``collection``, ``rename_as``, ``filter``,
    ``paths``, ``root``, ``dashboard``: :mod:`bdr.engines.selection`; None = not given). An option another
    source owns (``keys`` on a Qdrant restore) or a meaningless combination is a usage error."""
    kind = Selection if source == "all" else engine_for(source).selection_type
    if selection is not None:
        if any(value is not None and value != () for value in options.values()):
            raise UsageError(detail="give the selection or its options, not both")
        return kind.expect(selection, source)
    return kind.of(source, **options)


def restore(
    config: Config,
    source: str,
    ref: str | None,
    *,
    target: str | None = None,
    destination: str | Path | None = None,
    remote: str | None = None,
    selection: Selection | None = None,
    conflict: Conflict | str = Conflict.FAIL,
    dry_run: bool = False,
    key_file: str | None = None,
    safety_backup: bool = True,
    on_step: Callable[[Step], None] | None = None,
    to_time: str | datetime | None = None,
    **options: Any,
) -> RestoreResult:
    """Restore ``ref`` of ``source`` into ``target`` (the default instance when None); with ``to_time``, the
    archive's state at that moment (``ref``: its base, None for the newest that reaches it).

    What to restore: everything, or ``selection`` (the source's kind, :mod:`bdr.engines.selection`), or
    its fields as keyword ``options`` (``keys="user:*"``, ``collection="docs", rename_as="docs_copy"`` ...:
    :func:`selection_for`); ``conflict`` says what a selective restore does with items the target has too."""
    chosen = selection_for(source, selection, **options)
    on_conflict = Conflict.of(conflict)
    if to_time is not None and source != "redis":
        raise UsageError(detail=f"--to-time is for redis (the archived source), not {source}")
    if ref is None and to_time is None:
        raise UsageError(detail="which backup? give an id, 'latest' or a path (or --to-time TIME)")
    if source == "all":
        from bdr.api.system import restore_all

        assert ref is not None
        return restore_all(config, ref, destination=destination, remote=remote, key_file=key_file,
                           dry_run=dry_run, on_step=on_step)

    def request(repository: Repository, cipher: ObjectCipher | None, found: BackupSet | None = None,
                legacy_path: Path | None = None) -> RestoreRequest:
        return RestoreRequest(
            config=config, repository=repository, backup=found, legacy_path=legacy_path, target=target,
            cipher=cipher, selection=chosen, conflict=on_conflict, dry_run=dry_run, safety_backup=safety_backup,
            safety_repository=open_repository(config, destination) if remote else None,
            log=StepLog(on_step=on_step),
        )

    if to_time is not None:
        from bdr.engines.redis.archive.restore import restore_to_time

        cipher = cipher_for_reading(config, key_file)
        result = restore_to_time(request(open_repository(config, destination, remote, cipher), cipher), ref, to_time)
    else:
        assert ref is not None
        engine = engine_for(source)
        resolved = resolve_input(config, ref, source, destination, remote, target=target)
        cipher = cipher_for_reading(config, key_file)
        reading = (
            resolved.repository.reading(resolved.backup.id) if resolved.backup else contextlib.nullcontext()
        )
        with reading:
            result = engine.restore(request(resolved.repository, cipher, resolved.backup, resolved.legacy_path))
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


__all__ = ["interrupted_restores", "refuse_if_interrupted", "restore", "resume", "selection_for"]
