"""Backup health: is the newest backup of each source fresh enough, and does the 3-2-1 rule hold?

``bdr status`` (and the ``backup_321_ok`` metric) look at every repository bdr knows:
the configured local repository, each ``--destination`` (e.g. a second local disk), and
the off-site one (``remote.url`` or ``--remote``). Sets are grouped per (source, instance);
safety sets (taken before restores) are left out, and so are sets whose last ``bdr
verify`` failed: only *good* sets count.

Freshness
    The newest good set of a group, in any repository, must be no older than
    ``max_backup_age`` of its source (default 24 h). Older: *stale*; none: *missing*. Both
    make ``bdr status`` exit 1 (:class:`~bdr.errors.CheckFailed`), like the runbook's old
    "last backup age" check. Only *expected* groups are checked: *every* instance of each
    source the ``schedule:`` backs up (not only the default one; ``backup: false`` restore
    targets such as ``test`` left out, see :mod:`bdr.schedule.jobs`), each ``source/instance``
    key of ``max_backup_age``, or the source (and instance) asked for; groups found only in a
    repository are shown, not checked.

Verification
    An expected group must also have been verified (``bdr verify`` passed on one of its sets)
    within ``max_verify_age`` (default 7 d); a group whose first good set is younger than
    that is given the time. Otherwise it is *unverified* and ``bdr status`` exits 1 too.

Copies
    A copy of the data of a group is a repository holding a good set of it no older than
    ``max_backup_age``: a restore from it loses no more than the policy accepts. The live
    data is a copy too. ``bdr copy`` (and ``bdr backup --also-remote``, the schedule's
    off-site job) puts the *same* set into a second repository: same id, same snapshot time
    (its age is the backup's, not the copy's), same files, so that repository holds a fresh
    good set of the group and counts, off-site on S3. Separate runs (a backup taken straight
    to ``--remote``) count the same way: the rule counts fresh backups, not only identical
    ones; sets with the same id or the same data checksum (sha256 over the manifest's files,
    which a re-encrypted copy keeps) in several repositories are reported as the copies of
    that one backup (:attr:`SetSummary.copies`).

3-2-1 (as restic and Veeam define it)
    At least 3 copies of the data counting the live one (so ≥ 2 fresh backups), on at least
    2 different media, at least 1 off-site. Media are counted among the backup copies only:
    bdr cannot know the medium of the live data, which may well be the disk the local
    repository is on. A medium is a file system (``disk:<device>``: two directories on one
    disk are one medium) or an object store bucket (``s3:<endpoint>/<bucket>``); off-site
    means S3. A repository that cannot be read counts for nothing and is reported.

Continuous archives
    An instance of ``archive.redis`` is also shown with its recoverable windows (the moments a
    ``restore --to-time`` reaches) and its archive lag; a lag over ``max_lag``, an archiver
    that is not running, or no window at all is a problem and makes ``bdr status`` exit 1
    (:mod:`bdr.engines.redis.archive.report`).

Damaged sets
    A set bdr will not use (an unreadable manifest, a digest or MAC mismatch, a set
    directory bdr did not leave; see :mod:`bdr.repository`) counts for nothing, like a
    failed one, and is named among the report's problems ("damaged set ..."); it does not by
    itself make ``bdr status`` exit 1 (the freshness of the good sets does).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from bdr.config import Config
from bdr.errors import BdrError, CheckFailed
from bdr.repository import BackupSet, DamagedSet, Repository
from bdr.repository.manifest import Manifest, from_iso, to_iso, utcnow
from bdr.repository.retention import is_good, is_safety, policy_span
from bdr.sources import ALL, default_instances, instanced_names
from bdr.util.durations import format_duration

logger = logging.getLogger(__name__)

OFFSITE_LOCATIONS = ("s3",)
SYSTEM_INSTANCE = "system"


class Health(StrEnum):
    OK = "ok"
    STALE = "stale"
    MISSING = "missing"
    UNVERIFIED = "unverified"
    """Fresh, but no successful ``bdr verify`` within ``max_verify_age``."""
    UNCHECKED = "unchecked"
    """Found in a repository but not expected by the schedule: shown, not checked."""


# --- repositories ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RepositoryView:
    """One repository as status saw it: where it is, on which medium, and its complete sets."""

    url: str
    location: str
    medium: str
    offsite: bool
    sets: tuple[BackupSet, ...] = ()
    error: str | None = None
    damaged: tuple[DamagedSet, ...] = ()

    @property
    def readable(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"url": self.url, "location": self.location, "medium": self.medium,
                                "offsite": self.offsite, "sets": len(self.sets), "error": self.error}
        if self.damaged:  # only then: the shape monitoring already parses stays as it was
            data["damaged"] = [d.to_dict() for d in self.damaged]
        return data


def medium_of(repo: Repository) -> str:
    """``disk:<device>`` for a directory (its file system), ``s3:<endpoint>/<bucket>`` for a bucket."""
    storage = repo.storage
    root = getattr(storage, "root", None)
    if isinstance(root, Path):
        probe = root
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            return f"disk:{os.stat(probe).st_dev}"
        except OSError:
            return f"disk:{probe}"
    bucket = getattr(storage, "bucket", None)
    if bucket:
        return f"{storage.location}:{getattr(storage, 'endpoint', '')}/{bucket}"
    return f"{storage.location}:{storage.url}"


def inspect(repo: Repository) -> RepositoryView:
    """List ``repo``; a repository that cannot be read becomes a view with its error, not an exception."""
    location = repo.storage.location
    offsite = location in OFFSITE_LOCATIONS
    try:
        medium = medium_of(repo)
        catalog = repo.catalog()
    except BdrError as exc:
        logger.warning("cannot read repository %s: %s", repo.url, exc.message)
        return RepositoryView(repo.url, location, f"{location}:{repo.url}", offsite, (), exc.message)
    for damaged in catalog.damaged:
        logger.warning("damaged backup set %s in %s: %s", damaged.id, repo.url, damaged.reason)
    return RepositoryView(repo.url, location, medium, offsite, catalog.sets, damaged=catalog.damaged)


def repository_locations(
    config: Config, destinations: Sequence[str | Path] = (), remote: str | None = None,
    include_configured: bool = True,
) -> list[str]:
    """Where to look: the configured local repository, each ``--destination`` (or remembered url), the remote
    (flag or config), and the repositories of the off-site jobs of ``schedule:``."""
    locations: list[str] = []
    if include_configured:
        locations.append(str(config.repository_path().resolve()))
    locations += [str(d) if "://" in str(d) else str(Path(d).resolve()) for d in destinations]
    remote_url = remote or (config.remote.url if include_configured else None)
    if remote_url:
        locations.append(remote_url)
    if include_configured:  # the off-site jobs of schedule: may name their own bucket
        locations += [e.remote for e in config.schedule if e.kind == "offsite" and e.remote]
    return list(dict.fromkeys(locations))


def open_view(config: Config, location: str) -> RepositoryView:
    """Open and list one repository; one that cannot be opened (no credentials, bad url) is reported."""
    try:
        if "://" in location:
            repo = Repository.open(location, settings=config.remote)
        else:
            repo = Repository.open(Path(location))
    except BdrError as exc:
        kind = location.split("://", 1)[0] if "://" in location else "local"
        logger.warning("cannot open repository %s: %s", location, exc.message)
        return RepositoryView(location, kind, f"{kind}:{location}", kind in OFFSITE_LOCATIONS, (), exc.message)
    return inspect(repo)


def views_for(
    config: Config, destinations: Sequence[str | Path] = (), remote: str | None = None,
    include_configured: bool = True,
) -> list[RepositoryView]:
    return [open_view(config, loc) for loc in repository_locations(config, destinations, remote, include_configured)]


# --- per group ---------------------------------------------------------------------------------


def fingerprint(manifest: Manifest) -> str | None:
    """The identity of a set's data: sha256 over its files (path, size, sha256); members for a system set."""
    if manifest.files:
        lines = sorted(f"{f.path}\0{f.size}\0{f.sha256}" for f in manifest.files)
    elif manifest.children:
        lines = sorted(manifest.children)
    else:
        return None
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Copy:
    """One repository's holding of a group: the newest good set there."""

    repository: str
    location: str
    medium: str
    offsite: bool
    set_id: str
    finished_at: str
    age_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"repository": self.repository, "location": self.location, "medium": self.medium,
                "offsite": self.offsite, "id": self.set_id, "finished_at": self.finished_at,
                "age_seconds": round(self.age_seconds, 3)}


