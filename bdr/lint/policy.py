"""Checks of the policy itself: backup schedules against the RPO, retention against the written table.

A total loss (disk or host gone, data destroyed) leaves only backups, so the data lost is up
to the longest gap between two scheduled backups plus the time one takes
(:mod:`bdr.lint.windows`). That must stay within the RPO of each data type. The schedule is
``schedule:`` of bdr.yaml, or the crontab(s) given, which win when both name a source.

The retention table of the runbook (:data:`bdr.config.DEFAULT_RETENTION`: hourly 7 d local,
daily 30 d local + S3, weekly 90 d S3, monthly 1 y S3) is the written policy: bdr.yaml may
keep more, never less.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from bdr.config import DEFAULT_RETENTION, RetentionRule
from bdr.lint.context import SOURCE_LABELS, LintContext, check, data_types_of
from bdr.lint.findings import Finding, Severity, config_duration, human_duration, rule
from bdr.lint.schedule import CronError, ScheduledBackup, parse_cron, schedule_cadence
from bdr.lint.windows import (
    BackupWindow,
    Exposure,
    archive_exposures,
    archive_window,
    backup_window,
    suggest_schedule,
    total_loss_exposures,
)
from bdr.sources import CATALOGUE, all_sources, source_names

KNOWN_SOURCES = source_names(with_all=True)
ALWAYS_BACKED_UP = tuple(s.name for s in all_sources() if not s.optional)
"""The sources every installation backs up (the monitoring ones have checks of their own, when configured)."""

POLICY_UNREADABLE = rule(
    "BDR-P000", "policy-unreadable", Severity.ERROR, "bdr.yaml does not load.",
    "Every bdr command refuses an invalid policy file: backups, restores and drills stop until it is fixed.",
)
TOTAL_LOSS = rule(
    "BDR-B001", "total-loss-exceeds-rpo", Severity.ERROR,
    "The backup schedule lets a total loss cost more than the RPO.",
    "When the disk or host is gone only backups remain: the loss is up to the longest gap between two "
    "backups plus the time one takes. Schedule backups often enough for the tightest RPO of the source.",
)
NOT_SCHEDULED = rule(
    "BDR-B002", "source-not-scheduled", Severity.ERROR, "A source with an RPO target has no scheduled backup.",
    "Without scheduled backups a total loss loses everything the source holds since its last manual backup.",
)
BAD_CRON = rule(
    "BDR-B003", "invalid-schedule", Severity.ERROR, "A backup schedule is not a valid cron expression.",
    "cron refuses or never runs the line: the backup does not happen.",
)
DISAGREE = rule(
    "BDR-B004", "schedules-disagree", Severity.WARNING, "bdr.yaml and the crontab schedule a source differently.",
    "bdr.yaml's schedule documents the policy; the crontab is what runs. When they differ, the one people "
    "read is not the one that protects the data.",
)
UNKNOWN_SOURCE = rule(
    "BDR-B005", "unknown-schedule-source", Severity.WARNING, "bdr.yaml schedules a source bdr does not know.",
    "A misspelt source (rediss) schedules nothing, and the real source goes unchecked.",
)
LATE_ALERT = rule(
    "BDR-B006", "freshness-alert-after-rpo", Severity.WARNING,
    "The backup-age alert fires only after the RPO is already broken.",
    "max_backup_age is when bdr status (and its alert) calls the newest backup too old. If it is longer than "
    "the RPO, backups can stop and the RPO be missed for hours before anyone is told.",
)
TIMER_NOT_PERSISTENT = rule(
    "BDR-B007", "timer-not-persistent", Severity.WARNING,
    "A backup timer does not catch up the runs it missed (no Persistent=true).",
    "A run that falls while the host is down or asleep is skipped until the next one: after an outage the "
    "newest backup can be older than the schedule promises, beyond the RPO.",
)
NOT_INSTALLED = rule(
    "BDR-B008", "scheduled-backup-not-installed", Severity.WARNING,
    "bdr.yaml schedules a backup that no installed timer or crontab line runs.",
    "bdr.yaml documents the schedule; only what is installed runs. A backup written down but never installed "
    "never happens.",
)
ARCHIVE_LAG = rule(
    "BDR-B009", "archive-lag-exceeds-rpo", Severity.ERROR,
    "The archive lag an archived Redis may reach is longer than the RPO.",
    "A continuously archived instance loses, in a total loss, what the archive had not delivered: up to max_lag "
    "before bdr status and the ArchiveLagging alert complain. Keep max_lag (and segment_seconds) within the "
    "tightest RPO of the data in Redis.",
)
RETENTION_SHORT = rule(
    "BDR-P001", "retention-shorter-than-policy", Severity.ERROR,
    "A retention rule keeps backups for less time than the written retention table.",
    "Backups the policy promises (hourly 7 d, daily 30 d, weekly 90 d, monthly 1 y) are deleted early: a "
    "restore to a point in that range becomes impossible.",
)
RETENTION_MISSING = rule(
    "BDR-P002", "retention-tier-missing", Severity.ERROR, "A tier of the retention table has no rule.",
    "Without the rule, bdr prune keeps no backups of that tier.",
)
RETENTION_LOCATION = rule(
    "BDR-P003", "retention-location-missing", Severity.WARNING,
    "A retention rule keeps backups in fewer places than the table.",
    "The table keeps daily backups locally and on S3 (3-2-1): with one location, a disaster that takes it "
    "takes every copy.",
)
NO_OFFSITE = rule(
    "BDR-P004", "offsite-not-configured", Severity.WARNING,
    "The retention table keeps backups on S3 but no off-site repository is configured.",
    "A total loss of the host also takes the local repository: the offsite restore scenario has nothing to "
    "restore from.",
)
KEEP_SHORT = rule(
    "BDR-P005", "keep-shorter-than-retention", Severity.WARNING,
    "A cron job prunes with --keep to less history than the retention table.",
    "bdr backup --keep N keeps the N newest sets of the source: with hourly backups --keep 7 is 7 hours, "
    "not 7 days.",
)


@check
def check_policy_file(ctx: LintContext) -> Iterable[Finding]:
    problem = ctx.policy_problem
    if problem is None:
        return
    yield POLICY_UNREADABLE.finding(
        problem.path, problem.line, problem.detail,
        "bdr refuses to run with this file: no backup, restore or drill until it is fixed; lint could not "
        "check the schedule or retention either.",
        "Fix the setting named in the message (bdr init writes a commented example).",
    )


@check
def check_schedules(ctx: LintContext) -> Iterable[Finding]:
    """Valid cron lines, known sources, one truth between bdr.yaml and the crontab."""
    if ctx.policy is None:
        return
    if ctx.policy_found and ctx.policy.path is not None:
        config = ctx.policy.config
        for entry in config.schedule:
            line = ctx.policy.line("schedule", entry.key)
            if entry.kind == "backup" and entry.source not in KNOWN_SOURCES:
                yield UNKNOWN_SOURCE.finding(
                    ctx.policy.path, line, f"schedule.{entry.key}: bdr backs up {', '.join(KNOWN_SOURCES)} (and "
                    "runs offsite, prune, verify, drill)",
                    "This line schedules nothing; the source it was meant for may have no backup at all.",
                    f"Rename it to one of {', '.join(KNOWN_SOURCES)}.",
                )
            elif entry.instance is not None:
                kind = CATALOGUE.find(entry.source)
                known = kind.instances(config) if kind is not None and kind.instanced else []
                if entry.instance not in known:
                    yield UNKNOWN_SOURCE.finding(
                        ctx.policy.path, line, f"schedule.{entry.key}: no {entry.source} instance {entry.instance!r} "
                        f"in bdr.yaml (known: {', '.join(known) or 'none'})",
                        "This line backs up nothing (bdr schedule refuses it); the instance it was meant for may "
                        "have no backup at all.",
                        f"Use one of {', '.join(f'{entry.source}/{k}' for k in known) or 'the instances of bdr.yaml'}.",
                    )
            try:
                parse_cron(entry.cron)
            except CronError as exc:
                yield _bad_cron(ctx.policy.path, line, f"schedule.{entry.key}", str(exc))
    for problem in ctx.crontab_entries[1]:
        yield _bad_cron(problem.path, problem.line, "this backup line", problem.detail)
    yield from _disagreements(ctx)
    yield from _installed_checks(ctx)


def _installed_checks(ctx: LintContext) -> Iterable[Finding]:
    """BDR-B007 (a timer that does not catch up) and BDR-B008 (a bdr.yaml backup nothing installed runs)."""
    for timer in ctx.timers:
        if not timer.persistent:
            sources = ", ".join(dict.fromkeys(b.source for b in timer.backups))
            yield TIMER_NOT_PERSISTENT.finding(
                timer.timer, timer.line, f"{timer.timer.name} backs up {sources} but has no Persistent=true",
                "A backup due while the host was down is skipped until the next run: the newest backup can be "
                "older than the schedule says when it is needed.",
                "Add Persistent=true under [Timer] (bdr schedule --install writes it).",
            )
    if not ctx.installed_known or not ctx.policy_found or ctx.policy is None or ctx.policy.path is None:
        return
    running = {e.source for e in ctx.crontab_entries[0]}
    for entry in ctx.policy_schedule:
        if entry.source in ALWAYS_BACKED_UP and entry.source not in running:
            yield NOT_INSTALLED.finding(
                ctx.policy.path, entry.line, f"{entry.program} backs up {entry.source}, but no installed timer or "
                "crontab line does",
                f"No {entry.source} backup runs: a total loss costs everything since the last backup taken by hand.",
                "Install the schedule: bdr schedule --install --enable (or bdr schedule --cron --install).",
                facts={"source": entry.source},
            )


def _bad_cron(path: Path, line: int | None, what: str, detail: str) -> Finding:
    return BAD_CRON.finding(
        path, line, f"{what}: {detail}",
        "The backup never runs on this schedule: a total loss costs everything since the last backup taken "
        "some other way.",
        "Write five fields: minute hour day-of-month month day-of-week (e.g. `*/30 * * * *`), or @hourly/@daily.",
    )


def _disagreements(ctx: LintContext) -> Iterable[Finding]:
    crontab = ctx.crontab_entries[0]
    if not crontab or not ctx.policy_found:
        return
    for source in ALWAYS_BACKED_UP:
        declared = [e for e in ctx.policy_schedule if e.source == source]
        running = [e for e in crontab if e.source == source]
        if not declared or not running:
            continue
        said, ran = _gap(declared), _gap(running)
        if said is None or ran is None or abs(said - ran) < 1:
            continue
        first = running[0]
        assert first.path is not None
        what = "the timers" if first.exprs or first.interval is not None else "the crontab"
        yield DISAGREE.finding(
            first.path, first.line,
            f"{what} back{'' if what == 'the timers' else 's'} up {source} every {human_duration(ran)} at worst; "
            f"bdr.yaml's {declared[0].program} says every {human_duration(said)}",
            f"{what.capitalize()} {'are' if what == 'the timers' else 'is'} what runs, so lint checked the RPO "
            "against it; bdr.yaml misleads whoever reads it.",
            f"Make schedule.{source} in bdr.yaml match {what} (or the other way round: bdr schedule --install).",
            facts={"source": source, "crontab_seconds": ran, "bdr_yaml_seconds": said},
        )


def _interval(entry: ScheduledBackup) -> float:
    """How often one entry runs (the most frequent job is the one to change)."""
    found = schedule_cadence([entry])
    return found.worst_gap if found else float("inf")


def _gap(entries: list[ScheduledBackup]) -> float | None:
    for entry in entries:
        try:
            entry.calendar()
        except CronError:
            return None
    found = schedule_cadence(entries)
    return found.worst_gap if found else None


@check
def check_total_loss(ctx: LintContext) -> Iterable[Finding]:
    """BDR-B001/B002: every data type's total-loss window against its RPO."""
    if ctx.policy is None:
        return
    if not ctx.schedule_known:
        ctx.note("no backup schedule known (no bdr.yaml and no crontab): what a total loss costs was not "
                 "checked; pass the crontab with --crontab or add schedule: to bdr.yaml")
        return
    covered = {w.source for w in (archive_window(ctx, "redis"),) if w is not None}
    for window, exposures in total_loss_exposures(ctx):
        covered.add(window.source)
        breached = [e for e in exposures if e.breached]
        if breached:
            yield _total_loss(window, breached)
    for source in ALWAYS_BACKED_UP:
        types = data_types_of(source, ctx.config)
        if not types or source in covered or ctx.schedule_for(source):
            continue
        path = ctx.policy.path or next(iter(ctx.crontabs), None)
        if path is None:
            continue
        targets = ", ".join(f"{t} {human_duration(ctx.config.targets.rpo[t])}" for t in types)
        yield NOT_SCHEDULED.finding(
            path, ctx.policy.line("schedule") if ctx.policy.path else None,
            f"no scheduled backup of {source}, which holds {', '.join(types)}",
            f"A total loss of {SOURCE_LABELS[source]} loses everything since its last manual backup; the RPO is "
            f"{targets}.",
            f"Add `{source}: \"{suggest_schedule(min(ctx.config.targets.rpo[t] for t in types) / 2)}\"` under "
            "schedule: in bdr.yaml and install the cron job (bdr backup " + source + ").",
            facts={"source": source},
        )


