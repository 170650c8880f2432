"""Calendar retention: which backup sets to keep, which to delete, and every reason a set is kept.

Grandfather-father-son as restic and borg do it, over the retention table of ``bdr.yaml``
(hourly 7 d local, daily 30 d local + S3, weekly 90 d S3, monthly 1 y S3). Classify, then
act (barman): :func:`decide` is a pure function of (sets, policy, now) that returns one
:class:`RetentionDecision` per set, and :func:`prune` is the separate step that deletes,
under the repository lock.

What each rule keeps (all periods are UTC; a set's time is when it finished,
``BackupSet.created``, the time ``bdr list`` shows):

``hourly`` / ``daily`` / ``weekly`` / ``monthly`` / ``yearly`` with ``keep: W``
    The window is the N most recent calendar periods counted back from the one holding
    *now* (included), N = W / the period's nominal length, rounded up (hour 1 h, day 24 h,
    ISO week 7 d Monday to Sunday, month 365 d / 12, year 365 d). In each period of the
    window the newest good set is kept. So ``daily 30d`` keeps the newest set of each of the
    last 30 UTC days, today included; ``hourly 7d`` of each of the last 168 hours; ``weekly
    90d`` of the last 13 ISO weeks; ``monthly 1y`` of the last 12 calendar months. Empty
    periods use up the window: when backups stop, the window moves on regardless and only
    the invariants below keep the last sets.
``count: N`` on a calendar rule
    Keep at most the N most recent periods *that hold a set* (restic's ``--keep-daily N``);
    with ``keep`` too, a period must satisfy both. With ``count`` alone the window is unbounded.
``last`` with ``count: N``
    The N newest good sets (``--keep-last N``, and ``bdr backup --keep N``).
``within`` with ``keep: W``
    Every good set younger than W (``--keep-within``).
``safety`` with ``keep: W`` (default 7 d)
    Safety sets (tag ``safety``, taken before each restore) younger than W, at every
    location. The other rules never look at safety sets, nor count them.

A rule applies to the sets of repositories at one of its ``locations``: ``local`` (a
directory, the primary repository or a second disk) or ``s3`` (off-site). A set is *good*
when it is complete (it has a manifest; incomplete sets are never listed) and its last
``bdr verify`` did not fail; rules only keep good sets.

*Damaged* sets (an unreadable manifest, a digest or MAC mismatch, a set directory bdr did not
leave: :meth:`~bdr.repository.Repository.damaged`) are outside retention altogether: no
rule counts them, and prune never deletes one; it lists them in
:attr:`PruneResult.damaged` and warns, for the operator to decide. The members of a damaged
system set whose manifest still reads are kept.

Invariants, whatever the rules say: the newest good set and the newest verified set of
each (source, instance), every set a restore is reading, and the members of a kept
whole-system (``all``) set are never deleted. Sets are grouped per (source, instance), so
pruning ``redis/production`` never touches ``redis/test``.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bdr.config import DEFAULT_RETENTION, RETENTION_KINDS, RETENTION_LOCATIONS, Config, RetentionRule
from bdr.errors import UsageError
from bdr.repository import BackupSet, Catalog, DamagedSet, Repository
from bdr.repository.manifest import to_iso, utcnow
from bdr.util.durations import format_duration

logger = logging.getLogger(__name__)

SAFETY_TAG = "safety"
DEFAULT_SAFETY_KEEP = 7 * 86400.0
NEWEST_GOOD = "newest good set"
BEING_READ = "being read by a restore"
DAMAGED_WARNING = "not pruning damaged backup set %s (%s): bdr never deletes a damaged set"


class Action(StrEnum):
    KEEP = "keep"
    DELETE = "delete"


def policy_span(seconds: float) -> str:
    """A window as a policy states it: ``24h``, ``7d``, ``30d``, ``90m`` (else the short human form)."""
    if seconds > 0 and float(seconds).is_integer():
        whole = int(seconds)
        if whole % 86400 == 0 and whole >= 2 * 86400:
            return f"{whole // 86400}d"
        for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
            if whole % size == 0:
                return f"{whole // size}{unit}"
    return format_duration(seconds)


# --- calendar periods --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar period: consecutive integer indexes, a label for humans, a nominal length."""

    kind: str
    unit: str
    seconds: float
    index: Callable[[datetime], int]
    label: Callable[[datetime], str]

    def window(self, keep: float) -> int | None:
        """How many periods a ``keep`` window spans (None: unbounded)."""
        if keep <= 0:
            return None
        return max(1, math.ceil(keep / self.seconds - 1e-9))