@dataclass(frozen=True, slots=True)
class SetSummary:
    """A set and where the same backup (same id or same data checksum) is held."""

    backup: BackupSet
    age_seconds: float
    copies: tuple[str, ...]
    """Repository urls holding this backup."""

    def to_dict(self) -> dict[str, Any]:
        m = self.backup.manifest
        verification = self.backup.verification
        return {"id": m.id, "finished_at": m.finished_at, "age_seconds": round(self.age_seconds, 3),
                "stored_bytes": m.stored_size, "verified_at": verification.at if verification else None,
                "copies": list(self.copies)}


@dataclass(frozen=True, slots=True)
class Rule321:
    """The 3-2-1 verdict for one group."""

    copies: int
    media: int
    offsite: int
    ok: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "copies": self.copies, "media": self.media, "offsite": self.offsite,
                "reason": self.reason}


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """Freshness and copies of one (source, instance)."""

    source: str
    instance: str
    expected: bool
    max_age: float
    newest: SetSummary | None
    newest_verified: SetSummary | None
    holdings: tuple[Copy, ...]
    """The newest good set in each repository that holds the group, fresh or not."""
    sets_by_location: Mapping[str, int]
    rule_321: Rule321
    health: Health
    max_verify_age: float = 7 * 86400.0
    last_verified_seconds: float | None = None
    """How long ago a ``bdr verify`` of one of its sets last passed (None: never)."""

    @property
    def fresh(self) -> bool:
        return self.health in (Health.OK, Health.UNCHECKED)

    def problem(self) -> str | None:
        """One line for the operator when the group fails its freshness or verification check."""
        if self.health is Health.MISSING:
            return f"{self.source}/{self.instance}: no good backup in any repository"
        if self.health is Health.STALE and self.newest is not None:
            return (f"{self.source}/{self.instance}: newest backup {self.newest.backup.id} is "
                    f"{format_duration(self.newest.age_seconds)} old, more than {policy_span(self.max_age)}")
        if self.health is Health.UNVERIFIED:
            when = ("never verified" if self.last_verified_seconds is None
                    else f"last verified {format_duration(self.last_verified_seconds)} ago")
            return (f"{self.source}/{self.instance}: {when}, more than max_verify_age "
                    f"{policy_span(self.max_verify_age)}; run `bdr verify latest --source {self.source}"
                    + (f" --instance {self.instance}`" if self.source in instanced_names()
                       else "`"))
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "instance": self.instance,
            "expected": self.expected,
            "health": str(self.health),
            "max_age_seconds": self.max_age,
            "newest": self.newest.to_dict() if self.newest else None,
            "newest_verified": self.newest_verified.to_dict() if self.newest_verified else None,
            "holdings": [c.to_dict() for c in self.holdings],
            "sets_by_location": dict(self.sets_by_location),
            "rule_321": self.rule_321.to_dict(),
            "max_verify_age_seconds": self.max_verify_age,
            "last_verified_seconds": None if self.last_verified_seconds is None
            else round(self.last_verified_seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Every group's status across the repositories, at one instant."""

    at: datetime
    repositories: tuple[RepositoryView, ...]
    sources: tuple[SourceStatus, ...]
    problems: tuple[str, ...] = field(default=())
    interrupted: tuple[str, ...] = field(default=())
    """One line per restore that was interrupted (bdr killed) and waits for ``--resume`` or ``--abort``."""
    settings_left: tuple[str, ...] = field(default=())
    """Settings a killed bdr run left changed on a live server (the next run on it puts them back)."""
    archives: tuple[Any, ...] = field(default=())
    """Continuously archived instances (``archive.redis``): their recoverable windows and lag
    (:class:`bdr.engines.redis.archive.report.ArchiveStatus`)."""

    @property
    def fresh(self) -> bool:
        return all(s.fresh for s in self.sources)

    @property
    def rule_321_ok(self) -> bool:
        return all(s.rule_321.ok for s in self.sources if s.expected)

    def group(self, source: str, instance: str) -> SourceStatus | None:
        return next((s for s in self.sources if (s.source, s.instance) == (source, instance)), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": to_iso(self.at),
            "ok": self.fresh,
            "rule_321_ok": self.rule_321_ok,
            "problems": list(self.problems),
            "interrupted_restores": list(self.interrupted),
            "settings_left_changed": list(self.settings_left),
            **({"archives": [a.to_dict() for a in self.archives]} if self.archives else {}),
            "repositories": [r.to_dict() for r in self.repositories],
            "sources": [s.to_dict() for s in self.sources],
        }


@dataclass(frozen=True, slots=True)
class Expectation:
    """A group that must have a fresh (and recently verified) backup."""

    source: str
    instance: str
    max_age: float
    max_verify_age: float = 7 * 86400.0


def expected_groups(config: Config, source: str | None = None, instance: str | None = None) -> list[Expectation]:
    """What must be fresh: every instance the schedule backs up, and each ``source/instance`` key of
    ``max_backup_age`` (only those of ``source``/``instance`` when given; a source asked for is expected
    even when not scheduled)."""
    from bdr.schedule.jobs import backup_groups, instances_of

    groups = backup_groups(config)
    groups += [_split(key) for key in config.max_backup_age if "/" in key]
    if source:
        groups = [(s, i) for s, i in groups if s == source and (instance is None or i == instance)]
        if not groups:
            names = [instance] if instance else (instances_of(config, source) or [default_instance(config, source)])
            groups = [(source, name) for name in names]
    return [Expectation(s, i, max_age_for(config, s, i), config.max_verify(s)) for s, i in dict.fromkeys(groups)]


def _split(key: str) -> tuple[str, str]:
    source, _, instance = key.partition("/")
    return source, instance


def max_age_for(config: Config, source: str, instance: str) -> float:
    """``max_backup_age`` of ``source/instance``, else of ``source``, else the default."""
    specific = config.max_backup_age.get(f"{source}/{instance}")
    return specific if specific is not None else config.max_age(source)


def default_instance(config: Config, source: str) -> str:
    defaults = {**default_instances(config), ALL: SYSTEM_INSTANCE}
    return defaults.get(source, source)


def _age(backup: BackupSet, now: datetime) -> float:
    return max(0.0, (now - backup.created).total_seconds())


def evaluate(
    views: Sequence[RepositoryView],
    expected: Sequence[Expectation],
    now: datetime,
    max_age: Mapping[str, float] | None = None,
    *,
    only: tuple[str | None, str | None] = (None, None),
    max_verify_age: Mapping[str, float] | None = None,
) -> StatusReport:
    """The status of every expected group and every group found in ``views``. No I/O.

    ``max_age`` maps a source to its limit for the groups found but not expected (default
    24 h); ``only`` restricts the report to a source (and instance).
    """
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    limits = {"default": 86400.0, **(max_age or {})}
    verify_limits = {"default": 7 * 86400.0, **(max_verify_age or {})}
    wanted = {(e.source, e.instance): e for e in expected}
    found: dict[tuple[str, str], list[tuple[RepositoryView, BackupSet]]] = {}
    for view in views:
        for backup in view.sets:
            if not is_safety(backup):
                found.setdefault((backup.source, backup.manifest.instance), []).append((view, backup))
    keys = sorted(set(wanted) | set(found))
    source_only, instance_only = only
    statuses = []
    for key in keys:
        if (source_only and key[0] != source_only) or (instance_only and key[1] != instance_only):
            continue
        expectation = wanted.get(key)
        limit = expectation.max_age if expectation else limits.get(key[0], limits["default"])
        verify_limit = (expectation.max_verify_age if expectation
                        else verify_limits.get(key[0], verify_limits["default"]))
        statuses.append(_group_status(key, found.get(key, []), views, expectation is not None, limit, now,
                                      verify_limit))
    problems = [p for s in statuses if (p := s.problem())]
    problems += [f"repository {v.url} cannot be read: {v.error}" for v in views if v.error]
    problems += [f"damaged set {d.id} in {v.url}: {d.reason}" for v in views for d in v.damaged
                 if (not source_only or d.source == source_only)]
    return StatusReport(now, tuple(views), tuple(statuses), tuple(problems))


def _group_status(
    key: tuple[str, str],
    entries: Sequence[tuple[RepositoryView, BackupSet]],
    views: Sequence[RepositoryView],
    expected: bool,
    limit: float,
    now: datetime,
    verify_limit: float = 7 * 86400.0,
) -> SourceStatus:
    good = sorted(((v, b) for v, b in entries if is_good(b)), key=lambda e: (e[1].created, e[1].id), reverse=True)
    holders = _same_backup_index(good)
    newest = _summary(good[0][1], holders, now) if good else None
    verified = next((b for _, b in good if b.verified), None)
    holdings: dict[str, Copy] = {}
    for view, backup in good:
        if view.url not in holdings:
            holdings[view.url] = Copy(view.url, view.location, view.medium, view.offsite, backup.id,
                                      backup.manifest.finished_at, _age(backup, now))
    by_location: dict[str, int] = {}
    for view, _backup in entries:
        by_location[view.location] = by_location.get(view.location, 0) + 1
    if newest is None:
        health = Health.MISSING if expected else Health.UNCHECKED
    elif not expected:
        health = Health.UNCHECKED
    else:
        health = Health.OK if newest.age_seconds <= limit else Health.STALE
    last_verified = _last_verified(good, now)
    if health is Health.OK and _unverified(good, last_verified, verify_limit, now):
        health = Health.UNVERIFIED
    fresh = [c for c in holdings.values() if c.age_seconds <= limit]
    unreadable = [v.url for v in views if v.error]
    return SourceStatus(
        source=key[0], instance=key[1], expected=expected, max_age=limit, newest=newest,
        newest_verified=_summary(verified, holders, now) if verified else None,
        holdings=tuple(holdings.values()), sets_by_location=by_location,
        rule_321=rule_321(fresh, limit, unreadable), health=health, max_verify_age=verify_limit,
        last_verified_seconds=last_verified,
    )


def _last_verified(good: Sequence[tuple[RepositoryView, BackupSet]], now: datetime) -> float | None:
    """Seconds since the newest passed ``bdr verify`` of any of the group's sets (None: never)."""
    moments = []
    for _view, backup in good:
        if backup.verification is not None and backup.verification.ok:
            try:
                moments.append(from_iso(backup.verification.at))
            except ValueError:
                continue
    return max(0.0, (now - max(moments)).total_seconds()) if moments else None


def _unverified(good: Sequence[tuple[RepositoryView, BackupSet]], last_verified: float | None, limit: float,
                now: datetime) -> bool:
    """No verify within ``limit``; a group whose first good set is younger than that is given the time."""
    if last_verified is not None:
        return last_verified > limit
    oldest = max((_age(b, now) for _, b in good), default=0.0)
    return oldest > limit


def _same_backup_index(good: Sequence[tuple[RepositoryView, BackupSet]]) -> dict[str, set[str]]:
    """Keys (``id:<id>``, ``data:<sha256>``) to the repositories holding that backup."""
    index: dict[str, set[str]] = {}
    for view, backup in good:
        for key in _identity(backup):
            index.setdefault(key, set()).add(view.url)
    return index


def _identity(backup: BackupSet) -> list[str]:
    keys = [f"id:{backup.id}"]
    data = fingerprint(backup.manifest)
    if data:
        keys.append(f"data:{data}")
    return keys


def _summary(backup: BackupSet, holders: Mapping[str, set[str]], now: datetime) -> SetSummary:
    urls: set[str] = set()
    for key in _identity(backup):
        urls |= holders.get(key, set())
    return SetSummary(backup, _age(backup, now), tuple(sorted(urls)))


def rule_321(fresh: Iterable[Copy], limit: float, unreadable: Sequence[str] = ()) -> Rule321:
    """3 copies counting the live data, on 2 media, 1 off-site, from the fresh holdings of a group."""
    fresh = list(fresh)
    copies = 1 + len(fresh)
    media = len({c.medium for c in fresh})
    offsite = sum(c.offsite for c in fresh)
    ok = copies >= 3 and media >= 2 and offsite >= 1
    if ok:
        reason = f"{copies} copies (live data + {', '.join(c.location for c in fresh)}) on {media} media, " \
                 f"{offsite} off-site"
    else:
        missing = []
        window = policy_span(limit)
        if copies < 3:
            missing.append(f"{copies} of 3 copies (live data + {len(fresh)} backup(s) fresher than {window})")
        if media < 2:
            missing.append(f"{media} of 2 media" + (" (all backups on one file system)" if fresh else ""))
        if offsite < 1:
            missing.append(f"no off-site backup fresher than {window}")
        if unreadable:
            missing.append(f"cannot read {', '.join(unreadable)}")
        reason = "; ".join(missing)
    return Rule321(copies, media, offsite, ok, reason)


# --- the command's entry point -------------------------------------------------------------------


def status(
    config: Config,
    *,
    destinations: Sequence[str | Path] = (),
    remote: str | None = None,
    source: str | None = None,
    instance: str | None = None,
    now: datetime | None = None,
) -> StatusReport:
    """Look at every repository and report freshness and 3-2-1 per group (see the module docstring)."""
    views = views_for(config, destinations, remote)
    limits = dict(config.max_backup_age)
    report = evaluate(views, expected_groups(config, source, instance), now or utcnow(), limits,
                      only=(source, instance if source else None), max_verify_age=dict(config.max_verify_age))
    interrupted, settings = restore_state(config)
    archives: tuple[Any, ...] = ()
    if config.archive and source in (None, "redis"):
        from bdr.engines.redis.archive.report import archive_statuses

        archives = tuple(a for a in archive_statuses(config, now) if instance is None or a.instance == instance)
    return dataclasses.replace(report, interrupted=interrupted, settings_left=settings, archives=archives,
                               problems=(*interrupted, *report.problems, *(p for a in archives for p in a.problems())))


def _settings_line(record: Mapping[str, Any]) -> str:
    values = ", ".join(f"{k} {v!r}" for k, v in dict(record.get("previous") or {}).items())
    return (f"Redis {record.get('instance')}: {values} to be put back (changed by bdr pid {record.get('pid')}, which "
            "was killed; the next bdr run on that instance puts them back)")


def restore_state(config: Config) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Interrupted restores and settings left changed by killed runs, from the local repository's journal."""
    from bdr.engines.redis.live_settings import leftovers
    from bdr.safety.journal import Journal

    journal = Journal.at(config.repository_path())
    try:
        interrupted = tuple(e.interrupted_message() for e in journal.interrupted())
        settings = tuple(_settings_line(d) for d in leftovers(journal.root))
    except OSError as exc:
        logger.warning("cannot read the restore journal in %s: %s", journal.root, exc)
        return (), ()
    return interrupted, settings


def check(report: StatusReport, require_321: bool = False) -> None:
    """Raise when a restore was interrupted (exit 13), or an expected backup is stale or missing (or 3-2-1
    is broken: exit 1)."""
    if report.interrupted:
        from bdr.errors import RestoreInterrupted

        more = f" (and {len(report.interrupted) - 1} more)" if len(report.interrupted) > 1 else ""
        raise RestoreInterrupted(report.interrupted[0] + more)
    problems = [p for s in report.sources if (p := s.problem())]
    problems += [p for a in report.archives for p in a.problems()]
    if require_321:
        problems += [f"{s.source}/{s.instance}: 3-2-1 rule broken: {s.rule_321.reason}"
                     for s in report.sources if s.expected and not s.rule_321.ok]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CheckFailed(detail=f"{problems[0]}{more}; run `bdr backup` or check the schedule")
