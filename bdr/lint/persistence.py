"""Redis persistence settings and the writes a crash can cost.

Redis keeps its data in memory and puts it on disk in two ways:

- **RDB snapshots**, taken by ``save <seconds> <changes>`` rules: a snapshot is written when
  at least ``changes`` writes happened and ``seconds`` passed since the last one. With the
  runbook's ``save 900 1`` / ``save 300 10`` / ``save 60 10000``, a single write after a
  snapshot waits up to 900 s for the next one: a crash in between loses it.
- **AOF**, the append-only file (``appendonly yes``): every write is appended, and
  ``appendfsync`` decides when it reaches the disk: ``always`` (before the reply, nothing
  lost), ``everysec`` (up to about 2 s lost: one second plus a late fsync) or ``no`` (the
  kernel flushes, typically within 30 s). ``no-appendfsync-on-rewrite yes`` skips fsync
  while a rewrite runs, so the worst case becomes the kernel's 30 s.

When AOF is on, Redis loads only the AOF at start, so the AOF decides what a crash costs.
With neither, a restart comes back empty and everything since the last backup is lost.

How the directives combine is Redis's own logic: a later directive wins, except ``save``:
the first ``save`` line replaces the built-in defaults (``3600 1 300 100 60 10000``), the
next ones add rules, and ``save ""`` removes them all. Command-line options count as lines
after the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bdr.formats.redis_conf import Directive
from bdr.lint.findings import human_duration

REDIS_DEFAULT_SAVE: tuple[tuple[int, int], ...] = ((3600, 1), (300, 100), (60, 10000))
"""The rules Redis 7 uses when no ``save`` line is given."""

KERNEL_FLUSH_SECONDS = 30.0
"""How long Linux keeps dirty pages before writing them back (``vm.dirty_expire_centisecs``)."""

FSYNC_WINDOWS: Mapping[str, float] = {"always": 0.0, "everysec": 2.0, "no": KERNEL_FLUSH_SECONDS}

PERSISTENCE_DIRECTIVES = frozenset({
    "appendonly", "appendfsync", "save", "aof-use-rdb-preamble", "stop-writes-on-bgsave-error",
    "no-appendfsync-on-rewrite", "dir", "dbfilename", "appendfilename", "appenddirname",
})
"""The directives that decide what reaches the disk and where."""

_BOOLEANS = {"yes": True, "no": False}
_DEFAULTS = {
    "appendonly": "no",
    "appendfsync": "everysec",
    "aof-use-rdb-preamble": "yes",
    "stop-writes-on-bgsave-error": "yes",
    "no-appendfsync-on-rewrite": "no",
}
_CHOICES: Mapping[str, tuple[str, ...]] = {
    "appendonly": ("yes", "no"),
    "appendfsync": ("always", "everysec", "no"),
    "aof-use-rdb-preamble": ("yes", "no"),
    "stop-writes-on-bgsave-error": ("yes", "no"),
    "no-appendfsync-on-rewrite": ("yes", "no"),
}


@dataclass(frozen=True, slots=True)
class SaveRule:
    """``save <seconds> <changes>``; ``directive`` is None for a Redis default rule."""

    seconds: int
    changes: int
    directive: Directive | None = None

    def __str__(self) -> str:
        return f"save {self.seconds} {self.changes}"


@dataclass(frozen=True, slots=True)
class Invalid:
    """A persistence directive redis-server refuses (it will not start)."""

    directive: Directive
    detail: str


@dataclass(frozen=True, slots=True)
class Persistence:
    """The effective persistence settings of one Redis, with the directive behind each."""

    appendonly: bool
    appendfsync: str
    save_rules: tuple[SaveRule, ...]
    rdb_preamble: bool
    stop_writes_on_bgsave_error: bool
    no_appendfsync_on_rewrite: bool
    where: Mapping[str, Directive] = field(default_factory=dict)
    """The directive that set each setting last; absent means Redis's default."""
    save_cleared_by: Directive | None = None
    """The ``save ""`` that removed every rule (when no rule was added after it)."""
    invalid: tuple[Invalid, ...] = ()

    @property
    def rules_text(self) -> str:
        return ", ".join(str(r) for r in self.save_rules) or 'save ""'


