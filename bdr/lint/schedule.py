"""Backup schedules: cron expressions, crontab files, and the longest gap between two runs.

The recovery point of a total loss is the age of the newest backup, so what matters about a
schedule is its *worst-case interval*: the longest time between two runs (``0 * * * *``:
1 h; ``0 2 * * *``: 24 h; ``0 2 * * 1-5``: 72 h over a weekend). :func:`cadence` finds it by
walking the calendar (eight years from 2024-01-01, enough for every leap-year and weekday
pattern) with cron's own day rule: when both day-of-month and day-of-week are restricted, a
day matches either; when one starts with ``*``, both must match. Several expressions for the
same source (the runbook's hourly and daily lines) combine: their runs are merged first.
Times are wall-clock minutes; a daylight-saving jump can make one night's gap an hour longer.
croniter expands the fields and iterates the next runs (:meth:`CronExpr.next_runs`); bdr keeps
cron's grammar, its day rule and the worst-gap walk on top.

A crontab is read for the lines that take backups: ``bdr backup <source>`` (any path to
``bdr`` or ``python -m bdr.cli.main``), the old ``backup-redis.sh`` / ``backup-qdrant.sh``,
and calls of Qdrant's snapshot API. Both the user format (five fields and a command) and the
system format (``/etc/crontab``, ``cron.d``: a user field too) work, as do ``@daily`` macros.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path, PurePosixPath

from croniter import CroniterError, croniter

from bdr.sources import required_names, source_names

HORIZON_START = date(2024, 1, 1)
HORIZON_DAYS = 8 * 365 + 2
MINUTES_PER_DAY = 1440

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_MONTHS = {name: i for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_DAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 0, 7, _DAYS),
)
_ALL_DAYS = frozenset(range(1, 32))
_ALL_WEEKDAYS = frozenset(range(7))


class CronError(ValueError):
    """A cron expression cron would refuse, or one that never runs."""


@dataclass(frozen=True, slots=True)
class CronExpr:
    """A parsed five-field cron expression (Sunday is 0; 7 is accepted for Sunday too)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_or: bool
    """Both day fields are restricted: a day matches when either does (cron's rule)."""

    def runs_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        by_weekday = (day.weekday() + 1) % 7 in self.weekdays
        return (by_date or by_weekday) if self.day_or else (by_date and by_weekday)

    @property
    def day_minutes(self) -> tuple[int, ...]:
        """The minutes of a matching day at which it runs, sorted."""
        return tuple(sorted(h * 60 + m for h in self.hours for m in self.minutes))

    def next_runs(self, after: datetime) -> Iterator[datetime]:
        """The runs after ``after`` (wall-clock, naive), in order, by croniter over the parsed fields."""
        every_day = self.day_or and (len(self.days) == 31 or len(self.weekdays) == 7)
        fields = [self.minutes, self.hours, _ALL_DAYS if every_day else self.days, self.months,
                  _ALL_WEEKDAYS if every_day else self.weekdays]
        canonical = " ".join(",".join(str(v) for v in sorted(values)) for values in fields)
        runs = croniter(canonical, after, day_or=self.day_or and not every_day)
        while True:
            yield runs.get_next(datetime)