def _total_loss(window: BackupWindow, breached: list[Exposure]) -> Finding:
    tightest = min(e.rpo for e in breached)
    targets = " and ".join(f"{e.data_type} ({human_duration(e.rpo)})" for e in breached)
    first = min(window.entries, key=_interval)
    room = tightest - window.duration.seconds
    cron = suggest_schedule(room) if room > 0 else None
    keys = " / ".join(f"targets.rpo.{e.data_type}" for e in breached)
    if cron:
        fix = (f"Back up {window.source} at least every {human_duration(room)} (e.g. cron `{cron}`), or raise "
               f"{keys} to {config_duration(window.seconds)} if the business accepts that loss.")
    else:
        fix = (f"A {window.source} backup alone takes {human_duration(window.duration.seconds)}, more than the "
               f"RPO of {human_duration(tightest)}: make the backup faster or raise {keys}.")
    assert first.path is not None
    return TOTAL_LOSS.finding(
        first.path, first.line,
        f"{first.program} `{first.cron}`: a total loss loses up to {human_duration(window.seconds)} of "
        f"{SOURCE_LABELS[window.source]} data, more than the RPO of {targets}",
        f"{window.basis}: the newest usable backup can be {human_duration(window.seconds)} old when the data is "
        f"lost, more than the RPO of {targets}.",
        fix,
        facts={
            "source": window.source, "window_seconds": window.seconds, "interval_seconds": window.interval,
            "backup_seconds": window.duration.seconds, "backup_duration_measured": window.duration.measured,
            "rpo_seconds": {e.data_type: e.rpo for e in breached},
        },
    )


