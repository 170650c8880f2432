"""``bdr restore``: a set (or a legacy backup) back into a live instance, all or a selection."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bdr.api.inputs import open_repository, resolve_input
from bdr.api.keys import cipher_for_reading
from bdr.config import Config
from bdr.engines import engine_for
from bdr.engines.base import RestoreRequest, RestoreResult, Step, StepLog

CONFLICT_MODES = ("skip", "replace", "fail")


def restore(
    config: Config,
    source: str,
    ref: str,
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
) -> RestoreResult:
    """Restore ``ref`` of ``source`` into ``target`` (the default instance when None)."""
    if source == "all":
        from bdr.api.system import restore_all

        return restore_all(config, ref, destination=destination, remote=remote, key_file=key_file,
                           dry_run=dry_run, on_step=on_step)
    if conflict not in CONFLICT_MODES:
        from bdr.errors import UsageError

        raise UsageError(detail=f"--conflict must be one of {', '.join(CONFLICT_MODES)}")
    engine = engine_for(source)
    resolved = resolve_input(config, ref, source, destination, remote)
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
        return engine.restore(request)
