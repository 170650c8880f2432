"""``bdr backup``: one source into a repository, then optional pruning and metrics.

With ``also_remote`` (``--also-remote [URL]``) or ``remote`` + ``also_local`` (``--remote URL
--also-local``) one snapshot goes to both repositories: it is taken into the local one, then
copied off-site by ``bdr copy``'s machinery (:mod:`bdr.api.copies`): streamed, re-encrypted
when it is plain, checked there. Either flag gives the same result, the set with one id in both.
Local first because reading it back for the copy is cheap there and it is the set a restore
uses first; copying rather than writing both at once (a tee) because the copy path exists
anyway, checks what it wrote, and leaves a failure in one place only: a copy that fails keeps
the local set and names the ``bdr copy`` that sends it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bdr.api.inputs import open_repository
from bdr.api.keys import cipher_for_backup, cipher_for_reading
from bdr.api.records import BackupOutcome as BackupOutcome  # re-exported: bdr.api's public result type
from bdr.api.records import instance_name as _instance_name
from bdr.api.records import record_failure as _record_failure
from bdr.api.records import record_success as _record_success
from bdr.api.records import refuse_if_interrupted
from bdr.config import Config
from bdr.engines import engine_for
from bdr.engines.base import BackupRequest, Step, StepLog, write_backup
from bdr.errors import BdrError, UsageError
from bdr.repository import ObjectCipher

logger = logging.getLogger(__name__)


def backup(
    config: Config,
    source: str,
    *,
    instance: str | None = None,
    destination: str | Path | None = None,
    remote: str | None = None,
    compress: bool = False,
    keep: int | None = None,
    method: str | None = None,
    encrypt: bool = False,
    key_file: str | None = None,
    allow_plaintext: bool = False,
    tags: tuple[str, ...] = (),
    options: Mapping[str, Any] | None = None,
    on_step: Callable[[Step], None] | None = None,
    also_local: bool = False,
    also_remote: str | None = None,
) -> BackupOutcome:
    """Back up ``source`` (redis, qdrant, config, all); prune to ``keep`` newest sets when given.

    ``also_remote`` (a url; ``""``: ``remote.url``) or ``remote`` with ``also_local``: the same
    snapshot in the local repository and off-site (see the module docstring).
    """
    if also_local or also_remote is not None:
        offsite = _second_place(config, remote, also_local, also_remote)
        copy_cipher = cipher_for_backup(config, encrypt, offsite, key_file, allow_plaintext)  # no key: refused now
        outcome = backup(config, source, instance=instance, destination=destination, compress=compress, keep=keep,
                         method=method, encrypt=encrypt, key_file=key_file, allow_plaintext=allow_plaintext,
                         tags=tags, options=options, on_step=on_step)
        return _copy_off_site(config, outcome, destination, offsite, copy_cipher, key_file, keep, on_step)
    if source == "all":
        from bdr.api.system import backup_all

        return backup_all(config, destination=destination, remote=remote, compress=compress, keep=keep,
                          encrypt=encrypt, key_file=key_file, allow_plaintext=allow_plaintext, on_step=on_step)
    engine = engine_for(source)
    repo = open_repository(config, destination, remote)
    cipher = cipher_for_backup(config, encrypt, remote, key_file, allow_plaintext)
    log = StepLog(on_step=on_step)
    request = BackupRequest(config=config, repository=repo, instance=instance, method=method, compress=compress,
                            cipher=cipher, tags=tags, options=dict(options or {}), log=log)
    instance_name = _instance_name(config, source, instance)
    refuse_if_interrupted(config, source, instance_name)
    begun = time.perf_counter()
    try:
        with log.step(f"backup {source}") as step:
            manifest = write_backup(engine, request, instance_name, method or "default")
            step.detail = manifest.id
    except Exception as exc:
        _record_failure(config, source, instance_name, exc)
        raise
    seconds = time.perf_counter() - begun
    outcome = BackupOutcome(manifest, repo.url, repo.storage.location, seconds, log.steps)
    if keep is not None:
        from bdr.repository.retention import keep_last

        with log.step("prune") as step:
            outcome.pruned = [d for d in keep_last(repo, source, instance_name, keep)]
            step.detail = f"{len(outcome.pruned)} older set(s) deleted"
    _record_success(config, manifest, seconds, repo.storage.location, repo.url)
    return outcome


def _second_place(config: Config, remote: str | None, also_local: bool, also_remote: str | None) -> str:
    """The off-site url of a backup written to two places; :class:`UsageError` for flags that do not go together."""
    from bdr.api.copies import destination_url

    if also_local and also_remote is not None:
        raise UsageError(detail="--also-local and --also-remote ask for the same thing: give --remote URL "
                         "--also-local, or --also-remote [URL]")
    if also_local:
        if not remote:
            raise UsageError(detail="--also-local goes with --remote URL (the off-site repository); for a local "
                             "backup with a copy off-site give --also-remote [URL]")
        return remote
    if remote:
        raise UsageError(detail="--also-remote is for a local backup: give --remote URL --also-local, or drop --remote")
    return destination_url(config, also_remote, None)[0]


def _copy_off_site(config: Config, outcome: BackupOutcome, destination: str | Path | None, offsite: str,
                   cipher: ObjectCipher | None, key_file: str | None, keep: int | None,
                   on_step: Callable[[Step], None] | None) -> BackupOutcome:
    """Copy the set just taken locally to ``offsite`` (checked there); prune there too with ``keep``."""
    from bdr.api.copies import copy_taken

    local = open_repository(config, destination, cipher=cipher_for_reading(config, key_file))
    taken = local.get(outcome.manifest.id, outcome.manifest.source)
    try:
        outcome.copies.append(copy_taken(config, taken, local, offsite, cipher, on_step))
    except BdrError as exc:
        raise _kept_locally(exc, taken.id, local.url if destination else None, offsite) from exc
    if keep is not None:
        from bdr.repository.retention import keep_last

        remote_repo = open_repository(config, remote=offsite)
        outcome.pruned += keep_last(remote_repo, taken.source, taken.manifest.instance, keep)
    return outcome


def _kept_locally(error: BdrError, set_id: str, local: str | None, offsite: str) -> BdrError:
    """The copy's own error (and exit code), saying the backup itself is safe and how to send it again.

    ``local``: the repository of ``--destination`` (None: the configured one)."""
    where = f" --from {local}" if local else ""
    hint = (f"; backup {set_id} is kept in the local repository{f' {local}' if local else ''}: send it with "
            f"`bdr copy {set_id}{where} --remote {offsite}`")
    try:
        return type(error)(error.message + hint, **error.fields)
    except TypeError:  # a class with its own constructor: its message as it is
        return error