def parse_cron(text: str) -> CronExpr:
    """Parse ``text`` (five fields or a macro such as ``@hourly``); :class:`CronError` if invalid.

    bdr checks cron's own grammar (what Vixie cron and cronie accept, with a message naming the
    field), croniter expands the fields. croniter's extensions (``L``, ``W``, ``#``, ``?``, ``H``,
    a seconds or year field) are refused: cron would not run such a line.
    """
    original = text.strip()
    if original.lower() == "@reboot":
        raise CronError("@reboot runs only when the machine starts: it is not a schedule")
    parts = MACROS.get(original.lower(), original).split()
    if len(parts) != 5:
        raise CronError(f"{original!r} has {len(parts)} fields; cron needs 5 (minute hour day month weekday)")
    checked = [_check_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    try:
        expanded, _ = croniter.expand(" ".join(checked))
    except CroniterError as exc:
        raise CronError(f"{original!r} is not a valid cron expression: {exc}") from exc
    values = [frozenset(range(spec.low, spec.high + 1) if field == ["*"] else (int(v) for v in field))
              for field, spec in zip(expanded, _FIELDS, strict=True)]
    return CronExpr(
        text=original, minutes=values[0], hours=values[1], days=values[2], months=values[3],
        weekdays=frozenset(d % 7 for d in values[4]),
        day_or=not parts[2].startswith("*") and not parts[4].startswith("*"),
    )


_ITEM = re.compile(r"(?P<first>\*|\w+)(?:-(?P<last>\w+))?(?:/(?P<step>\w+))?", re.ASCII)


def _check_field(text: str, spec: _Field) -> str:
    """``text`` as cron reads it, for croniter: every value checked, ``N-N`` written ``N``, ``N/S``
    written ``N-MAX/S`` (cronie's reading: ``1/2`` in day of week includes 7, Sunday)."""
    items: list[str] = []
    for item in text.split(","):
        if not item:
            raise CronError(f"empty item in {spec.name} field {text!r}")
        match = _ITEM.fullmatch(item)
        if match is None or (match["first"] == "*" and match["last"] is not None):
            raise CronError(f"{item!r} in the {spec.name} field is not cron syntax (cron has no L, W, #, ? or H)")
        first, last, step = match["first"], match["last"], match["step"]
        if step is not None and (not step.isdigit() or int(step) == 0):
            raise CronError(f"bad step {step!r} in {spec.name} field {text!r}")
        if first != "*" and (last is not None or step is not None):
            low = _value(first, spec)
            high = spec.high if last is None else _value(last, spec)
            if low > high:
                span = f"{first}-{last}"
                raise CronError(f"range {span!r} runs backwards in {spec.name} field")
            # croniter reads an equal range as the whole cycle: cron, as the one value
            item = first if low == high else f"{first}-{last or spec.high}/{step or 1}"
        elif first != "*":
            _value(first, spec)
        items.append(item)
    return ",".join(items)


def _value(text: str, spec: _Field) -> int:
    lowered = text.lower()
    if lowered in spec.names:
        return spec.names[lowered]
    if not text.isdigit():
        raise CronError(f"{text!r} is not a valid {spec.name}")
    value = int(text)
    if not spec.low <= value <= spec.high:
        raise CronError(f"{spec.name} {value} is out of range {spec.low}-{spec.high}")
    return value


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often a set of cron expressions runs: the longest and the mean gap, in seconds."""

    worst_gap: float
    mean_gap: float
    runs: int


def cadence(exprs: Sequence[CronExpr]) -> Cadence | None:
    """The gaps between the merged runs of ``exprs``; None when they run less than twice in 8 years."""
    if not exprs:
        return None
    daily: dict[frozenset[int], tuple[int, int, int, int]] = {}
    worst = 0
    runs = 0
    first_run: int | None = None
    last_run: int | None = None
    for offset in range(HORIZON_DAYS):
        day = HORIZON_START + timedelta(days=offset)
        matching = frozenset(i for i, e in enumerate(exprs) if e.runs_on(day))
        if not matching:
            continue
        if matching not in daily:
            minutes = sorted({m for i in matching for m in exprs[i].day_minutes})
            inner = max((b - a for a, b in itertools.pairwise(minutes)), default=0)
            daily[matching] = (minutes[0], minutes[-1], inner, len(minutes))
        first, last, inner, count = daily[matching]
        base = offset * MINUTES_PER_DAY
        if last_run is not None:
            worst = max(worst, base + first - last_run)
        else:
            first_run = base + first
        worst = max(worst, inner)
        last_run = base + last
        runs += count
    if runs < 2 or first_run is None or last_run is None:
        return None
    return Cadence(worst_gap=worst * 60.0, mean_gap=(last_run - first_run) * 60.0 / (runs - 1), runs=runs)


# --- crontab files -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduledBackup:
    """One scheduled backup of a source, from ``schedule:`` in bdr.yaml or a crontab line."""

    source: str
    cron: str
    path: Path | None
    line: int | None
    program: str
    """What runs: ``bdr backup redis``, ``backup-redis.sh``, ``Qdrant snapshot API``."""
    keep_sets: int | None = None
    """``bdr backup --keep N``: the N newest sets are kept, older ones deleted."""
    keep_days: int | None = None
    """The old scripts' ``--keep N``: N days of history."""
    offsite: bool = False
    """The job sends its backup off-site (``--remote``)."""
    exprs: tuple[CronExpr, ...] = ()
    """A systemd timer's calendar, already parsed (``cron`` then only names it); empty: parse ``cron``."""
    interval: float | None = None
    """A monotonic timer's fixed interval (``OnUnitActiveSec=``), in seconds."""

    def calendar(self) -> tuple[CronExpr, ...]:
        """The expressions the entry runs on (:class:`CronError` for a cron line that does not parse)."""
        return self.exprs if self.exprs or self.interval is not None else (parse_cron(self.cron),)


def schedule_cadence(entries: Sequence[ScheduledBackup]) -> Cadence | None:
    """How often ``entries`` together run: their calendars merged; a monotonic timer bounds the gap by its
    interval. Entries that do not parse are left out; None when nothing runs twice."""
    exprs: list[CronExpr] = []
    intervals: list[float] = []
    for entry in entries:
        try:
            exprs += entry.calendar()
        except CronError:
            continue
        if entry.interval is not None:
            intervals.append(entry.interval)
    found = cadence(exprs)
    if not intervals:
        return found
    shortest = min(intervals)
    if found is None or shortest < found.worst_gap:
        return Cadence(worst_gap=shortest, mean_gap=min(shortest, found.mean_gap) if found else shortest,
                       runs=found.runs if found else 0)
    return found


@dataclass(frozen=True, slots=True)
class CrontabProblem:
    path: Path
    line: int
    detail: str


@dataclass(frozen=True, slots=True)
class _Call:
    source: str
    program: str
    keep_sets: int | None = None
    keep_days: int | None = None
    offsite: bool = False


_SOURCES = source_names()
_ALL = tuple(name for name in source_names() if name in required_names())
"""What ``bdr backup all`` always takes (an optional source too: :mod:`bdr.lint.source_schedule` counts it)."""
_ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")


def _keep(tokens: Sequence[str]) -> int | None:
    for i, token in enumerate(tokens):
        value = token.split("=", 1)[1] if token.startswith("--keep=") else (
            tokens[i + 1] if token == "--keep" and i + 1 < len(tokens) else None)
        if value is not None and value.isdigit():
            return int(value)
    return None


def _offsite(tokens: Sequence[str]) -> bool:
    return any(t == "--remote" or t.startswith("--remote=") for t in tokens)


def _bdr_calls(tokens: Sequence[str]) -> list[_Call]:
    for i, token in enumerate(tokens):
        if PurePosixPath(token).name not in ("bdr", "bdr.cli.main"):
            continue
        rest = tokens[i + 1:]
        if "backup" not in rest:
            continue
        after = rest[rest.index("backup") + 1:]
        source = next((t for t in after if t in (*_SOURCES, "all")), None)
        if source is None:
            continue
        keep, offsite = _keep(after), _offsite(after)
        return [_Call(s, f"bdr backup {source}", keep_sets=keep, offsite=offsite)
                for s in (_ALL if source == "all" else (source,))]
    return []


def _script_calls(tokens: Sequence[str]) -> list[_Call]:
    scripts = {"backup-redis.sh": "redis", "backup-qdrant.sh": "qdrant"}
    for i, token in enumerate(tokens):
        name = PurePosixPath(token).name
        if name in scripts:
            return [_Call(scripts[name], name, keep_days=_keep(tokens[i + 1:]), offsite=_offsite(tokens[i + 1:]))]
    return []


def _qdrant_api_calls(tokens: Sequence[str]) -> list[_Call]:
    if any(PurePosixPath(t).name == "curl" for t in tokens) and any("/snapshots" in t for t in tokens) and (
        "POST" in tokens or "-XPOST" in tokens
    ):
        return [_Call("qdrant", "Qdrant snapshot API")]
    return []


COMMAND_RECOGNISERS: tuple[Callable[[Sequence[str]], list[_Call]], ...] = (
    _bdr_calls, _script_calls, _qdrant_api_calls,
)
"""Each turns the words of a crontab command into the backups it takes (none: not a backup)."""


def command_tokens(command: str) -> list[str]:
    """The words of a command line as a shell would split them (cron's ``%`` ends it)."""
    return _command_tokens(command)


def _command_tokens(command: str) -> list[str]:
    command = re.split(r"(?<!\\)%", command, maxsplit=1)[0]
    try:
        return shlex.split(command, comments=True)
    except ValueError:
        return command.split()


def parse_crontab(path: Path, text: str | None = None) -> tuple[list[ScheduledBackup], list[CrontabProblem]]:
    """The backups a crontab file schedules, and the problems of its backup lines."""
    if text is None:
        text = path.read_text(encoding="utf-8", errors="replace")
    found: list[ScheduledBackup] = []
    problems: list[CrontabProblem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or _ENV_LINE.match(line):
            continue
        if line.startswith("@"):
            cron, _, command = line.partition(" ")
        else:
            fields = line.split(None, 5)
            cron, command = " ".join(fields[:5]), (fields[5] if len(fields) > 5 else "")
        tokens = _command_tokens(command)
        calls = [call for recognise in COMMAND_RECOGNISERS for call in recognise(tokens)]
        if not calls:
            continue
        try:
            parse_cron(cron)
        except CronError as exc:
            problems.append(CrontabProblem(path, number, str(exc)))
            continue
        found.extend(
            ScheduledBackup(c.source, cron, path, number, c.program, keep_sets=c.keep_sets, keep_days=c.keep_days,
                            offsite=c.offsite)
            for c in calls
        )
    return found, problems