@check
def check_archive_lag(ctx: LintContext) -> Iterable[Finding]:
    """BDR-B009: an archived Redis's max_lag against the RPO of the data in Redis."""
    if ctx.policy is None or ctx.policy.path is None or not ctx.policy_found:
        return
    for window, exposures in archive_exposures(ctx):
        breached = [e for e in exposures if e.breached]
        if not breached:
            continue
        tightest = min(e.rpo for e in breached)
        targets = " and ".join(f"{e.data_type} ({human_duration(e.rpo)})" for e in breached)
        yield ARCHIVE_LAG.finding(
            ctx.policy.path, breached[0].line,
            f"archive.redis.{window.instance}.max_lag is {human_duration(window.seconds)}, more than the RPO of "
            f"{targets}",
            f"{window.basis}: a total loss can cost {human_duration(window.seconds)} of writes before anyone is "
            f"told, more than the RPO of {targets}.",
            f"Set archive.redis.{window.instance}.max_lag: {config_duration(tightest)} (or less) in bdr.yaml.",
            facts={"instance": window.instance, "max_lag_seconds": window.seconds,
                   "rpo_seconds": {e.data_type: e.rpo for e in breached}},
        )


@check
def check_freshness_alert(ctx: LintContext) -> Iterable[Finding]:
    """BDR-B006: max_backup_age must not be longer than the RPO it guards."""
    if ctx.policy is None or ctx.policy.path is None or not ctx.policy_found:
        return
    for source in ALWAYS_BACKED_UP:
        types = data_types_of(source, ctx.config)
        if not types:
            continue
        rpo = min(ctx.config.targets.rpo[t] for t in types)
        age = ctx.config.max_age(source)
        if age <= rpo:
            continue
        key = source if source in ctx.config.max_backup_age else "default"
        window = backup_window(ctx, source)
        if window is not None and window.seconds > rpo:
            bound = " (and fix the schedule first: its backups are already further apart than the RPO, BDR-B001)"
        elif window is not None:
            bound = f" (above the backup window of {human_duration(window.seconds)}, or it alerts between backups)"
        else:
            bound = ""
        yield LATE_ALERT.finding(
            ctx.policy.path, ctx.policy.line("max_backup_age", key) or ctx.policy.line("max_backup_age"),
            f"max_backup_age.{key} is {human_duration(age)}, longer than the RPO of "
            f"{', '.join(types)} ({human_duration(rpo)})",
            f"If {source} backups stop, bdr status and its alert stay green for {human_duration(age)}: the RPO is "
            f"broken for up to {human_duration(age - rpo)} before anyone is told.",
            f"Set max_backup_age.{source}: {config_duration(rpo)} in bdr.yaml{bound}.",
            facts={"source": source, "max_age_seconds": age, "rpo_seconds": rpo},
        )