def _week_index(moment: datetime) -> int:
    day = moment.date()
    return (day.toordinal() - day.weekday()) // 7  # ordinal 1 (0001-01-01) is a Monday


def _week_label(moment: datetime) -> str:
    year, week, _ = moment.date().isocalendar()
    return f"{year}-W{week:02d}"


PERIODS: dict[str, Period] = {
    period.kind: period
    for period in (
        Period("hourly", "hour", 3600.0, lambda m: int(m.timestamp() // 3600), lambda m: f"{m:%Y-%m-%d %H}:00"),
        Period("daily", "day", 86400.0, lambda m: m.date().toordinal(), lambda m: f"{m:%Y-%m-%d}"),
        Period("weekly", "ISO week", 7 * 86400.0, _week_index, _week_label),
        Period("monthly", "month", 365 * 86400.0 / 12, lambda m: m.year * 12 + m.month - 1, lambda m: f"{m:%Y-%m}"),
        Period("yearly", "year", 365 * 86400.0, lambda m: m.year, lambda m: f"{m:%Y}"),
    )
}


# --- policy and decisions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The rules in force: the retention table of ``bdr.yaml`` plus the safety-set rule."""

    rules: tuple[RetentionRule, ...] = DEFAULT_RETENTION
    safety_keep: float = DEFAULT_SAFETY_KEEP

    @classmethod
    def from_config(cls, config: Config) -> RetentionPolicy:
        safety = [r.keep for r in config.retention if r.kind == "safety"]
        rules = tuple(r for r in config.retention if r.kind != "safety")
        return cls(rules, safety[-1] if safety else DEFAULT_SAFETY_KEEP)

    @classmethod
    def keep_last(cls, count: int, locations: tuple[str, ...] = RETENTION_LOCATIONS) -> RetentionPolicy:
        """Only ``last`` (``bdr backup --keep N``), plus the invariants."""
        return cls((RetentionRule("last", 0.0, locations, count),))

    def rules_at(self, location: str) -> tuple[RetentionRule, ...]:
        return tuple(r for r in self.rules if location in r.locations)

    def covers(self, location: str) -> bool:
        return bool(self.rules_at(location))

    def describe(self, location: str) -> list[str]:
        """One line per rule in force at ``location`` (for ``bdr prune`` output)."""
        lines = [describe_rule(r) for r in self.rules_at(location)]
        return [*lines, f"safety sets for {policy_span(self.safety_keep)}"]


def describe_rule(rule: RetentionRule) -> str:
    if rule.kind == "last":
        return f"the {rule.count} newest sets"
    if rule.kind == "within":
        return f"every set younger than {policy_span(rule.keep)}"
    period = PERIODS[rule.kind]
    span = period.window(rule.keep)
    parts = [f"{rule.kind}: newest set of each of the last {span} {period.unit}s" if span else
             f"{rule.kind}: newest set of each {period.unit}"]
    if rule.count is not None:
        parts.append(f"at most {rule.count} {period.unit}s that hold a set")
    return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class RetentionDecision:
    """Keep or delete one set, with every reason that kept it (empty when deleted)."""

    backup: BackupSet
    action: Action
    reasons: tuple[str, ...] = ()
    note: str = ""
    """Why a deleted set was not kept (e.g. its verification failed)."""

    @property
    def id(self) -> str:
        return self.backup.id

    @property
    def keep(self) -> bool:
        return self.action is Action.KEEP

    def to_dict(self) -> dict[str, Any]:
        m = self.backup.manifest
        return {
            "id": m.id,
            "source": m.source,
            "instance": m.instance,
            "time": m.finished_at,
            "location": self.backup.location,
            "action": str(self.action),
            "reasons": list(self.reasons),
            "note": self.note,
            "safety": is_safety(self.backup),
            "verified": self.backup.verified,
        }


def is_safety(backup: BackupSet) -> bool:
    return SAFETY_TAG in backup.tags


def is_good(backup: BackupSet) -> bool:
    """Complete (listed) and not failed by its last verification."""
    return backup.verification is None or backup.verification.ok


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _newest_first(sets: Sequence[BackupSet]) -> list[BackupSet]:
    return sorted(sets, key=lambda s: (_utc(s.created), s.id), reverse=True)


# --- rules: one evaluator per kind, each yields (set id, reason) for the sets it keeps -----------

Evaluator = Callable[[RetentionRule, Sequence[BackupSet], datetime], Iterator[tuple[str, str]]]


def _calendar(period: Period) -> Evaluator:
    def evaluate(rule: RetentionRule, good: Sequence[BackupSet], now: datetime) -> Iterator[tuple[str, str]]:
        span = period.window(rule.keep)
        current = period.index(now)
        seen: set[int] = set()
        for backup in good:  # newest first: the first set met in a period is its newest
            created = _utc(backup.created)
            index = period.index(created)
            if index in seen or (span is not None and current - index >= span):
                continue
            if rule.count is not None and len(seen) >= rule.count:
                break
            seen.add(index)
            yield backup.id, f"{rule.kind} {period.label(created)} (newest of that {period.unit})"

    return evaluate


def _last(rule: RetentionRule, good: Sequence[BackupSet], now: datetime) -> Iterator[tuple[str, str]]:
    for backup in good[: rule.count or 0]:
        yield backup.id, f"keep-last {rule.count}"


def _within(rule: RetentionRule, good: Sequence[BackupSet], now: datetime) -> Iterator[tuple[str, str]]:
    for backup in good:
        if (now - _utc(backup.created)).total_seconds() < rule.keep:
            yield backup.id, f"within {policy_span(rule.keep)}"


EVALUATORS: dict[str, Evaluator] = {
    **{kind: _calendar(period) for kind, period in PERIODS.items()},
    "last": _last,
    "within": _within,
}
if set(EVALUATORS) | {"safety"} != set(RETENTION_KINDS):  # pragma: no cover - a programming error
    raise RuntimeError("bdr.config.RETENTION_KINDS and bdr.repository.retention.EVALUATORS disagree")


# --- deciding --------------------------------------------------------------------------------


def decide(
    sets: Sequence[BackupSet],
    policy: RetentionPolicy,
    now: datetime,
    *,
    being_read: Collection[str] = (),
    protected: Mapping[str, str] | None = None,
) -> list[RetentionDecision]:
    """One decision per set of one repository: keep (with every reason) or delete. No I/O.

    ``being_read`` are ids a restore is reading; ``protected`` maps more ids to keep to their
    reason (e.g. members of a system set outside ``sets``). The result is grouped per
    (source, instance), newest first, and does not depend on the order of ``sets``.
    """
    now = _utc(now)
    by_id: dict[str, BackupSet] = {}
    for backup in sets:
        if backup.id in by_id:
            raise ValueError(f"backup set {backup.id} listed twice: decide() works on one repository at a time")
        by_id[backup.id] = backup
    reasons: dict[str, list[str]] = {set_id: [] for set_id in by_id}

    def keep(set_id: str, reason: str) -> None:
        if set_id in reasons and reason not in reasons[set_id]:
            reasons[set_id].append(reason)

    groups: dict[tuple[str, str], list[BackupSet]] = {}
    for backup in _newest_first(list(by_id.values())):
        groups.setdefault((backup.source, backup.manifest.instance), []).append(backup)

    for members in groups.values():
        regular = [b for b in members if not is_safety(b)]
        good = [b for b in regular if is_good(b)]
        if good:
            keep(good[0].id, NEWEST_GOOD)
        verified = next((b for b in regular if b.verified), None)
        if verified is not None and verified.verification is not None:
            keep(verified.id, f"newest verified set (verified {verified.verification.at[:10]})")
        for rule in policy.rules:
            if rule.kind not in EVALUATORS:  # "safety" is policy.safety_keep
                continue
            candidates = [b for b in good if b.location in rule.locations]
            for set_id, reason in EVALUATORS[rule.kind](rule, candidates, now):
                keep(set_id, reason)
        for backup in members:
            if is_safety(backup) and (now - _utc(backup.created)).total_seconds() < policy.safety_keep:
                keep(backup.id, f"safety backup younger than {policy_span(policy.safety_keep)}")

    for set_id in being_read:
        keep(set_id, BEING_READ)
    for set_id, reason in (protected or {}).items():
        keep(set_id, reason)
    _keep_members(by_id, reasons, keep)

    decisions = []
    for members in (groups[key] for key in sorted(groups)):
        for backup in members:
            kept = tuple(reasons[backup.id])
            if kept:
                decisions.append(RetentionDecision(backup, Action.KEEP, kept))
            else:
                decisions.append(RetentionDecision(backup, Action.DELETE, (), _why_not(backup, policy)))
    return decisions


def _keep_members(
    by_id: Mapping[str, BackupSet], reasons: Mapping[str, list[str]], keep: Callable[[str, str], None]
) -> None:
    """A kept whole-system set keeps its members (until nothing changes: members may nest)."""
    done: set[str] = set()
    while True:
        parents = [b for b in by_id.values() if reasons[b.id] and b.manifest.children and b.id not in done]
        if not parents:
            return
        for parent in parents:
            done.add(parent.id)
            for child in parent.manifest.children:
                keep(child, f"member of system set {parent.id}")


def _why_not(backup: BackupSet, policy: RetentionPolicy) -> str:
    if is_safety(backup):
        return f"safety backup older than {policy_span(policy.safety_keep)}"
    if not is_good(backup):
        return "its last verification failed"
    if not policy.covers(backup.location):
        return f"no retention rule applies at location {backup.location}"
    return "no rule keeps it"


# --- acting ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What a prune decided and did in one repository."""

    repository: str
    location: str
    at: datetime
    decisions: tuple[RetentionDecision, ...]
    dry_run: bool
    deleted: tuple[str, ...] = ()
    spared: tuple[str, ...] = ()
    """Sets a restore started reading between deciding and deleting: left alone."""
    rules: tuple[str, ...] = field(default=())
    damaged: tuple[DamagedSet, ...] = ()
    """Damaged sets in scope: never deleted, for the operator to look at."""

    @property
    def to_keep(self) -> list[RetentionDecision]:
        return [d for d in self.decisions if d.keep]

    @property
    def to_delete(self) -> list[RetentionDecision]:
        return [d for d in self.decisions if not d.keep]

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "location": self.location,
            "at": to_iso(self.at),
            "dry_run": self.dry_run,
            "rules": list(self.rules),
            "kept": len(self.to_keep),
            "to_delete": len(self.to_delete),
            "deleted": list(self.deleted),
            "spared": list(self.spared),
            "damaged": [d.to_dict() for d in self.damaged],
            "decisions": [d.to_dict() for d in self.decisions],
        }


def _in_scope(backup: BackupSet, source: str | None, instance: str | None) -> bool:
    return (source is None or backup.source == source) and (instance is None or backup.manifest.instance == instance)


def _damaged_in_scope(damaged: DamagedSet, source: str | None, instance: str | None) -> bool:
    return (source is None or damaged.source == source) and (
        instance is None or damaged.instance is None or damaged.instance == instance)


def members_of_damaged(catalog: Catalog) -> dict[str, str]:
    """Members of damaged system sets that still read: kept, as a kept system set's would be."""
    return {child: f"member of damaged system set {d.id}" for d in catalog.damaged if d.manifest is not None
            for child in d.manifest.children}


def _plan(repo: Repository, catalog: Catalog, policy: RetentionPolicy, now: datetime, source: str | None,
          instance: str | None) -> list[RetentionDecision]:
    decisions = decide(catalog.sets, policy, now, being_read=repo.sets_being_read(),
                       protected=members_of_damaged(catalog))
    return [d for d in decisions if _in_scope(d.backup, source, instance)]


def plan(
    repo: Repository,
    policy: RetentionPolicy,
    now: datetime | None = None,
    *,
    source: str | None = None,
    instance: str | None = None,
) -> list[RetentionDecision]:
    """The decisions for the good sets of ``repo`` (of ``source``/``instance`` when given); reads only."""
    return _plan(repo, repo.catalog(), policy, now or utcnow(), source, instance)


def apply(repo: Repository, decisions: Sequence[RetentionDecision]) -> tuple[list[str], list[str]]:
    """Delete the sets decided for deletion; returns (deleted, spared because a restore reads them)."""
    deleted: list[str] = []
    spared: list[str] = []
    for decision in decisions:
        if decision.keep:
            continue
        if decision.id in repo.sets_being_read():  # a restore may have started since the decision
            logger.warning("not deleting backup set %s: a restore started reading it", decision.id)
            spared.append(decision.id)
            continue
        repo.delete(decision.backup)
        logger.info("pruned backup set %s from %s (%s)", decision.id, repo.url, decision.note)
        deleted.append(decision.id)
    return deleted, spared


def prune(
    repo: Repository,
    policy: RetentionPolicy,
    now: datetime | None = None,
    *,
    source: str | None = None,
    instance: str | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Apply ``policy`` to ``repo``: decide, then delete under the repository lock (not with ``dry_run``).

    Refuses (UsageError) when no rule applies at the repository's location: with nothing to
    keep, everything but the invariants would go, which is never what was meant.
    """
    location = repo.storage.location
    if not policy.covers(location):
        raise UsageError(
            detail=f"no retention rule applies to {location} repositories such as {repo.url}: nothing would be "
            f"kept but the newest set; add {location} to the locations of a rule under retention: in bdr.yaml"
        )
    moment = _utc(now or utcnow())
    guard = contextlib.nullcontext() if dry_run else repo.lock("prune")
    with guard:
        catalog = repo.catalog()
        decisions = _plan(repo, catalog, policy, moment, source, instance)
        damaged = tuple(d for d in catalog.damaged if _damaged_in_scope(d, source, instance))
        for entry in damaged:
            logger.warning(DAMAGED_WARNING, entry.id, entry.reason)
        deleted: list[str] = []
        spared: list[str] = []
        if not dry_run:
            deleted, spared = apply(repo, decisions)
    return PruneResult(repo.url, location, moment, tuple(decisions), dry_run, tuple(deleted), tuple(spared),
                       tuple(policy.describe(location)), damaged)


def keep_last(repo: Repository, source: str, instance: str, count: int, now: datetime | None = None) -> list[str]:
    """Delete all but the ``count`` newest sets of ``source``/``instance`` (``bdr backup --keep N``).

    Safety sets, other instances and damaged sets are left alone (a warning is logged for
    each damaged one); the invariants hold (the newest verified set, sets being read, members
    of whole-system sets are kept). Returns the deleted ids.
    """
    if count < 1:
        raise UsageError(detail=f"--keep must be at least 1, got {count}")
    with repo.lock(f"prune {source} --keep {count}"):
        catalog = repo.catalog(source)
        scope = [b for b in catalog.sets if b.manifest.instance == instance and not is_safety(b)]
        shards = {child for b in scope if b.source != "all" for child in b.manifest.children}
        scope += [b for b in catalog.sets if b.id in shards]  # a cluster set's shard sets go with it
        systems = repo.catalog("all") if source != "all" else catalog
        protected = {child: f"member of system set {s.id}" for s in systems.sets for child in s.manifest.children}
        protected = {**members_of_damaged(systems), **protected}
        for entry in catalog.damaged:
            if _damaged_in_scope(entry, source, instance):
                logger.warning(DAMAGED_WARNING, entry.id, entry.reason)
        policy = RetentionPolicy.keep_last(count, (repo.storage.location,))
        decisions = decide(scope, policy, now or utcnow(), being_read=repo.sets_being_read(), protected=protected)
        deleted, _ = apply(repo, decisions)
    return deleted