def resolve(directives: Sequence[Directive]) -> Persistence:
    """Apply ``directives`` in order, as redis-server does at start."""
    values = dict(_DEFAULTS)
    where: dict[str, Directive] = {}
    invalid: list[Invalid] = []
    rules = [SaveRule(s, c) for s, c in REDIS_DEFAULT_SAVE]
    save_seen = False
    cleared_by: Directive | None = None
    for directive in directives:
        if directive.name == "save":
            parsed = _save_rules(directive)
            if isinstance(parsed, Invalid):
                invalid.append(parsed)
                continue
            if not save_seen or parsed is None:
                rules = []
                save_seen = True
            if parsed is None:
                cleared_by = directive
            else:
                rules.extend(parsed)
                cleared_by = None
            where["save"] = directive
        elif directive.name in _CHOICES:
            value = directive.args[0].lower() if len(directive.args) == 1 else None
            if value not in _CHOICES[directive.name]:
                invalid.append(Invalid(directive, f"{directive.name} must be one of "
                                                  f"{', '.join(_CHOICES[directive.name])}, got {directive.value!r}"))
                continue
            values[directive.name] = value
            where[directive.name] = directive
    return Persistence(
        appendonly=_BOOLEANS[values["appendonly"]],
        appendfsync=values["appendfsync"],
        save_rules=tuple(rules),
        rdb_preamble=_BOOLEANS[values["aof-use-rdb-preamble"]],
        stop_writes_on_bgsave_error=_BOOLEANS[values["stop-writes-on-bgsave-error"]],
        no_appendfsync_on_rewrite=_BOOLEANS[values["no-appendfsync-on-rewrite"]],
        where=where,
        save_cleared_by=cleared_by if not rules else None,
        invalid=tuple(invalid),
    )


def _save_rules(directive: Directive) -> list[SaveRule] | Invalid | None:
    """The rules of one ``save`` line; None for ``save ""`` (no rules)."""
    args = directive.args
    if not args or (len(args) == 1 and args[0] == ""):
        return None
    if len(args) % 2:
        return Invalid(directive, f"save takes pairs of <seconds> <changes>, got {directive.value!r}")
    rules = []
    for i in range(0, len(args), 2):
        try:
            seconds, changes = int(args[i]), int(args[i + 1])
        except ValueError:
            return Invalid(directive, f"save takes whole numbers, got {directive.value!r}")
        if seconds < 1 or changes < 0:
            return Invalid(directive, f"save needs seconds >= 1 and changes >= 0, got {directive.value!r}")
        rules.append(SaveRule(seconds, changes, directive))
    return rules


@dataclass(frozen=True, slots=True)
class CrashWindow:
    """The writes a crash of the Redis host can lose, from persistence alone.

    ``seconds`` is None when persistence does not bound it: then everything since the last
    backup is lost, and the backup schedule decides.
    """

    seconds: float | None
    mechanism: str
    explanation: str
    decided_by: Directive | None


def crash_window(settings: Persistence) -> CrashWindow:
    """The worst case a crash (process killed, host or power failure) costs with ``settings``."""
    if settings.appendonly:
        return _aof_window(settings)
    source = settings.where.get("appendonly")
    aof_off = f"appendonly no{_at(source)}"
    rules = settings.save_rules
    if not rules:
        cleared = settings.save_cleared_by
        return CrashWindow(
            None, 'appendonly no and save ""',
            f"{aof_off} and no save rules{_at(cleared) if cleared else ''}: Redis keeps nothing on disk, a "
            "restart comes back empty and everything written since the last backup is lost",
            cleared or source,
        )
    single = [r for r in rules if r.changes <= 1]
    if not single:
        fewest = min(r.changes for r in rules)
        return CrashWindow(
            None, f"appendonly no with {settings.rules_text}",
            f"{aof_off} and every save rule ({settings.rules_text}) needs at least {fewest} changes: fewer "
            f"writes after a snapshot are never saved, so a crash loses everything since the last backup",
            next((r.directive for r in rules if r.directive), source),
        )
    deciding = min(single, key=lambda r: r.seconds)
    return CrashWindow(
        float(deciding.seconds), f"appendonly no with {settings.rules_text}",
        f"{aof_off}: only RDB snapshots ({settings.rules_text}); a write just after a snapshot waits up to "
        f"{human_duration(deciding.seconds)} for the next one ({deciding}{_at(deciding.directive)}), so a crash "
        f"loses up to {human_duration(deciding.seconds)} of writes (plus the time a BGSAVE takes)",
        deciding.directive or source,
    )


def _aof_window(settings: Persistence) -> CrashWindow:
    fsync = settings.appendfsync
    where = settings.where.get("appendfsync") or settings.where.get("appendonly")
    seconds = FSYNC_WINDOWS[fsync]
    text = {
        "always": "appendonly yes, appendfsync always: every write is on disk before Redis replies",
        "everysec": "appendonly yes, appendfsync everysec: Redis fsyncs the AOF once a second, so a crash of "
                    "the host loses up to ~2 s of writes",
        "no": "appendonly yes, appendfsync no: the kernel decides when the AOF reaches the disk, so a crash of "
              "the host loses up to ~30 s of writes",
    }[fsync]
    if settings.no_appendfsync_on_rewrite and fsync == "everysec":
        seconds = KERNEL_FLUSH_SECONDS
        rewrite = settings.where.get("no-appendfsync-on-rewrite")
        text += (f", but no-appendfsync-on-rewrite yes{_at(rewrite)} skips fsync while a rewrite or BGSAVE "
                 "runs: a crash then loses up to ~30 s")
        where = rewrite or where
    return CrashWindow(seconds, f"AOF, appendfsync {fsync}", text, where)


def _at(directive: Directive | None) -> str:
    return f" ({directive.path.name}:{directive.line})" if directive is not None else ""