@check
def check_retention(ctx: LintContext) -> Iterable[Finding]:
    """BDR-P001..P005: retention against the written table, off-site copies, --keep in cron jobs."""
    if ctx.policy is None or ctx.policy.path is None or not ctx.policy_found:
        yield from _keep_rules(ctx, DEFAULT_RETENTION)
        return
    path = ctx.policy.path
    config = ctx.config
    rules = {r.kind: r for r in config.retention}
    for wanted in DEFAULT_RETENTION:
        have = rules.get(wanted.kind)
        line = ctx.policy.line("retention", wanted.kind) or ctx.policy.line("retention")
        if have is None:
            yield RETENTION_MISSING.finding(
                path, line, f"retention has no {wanted.kind} rule (the table: {_row(wanted)})",
                f"bdr prune keeps no {wanted.kind} backups: restoring to a point up to "
                f"{human_duration(wanted.keep)} back, as the policy promises, becomes impossible.",
                f"Add under retention:\n  {wanted.kind}: {{keep: {config_duration(wanted.keep)}, "
                f"locations: [{', '.join(wanted.locations)}]}}",
            )
            continue
        kept, how = effective_keep(have)
        if kept < wanted.keep:
            yield RETENTION_SHORT.finding(
                path, line, f"retention.{wanted.kind} keeps {how}; the table says {human_duration(wanted.keep)}",
                f"{wanted.kind.capitalize()} backups older than {human_duration(kept)} are pruned: a restore "
                f"to a point between {human_duration(kept)} and {human_duration(wanted.keep)} ago is "
                "impossible, against the written policy.",
                f"Set retention.{wanted.kind}.keep to {config_duration(wanted.keep)} or more"
                + (" and drop count (or raise it)." if how != human_duration(have.keep) else "."),
                facts={"kind": wanted.kind, "keep_seconds": kept, "table_seconds": wanted.keep},
            )
        missing = [loc for loc in wanted.locations if loc not in have.locations]
        if missing:
            yield RETENTION_LOCATION.finding(
                path, line, f"retention.{wanted.kind} keeps backups in {', '.join(have.locations) or 'nowhere'}; "
                f"the table also says {', '.join(missing)}",
                f"A disaster that takes {', '.join(have.locations) or 'the repository'} takes every "
                f"{wanted.kind} copy: the offsite restore has nothing to restore from.",
                f"Set retention.{wanted.kind}.locations to [{', '.join(wanted.locations)}].",
            )
    offsite_rules = [r.kind for r in config.retention if "s3" in r.locations]
    offsite_jobs = any(e.offsite for e in [*ctx.crontab_entries[0], *ctx.policy_schedule])
    if offsite_rules and not config.remote.url and not offsite_jobs:
        yield NO_OFFSITE.finding(
            path, ctx.policy.line("remote", "url") or ctx.policy.line("remote"),
            f"retention keeps {', '.join(offsite_rules)} backups on s3, but remote.url is not set",
            "Backups stay on the same host as the data: a total loss of the host takes them too, and the "
            "offsite_restore RTO cannot be met.",
            "Set remote.url: s3://<bucket>/<prefix> in bdr.yaml (or pass --remote in the cron jobs).",
        )
    yield from _keep_rules(ctx, config.retention)


