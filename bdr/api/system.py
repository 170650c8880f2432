"""Whole-system backup sets: Redis, Qdrant and configuration together, and back from nothing.

``bdr backup all`` takes the three member backups at the same time (one thread each, under
one repository lock) so that they describe nearly the same moment, and writes a parent set
(``all-...``) whose manifest names the members and records the *skew*: the spread of their
snapshot times. ``bdr restore all`` is the complete-data-loss runbook: configuration first
(the services need it), then Redis and Qdrant, then a verification of all three.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bdr.api.inputs import open_repository, resolve_input
from bdr.api.keys import cipher_for_backup, cipher_for_reading
from bdr.api.records import BackupOutcome, refuse_if_interrupted
from bdr.api.records import instance_name as _instance_name
from bdr.api.records import record_failure as _record_failure
from bdr.api.records import record_success as _record_success
from bdr.config import Config
from bdr.engines import engine_for
from bdr.engines.base import (
    BackupRequest,
    Check,
    RestoreRequest,
    RestoreResult,
    Step,
    StepLog,
    write_backup,
)
from bdr.errors import UsageError
from bdr.repository.manifest import Manifest
from bdr.sources import members_of as catalogue_members
from bdr.sources import optional_names, required_names
from bdr.util.durations import format_duration

MEMBERS = required_names()
"""Restore order (:mod:`bdr.sources`): the configuration first, then the datastores."""
OPTIONAL_MEMBERS = optional_names()
"""Sources a whole-system set holds only when bdr.yaml configures them, restored after the datastores."""


def members_of(config: Config) -> tuple[str, ...]:
    """The sources of a whole-system backup of ``config``, in restore order."""
    return catalogue_members(config)


def backup_all(
    config: Config,
    *,
    destination: str | Path | None = None,
    remote: str | None = None,
    compress: bool = False,
    keep: int | None = None,
    encrypt: bool = False,
    key_file: str | None = None,
    allow_plaintext: bool = False,
    on_step: Callable[[Step], None] | None = None,
) -> BackupOutcome:
    sources = members_of(config)
    for source in sources:
        refuse_if_interrupted(config, source, _instance_name(config, source, None))
    repo = open_repository(config, destination, remote)
    cipher = cipher_for_backup(config, encrypt, remote, key_file, allow_plaintext)
    log = StepLog(on_step=on_step)
    begun = time.perf_counter()

    def member(source: str) -> Manifest:
        request = BackupRequest(config=config, repository=repo, compress=compress, cipher=cipher)
        with log.step(f"backup {source}") as step:
            manifest = write_backup(engine_for(source), request, _instance_name(config, source, None), "default",
                                    lock=False)
            step.detail = manifest.id
            return manifest

    try:
        with repo.lock("backup all"):
            with ThreadPoolExecutor(max_workers=len(sources)) as pool:
                futures = {source: pool.submit(member, source) for source in sources}
                members: dict[str, Manifest] = {}
                failures: list[tuple[str, BaseException]] = []
                for source, future in futures.items():
                    try:
                        members[source] = future.result()
                    except BaseException as exc:
                        failures.append((source, exc))
                if failures:
                    for source, failure in failures:  # each member's own BackupFailed, then the whole set's
                        _record_failure(config, source, _instance_name(config, source, None), failure)
                    raise failures[0][1]
            starts = [m.started for m in members.values()]
            ends = [m.finished for m in members.values()]
            writer = repo.new_set("all", "system", "members", cipher=cipher)
            with writer:
                writer.children = [members[s].id for s in sources]
                writer.facts.update(
                    members={s: {"id": m.id, "instance": m.instance, "started_at": m.started_at,
                                 "finished_at": m.finished_at, "stored_bytes": m.stored_size}
                             for s, m in members.items()},
                    skew_seconds=round((max(starts) - min(starts)).total_seconds(), 3),
                    span_seconds=round((max(ends) - min(starts)).total_seconds(), 3),
                )
                parent = writer.commit()
    except BaseException as exc:
        _record_failure(config, "all", "system", exc)
        raise
    seconds = time.perf_counter() - begun
    outcome = BackupOutcome(parent, repo.url, repo.storage.location, seconds, log.steps)
    if keep is not None:
        from bdr.repository.retention import keep_last

        outcome.pruned = list(keep_last(repo, "all", "system", keep))
    for source in sources:
        taken = members[source]
        _record_success(config, taken, (taken.finished - taken.started).total_seconds(), repo.storage.location,
                        repo.url, rewrite=False)
    _record_success(config, parent, seconds, repo.storage.location, repo.url)
    return outcome


def restore_all(
    config: Config,
    ref: str,
    *,
    destination: str | Path | None = None,
    remote: str | None = None,
    key_file: str | None = None,
    dry_run: bool = False,
    on_step: Callable[[Step], None] | None = None,
) -> RestoreResult:
    """Restore a whole-system set: config, then Redis, then Qdrant; verify all three."""
    resolved = resolve_input(config, ref, "all", destination, remote)
    parent = resolved.backup
    if parent is None:
        raise UsageError(detail="bdr restore all needs a whole-system set (all-...), not a directory")
    repo = resolved.repository
    cipher = cipher_for_reading(config, key_file)
    log = StepLog(on_step=on_step)
    result = RestoreResult(source="all", ref=parent.id, target="system", steps=log.steps, dry_run=dry_run)
    children = {repo.get(child).source: repo.get(child) for child in parent.manifest.children}
    with repo.reading(parent.id):
        for source in (*MEMBERS, *OPTIONAL_MEMBERS):
            child = children.get(source)
            if child is None:
                if source in MEMBERS:
                    log.skipped(f"restore {source}", "not in this system set")
                continue
            request = RestoreRequest(
                config=config, repository=repo, backup=child, cipher=cipher, dry_run=dry_run,
                safety_repository=open_repository(config, destination) if remote else None,
                log=StepLog(on_step=on_step),
            )
            with log.step(f"restore {source}") as step, repo.reading(child.id):
                member = engine_for(source).restore(request)
                step.detail = f"{child.id}: " + ", ".join(f"{s.name} {format_duration(s.seconds)}"
                                                          for s in member.steps)
            result.checks += [Check(f"{source}: {c.name}", c.ok, c.detail) for c in member.checks]
            result.counts.update({f"{source}.{k}": v for k, v in member.counts.items()})
            result.facts[source] = {"ref": child.id, "safety_id": member.safety_id,
                                    "steps": [s.to_dict() for s in member.steps]}
    if dry_run:
        result.facts["would"] = [c.detail for c in result.checks if c.name.endswith(": dry run")]
    return result
