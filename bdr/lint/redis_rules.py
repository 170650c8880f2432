"""Checks of Redis configuration: persistence against the RPO, and settings that lose data otherwise.

The central one, ``BDR-R001``, computes what a crash costs (:mod:`bdr.lint.windows`) for
every Redis holding production data (each linted redis.conf that is not another instance's,
such as the monthly restore test's, and each compose service whose command line decides)
and compares it with the RPO of every data type that lives in Redis.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from bdr.formats.redis_conf import Directive, RedisConf, parse_memory
from bdr.lint.context import LintContext, check, data_types_of
from bdr.lint.findings import Finding, Severity, display_path, human_duration, rule
from bdr.lint.persistence import PERSISTENCE_DIRECTIVES, Persistence, resolve
from bdr.lint.windows import crash_exposures

UNREADABLE = rule(
    "BDR-R000", "redis-conf-refused", Severity.ERROR, "redis-server would refuse a line of redis.conf.",
    "Redis does not start with a config file it cannot parse: after the next restart the service stays down "
    "and the restart RTO is missed.",
)
CRASH_WINDOW = rule(
    "BDR-R001", "crash-loss-exceeds-rpo", Severity.ERROR,
    "A crash of Redis loses more writes than the RPO of the data it holds.",
    "Redis persistence (appendonly, appendfsync, save rules) decides how many recent writes a crash of the "
    "process or host loses. It must stay within the RPO of every data type in Redis (sessions, rbac).",
)
BGSAVE_ERRORS = rule(
    "BDR-R002", "writes-continue-after-failed-save", Severity.WARNING,
    "Redis keeps accepting writes when its snapshots fail.",
    "With stop-writes-on-bgsave-error no and no AOF, a full or read-only disk makes every snapshot fail "
    "while writes go on: nothing new reaches the disk and nobody is told, so the crash window grows "
    "without bound.",
)
EVICTION = rule(
    "BDR-R003", "evicts-any-key", Severity.WARNING, "Redis deletes arbitrary keys when its memory is full.",
    "An allkeys-* maxmemory-policy evicts keys without a TTL too: sessions and RBAC records disappear "
    "without any crash, and no backup notices.",
)
PREAMBLE = rule(
    "BDR-R004", "aof-without-rdb-preamble", Severity.INFO, "The AOF is rewritten without an RDB preamble.",
    "With aof-use-rdb-preamble no, a rewritten AOF replays every command at start instead of loading a "
    "snapshot: restarts and restores take longer (restart RTO).",
)
INVALID = rule(
    "BDR-R005", "invalid-persistence-setting", Severity.ERROR, "A persistence directive has a value Redis refuses.",
    "redis-server exits at start on an invalid value: after the next restart Redis stays down.",
)
INCLUDE = rule(
    "BDR-R006", "include-not-checked", Severity.INFO, "An included file is not in the checkout.",
    "Settings in a file that lint cannot read may override the ones it checked.",
)
DUPLICATE = rule(
    "BDR-R007", "persistence-set-twice", Severity.INFO, "A persistence directive is set more than once.",
    "The last occurrence wins; a reader who sees the first one is misled about what a crash loses.",
)
RENAMED = rule(
    "BDR-R008", "backup-command-renamed", Severity.WARNING,
    "rename-command hides a command bdr backup needs.",
    "bdr takes a consistent snapshot with BGSAVE and reads INFO and CONFIG; renamed or disabled, the "
    "backup fails and the total-loss RPO is no longer met.",
)

BACKUP_COMMANDS = ("BGSAVE", "INFO", "CONFIG")
EVICT_ANY = ("allkeys-lru", "allkeys-lfu", "allkeys-random")


@check
def check_crash_window(ctx: LintContext) -> Iterable[Finding]:
    """BDR-R001: a crash of each production Redis against the RPO of sessions and RBAC."""
    for item in crash_exposures(ctx):
        breached = [e for e in item.exposures if e.breached]
        if not breached:
            continue
        first = breached[0]
        assert first.path is not None
        worst = first.window_text
        targets = " and ".join(f"{e.data_type} ({human_duration(e.rpo)})" for e in breached)
        who = "" if item.setup.path == first.path else f" ({item.setup.label})"
        yield CRASH_WINDOW.finding(
            first.path, first.line,
            f"{item.crash.mechanism}: a crash of Redis{who} loses up to {worst} of writes, more than the RPO of "
            f"{targets}",
            f"{item.crash.explanation}. Worst case {worst}: more than the RPO of {targets}.",
            _fix(resolve(item.setup.conf.directives), min(e.rpo for e in breached)),
            facts={
                "setup": item.setup.label, "window_seconds": first.seconds, "mechanism": item.crash.mechanism,
                "rpo_seconds": {e.data_type: e.rpo for e in breached},
            },
        )


def _fix(settings: Persistence, rpo: float) -> str:
    if settings.appendonly and settings.no_appendfsync_on_rewrite:
        return "Set no-appendfsync-on-rewrite no (fsync continues during rewrites: ~2 s at worst with everysec)."
    if settings.appendonly:
        return "Set appendfsync everysec (a crash then loses ~2 s at worst) or always (nothing, slower writes)."
    seconds = max(1, int(rpo) // 2)
    return (f"Turn AOF on: appendonly yes and appendfsync everysec (a crash then loses ~2 s at worst); or, "
            f"if RDB snapshots must do, add a rule that saves a single write soon enough, e.g. `save {seconds} 1`.")


@check
def check_redis_settings(ctx: LintContext) -> Iterable[Finding]:
    """Unparsable lines, invalid values, duplicates, failed-save handling, eviction, renamed commands."""
    for path, conf in ctx.redis_confs.items():
        shown = display_path(path, ctx.cwd)
        for problem in conf.problems:
            if problem.fatal:
                yield UNREADABLE.finding(
                    problem.path, problem.line, f"{shown}: {problem.detail}",
                    "redis-server exits at start on this line: after the next restart Redis stays down and the "
                    "restart RTO is missed.",
                    "Fix the line (redis-server --test-memory is no help: start redis-server with the file on a "
                    "spare port to see Redis's own message).",
                )
            else:
                yield INCLUDE.finding(problem.path, problem.line, problem.detail,
                                      "What a crash loses may differ from what lint computed.",
                                      "Lint the included file too (pass it as a path).")
        settings = resolve(conf.directives)
        yield from _invalid(settings)
        yield from _duplicates(conf.directives)
        production = ctx.holds_production_data(path)
        types = ", ".join(data_types_of("redis", ctx.config)) or "Redis data"
        if production and not settings.appendonly and settings.save_rules and not settings.stop_writes_on_bgsave_error:
            where = settings.where["stop-writes-on-bgsave-error"]
            yield BGSAVE_ERRORS.finding(
                where.path, where.line, "stop-writes-on-bgsave-error no with RDB snapshots as the only persistence",
                f"If snapshots start failing (disk full, permissions), Redis goes on accepting writes that never "
                f"reach the disk: a crash then loses everything since the last good snapshot ({types}), however "
                "old it is.",
                "Set stop-writes-on-bgsave-error yes (the default), or turn AOF on.",
            )
        yield from _eviction(conf, types)
        if production and settings.appendonly and not settings.rdb_preamble:
            where = settings.where["aof-use-rdb-preamble"]
            yield PREAMBLE.finding(
                where.path, where.line, "aof-use-rdb-preamble no",
                "Redis replays the whole AOF command by command at start: the restart and local-restore RTOs grow "
                "with the data set.",
                "Set aof-use-rdb-preamble yes (the default).",
            )
        yield from _renamed(conf.directives)


def _invalid(settings: Persistence) -> Iterable[Finding]:
    for bad in settings.invalid:
        yield INVALID.finding(
            bad.directive.path, bad.directive.line, f"{bad.directive}: {bad.detail}",
            "redis-server refuses to start with this value: after the next restart Redis stays down and every "
            "restore into it fails.",
            "Use a valid value (see the comments of the stock redis.conf).",
        )


def _duplicates(directives: Sequence[Directive]) -> Iterable[Finding]:
    seen: dict[str, list[Directive]] = defaultdict(list)
    for d in directives:
        if d.name in PERSISTENCE_DIRECTIVES and d.name != "save":
            seen[d.name].append(d)
    for name, occurrences in seen.items():
        if len(occurrences) < 2:
            continue
        last = occurrences[-1]
        earlier = ", ".join(f"{o.path.name}:{o.line}" for o in occurrences[:-1])
        yield DUPLICATE.finding(
            last.path, last.line, f"{name} is set {len(occurrences)} times; this one ({last}) wins over {earlier}",
            "Only the last value decides what a crash loses.",
            f"Keep a single {name} line.",
        )


def _eviction(conf: RedisConf, types: str) -> Iterable[Finding]:
    policy = conf.last("maxmemory-policy")
    limit = conf.last("maxmemory")
    if policy is None or not policy.args or policy.args[0].lower() not in EVICT_ANY or limit is None:
        return
    try:
        size = parse_memory(limit.args[0]) if limit.args else 0
    except ValueError:
        return
    if size <= 0:
        return
    yield EVICTION.finding(
        policy.path, policy.line, f"maxmemory {limit.value} with maxmemory-policy {policy.args[0]}",
        f"When Redis reaches {limit.value} it deletes keys of any kind, {types} included: data is lost without "
        "a crash, the backups copy the loss, and no RPO covers it.",
        "Use maxmemory-policy volatile-lru (evicts only keys with a TTL, such as caches) or noeviction, and give "
        "Redis enough memory.",
    )


def _renamed(directives: Sequence[Directive]) -> Iterable[Finding]:
    for d in directives:
        if d.name != "rename-command" or len(d.args) != 2:
            continue
        command, new = d.args[0].upper(), d.args[1]
        if command not in BACKUP_COMMANDS:
            continue
        what = "disables it" if new == "" else "gives it a name bdr does not know"
        yield RENAMED.finding(
            d.path, d.line, f"{d}: {what}",
            f"bdr backup redis needs {command}: backups fail, the newest usable backup ages, and a total loss "
            "then costs more than the RPO.",
            f"Keep {command} available to bdr's ACL user instead (ACL SETUSER bdr +{command.lower()}), or drop "
            "the rename-command line.",
        )