PERIODS = {"hourly": 3600.0, "daily": 86400.0, "weekly": 7 * 86400.0, "monthly": 30 * 86400.0,
           "yearly": 365 * 86400.0}


def effective_keep(rule_: RetentionRule) -> tuple[float, str]:
    """How far back a calendar rule keeps backups: its ``keep`` window, cut short by ``count`` periods."""
    count = getattr(rule_, "count", None)  # rules may limit the number of periods kept (restic's --keep-daily N)
    keep = rule_.keep if rule_.keep > 0 else float("inf")
    period = PERIODS.get(rule_.kind)
    if count and period and count * period < keep:
        return count * period, f"{count} {rule_.kind} sets ({human_duration(count * period)})"
    return keep, human_duration(keep)


def _row(rule_: RetentionRule) -> str:
    return f"keep {human_duration(rule_.keep)} in {', '.join(rule_.locations)}"


def _keep_rules(ctx: LintContext, table: tuple[RetentionRule, ...]) -> Iterable[Finding]:
    """BDR-P005: ``--keep N`` of a cron job against the table's row for the job's frequency."""
    keep = {r.kind: r.keep for r in table}
    for entry in ctx.crontab_entries[0]:
        if entry.path is None:
            continue
        found = schedule_cadence([entry])
        if found is None:
            continue
        tier = _tier(found.mean_gap)
        wanted = keep.get(tier)
        if wanted is None:
            continue
        if entry.keep_sets is not None:
            history = entry.keep_sets * found.mean_gap
            how = f"--keep {entry.keep_sets} keeps the {entry.keep_sets} newest {tier} sets"
            better = f"--keep {int(-(-wanted // found.mean_gap))}"
        elif entry.keep_days is not None:
            history = entry.keep_days * 86400.0
            how = f"--keep {entry.keep_days} keeps {entry.keep_days} days"
            better = f"--keep {int(-(-wanted // 86400))}"
        else:
            continue
        if history >= wanted:
            continue
        yield KEEP_SHORT.finding(
            entry.path, entry.line,
            f"{entry.program} `{entry.cron}`: {how}, {human_duration(history)} of history; the table keeps {tier} "
            f"backups for {human_duration(wanted)}",
            f"Older {tier} backups are deleted early: a restore to a point between {human_duration(history)} and "
            f"{human_duration(wanted)} ago is impossible.",
            f"Drop --keep and let bdr prune apply the retention of bdr.yaml, or use {better}.",
            facts={"history_seconds": history, "table_seconds": wanted, "tier": tier},
        )


def _tier(interval: float) -> str:
    if interval <= 3600:
        return "hourly"
    if interval <= 86400:
        return "daily"
    if interval <= 7 * 86400:
        return "weekly"
    return "monthly"
