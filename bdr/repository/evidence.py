"""Drill reports kept as evidence in the repository, beside the backups they prove, with their own retention.

Layout, over the repository's :class:`~bdr.storage.Storage` (a directory or an S3 prefix)::

    evidence/<run id>/drill-<ts>.json    the run (the record the report is rendered from)
    evidence/<run id>/drill-<ts>.html    the report (re-stored when it is signed off)
    evidence/<run id>/drill-<ts>.xml     JUnit
    evidence/<run id>/records.jsonl      the run's lines of history.jsonl (its record, then each review)
    evidence/<run id>/index.json         written last: sha256 and size of each file, when stored

``evidence`` is no source directory, so the repository's listings, sweeps and pruning of
backup sets never look at it; reports are pruned here by their own rule: a run older than
``drill.evidence_keep`` (1 year by default, by the time in its id) is deleted after each
store. A copy without ``index.json`` is incomplete (a store was interrupted) and is
replaced by the next store of that run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bdr.config import Config
from bdr.repository import Repository
from bdr.repository.manifest import to_iso

if TYPE_CHECKING:
    from bdr.report import ReportPaths

logger = logging.getLogger(__name__)

EVIDENCE = "evidence"
INDEX = "index.json"
RECORDS = "records.jsonl"
RUN_TIME = re.compile(r"(\d{8}T\d{6}Z)")


@dataclass(frozen=True, slots=True)
class StoredRun:
    """One run's evidence as listed: its id, when it ran (from its id), and whether it is complete."""

    run_id: str
    time: datetime | None
    complete: bool


def run_time(run_id: str) -> datetime | None:
    match = RUN_TIME.search(run_id)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def store(repo: Repository, run_id: str, files: Mapping[str, bytes], now: datetime | None = None) -> str:
    """Put ``files`` (name -> bytes) under ``evidence/<run_id>/``, the index last; where they went."""
    prefix = f"{EVIDENCE}/{run_id}"
    if repo.storage.exists(f"{prefix}/{INDEX}"):
        repo.storage.delete(f"{prefix}/{INDEX}")  # incomplete until the new index is written
    listed: dict[str, dict[str, object]] = {}
    for name, data in files.items():
        repo.storage.put_bytes(f"{prefix}/{name}", data)
        listed[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    index = {"run_id": run_id, "stored_at": to_iso(now or datetime.now(UTC)), "files": listed}
    repo.storage.put_bytes(f"{prefix}/{INDEX}", (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())
    logger.info("stored the evidence of run %s in %s", run_id, repo.url)
    return f"{repo.url.rstrip('/')}/{prefix}/"


def runs(repo: Repository) -> list[StoredRun]:
    """The runs kept as evidence, oldest first."""
    found = []
    for run_id in repo.storage.children(EVIDENCE):
        complete = repo.storage.exists(f"{EVIDENCE}/{run_id}/{INDEX}")
        found.append(StoredRun(run_id, run_time(run_id), complete))
    return sorted(found, key=lambda r: (r.time or datetime.min.replace(tzinfo=UTC), r.run_id))


def prune(repo: Repository, keep_seconds: float, now: datetime | None = None) -> list[str]:
    """Delete the evidence of runs older than ``keep_seconds``; the run ids deleted."""
    moment = now or datetime.now(UTC)
    deleted = []
    for run in runs(repo):
        if run.time is not None and (moment - run.time).total_seconds() > keep_seconds:
            repo.storage.delete_prefix(f"{EVIDENCE}/{run.run_id}")
            deleted.append(run.run_id)
    if deleted:
        logger.info("evidence older than %.0f days deleted from %s: %s", keep_seconds / 86400, repo.url,
                    ", ".join(deleted))
    return deleted


def run_records(history: Path, run_id: str) -> bytes:
    """The lines of ``history`` that belong to ``run_id`` (its record and reviews), as stored."""
    try:
        raw = history.read_bytes()
    except OSError:
        return b""
    keep = []
    for line in raw.split(b"\n"):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("run_id") == run_id:
            keep.append(line)
    return b"".join(line + b"\n" for line in keep)


def repositories(config: Config, remote: str | None = None) -> list[Repository]:
    """Where evidence goes: the local repository, and the off-site one when ``remote`` is given."""
    repos = [Repository.open(config.repository_path())]
    if remote:
        repos.append(Repository.open(remote, settings=config.remote))
    return repos


def store_run(config: Config, paths: ReportPaths, remote: str | None = None, run_id: str | None = None,
              now: datetime | None = None) -> list[str]:
    """Store a run's report files and records in the repository (and off-site), then prune old evidence."""
    run = run_id or json.loads(paths.json.read_bytes())["run_id"]
    files: dict[str, bytes] = {p.name: p.read_bytes() for p in (paths.json, paths.html, paths.junit) if p.is_file()}
    if paths.history is not None:
        files[RECORDS] = run_records(paths.history, run)
    stored = []
    for repo in repositories(config, remote):
        stored.append(store(repo, run, files, now))
        prune(repo, config.drill.evidence_keep, now)
    return stored


def restore_review(config: Config, json_path: Path, history: Path, run_id: str,
                   remotes: Sequence[str] = ()) -> list[str]:
    """After a sign-off: re-store the run's HTML and records where its evidence already is."""
    updated = []
    for repo in repositories(config) + [Repository.open(r, settings=config.remote) for r in remotes]:
        if not repo.storage.exists(f"{EVIDENCE}/{run_id}/{INDEX}"):
            continue
        files = {p.name: p.read_bytes() for p in (json_path, json_path.with_suffix(".html"),
                                                  json_path.with_suffix(".xml")) if p.is_file()}
        files[RECORDS] = run_records(history, run_id)
        updated.append(store(repo, run_id, files))
    return updated
