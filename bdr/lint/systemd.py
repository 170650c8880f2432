"""systemd timers that take backups: their calendar, the service they start, and what that service runs.

``bdr lint`` holds installed timers to the RPO the way it holds ``schedule:`` and crontabs
(:mod:`bdr.lint.schedule`): a ``*.timer`` is read for its ``OnCalendar=`` lines (several
lines: their runs merge) and ``Persistent=``, the service it starts (``Unit=``, else the
timer's own name) for its ``ExecStart=`` lines, and each command line is recognised like a
crontab's (``bdr backup <source>``, the old scripts, the snapshot API). A monotonic timer
(``OnUnitActiveSec=``, ``OnUnitInactiveSec=``) runs at a fixed interval.

``OnCalendar=`` is read as systemd defines it (``systemd.time(7)``) for what schedules use:
the shorthands (``hourly``, ``daily``, ``weekly`` ...), an optional weekday list
(``Mon..Fri``, ``Sat,Sun``), a date (``*-*-01``, ``*-01,07-01``) and a time
(``*:00/15``, ``02:30``), each field ``*``, a value, a list, a range ``a..b`` or a repetition
``a/b``. Unlike cron, weekday and date must *both* match. A year other than ``*``, ``~``
(the last days of a month) and time zones are reported, not guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bdr.lint.schedule import (
    COMMAND_RECOGNISERS,
    CronError,
    CronExpr,
    CrontabProblem,
    ScheduledBackup,
    command_tokens,
)
from bdr.util.durations import parse_duration

SHORTHANDS = {
    "minutely": "*-*-* *:*:00", "hourly": "*-*-* *:00:00", "daily": "*-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00", "weekly": "Mon *-*-* 00:00:00", "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00", "quarterly": "*-01,04,07,10-01 00:00:00",
    "semiannually": "*-01,07-01 00:00:00",
}
_WEEKDAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_LONG_WEEKDAYS = {name: i for i, name in enumerate(
    ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"))}
_WEEKDAY_WORD = re.compile(r"^[A-Za-z]+(\.\.[A-Za-z]+)?(,[A-Za-z]+(\.\.[A-Za-z]+)?)*$")


def _values(text: str, low: int, high: int, what: str) -> frozenset[int]:
    """One calendar field: ``*``, ``5``, ``1,15``, ``1..5``, ``0/15``, ``*/15``, ``8..18/2``."""
    out: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"empty item in the {what} of {text!r}")
        body, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"bad repetition {step_text!r} in the {what} {text!r}")
            step = int(step_text)
        if body == "*":
            first, last = low, high
        elif ".." in body:
            a, _, b = body.partition("..")
            first, last = _number(a, low, high, what), _number(b, low, high, what)
            if first > last:
                raise CronError(f"range {body!r} runs backwards in the {what}")
        else:
            first = _number(body, low, high, what)
            last = high if step_text else first
        out.update(range(first, last + 1, step))
    return frozenset(out)


def _number(text: str, low: int, high: int, what: str) -> int:
    if "~" in text:
        raise CronError(f"{text!r}: '~' (counting from the end of the month) is not supported by bdr lint")
    if not text.isdigit():
        raise CronError(f"{text!r} is not a valid {what}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{what} {value} is out of range {low}..{high}")
    return value


def _weekday(name: str) -> int:
    lowered = name.lower()
    if lowered in _WEEKDAYS:
        return _WEEKDAYS[lowered]
    if lowered in _LONG_WEEKDAYS:
        return _LONG_WEEKDAYS[lowered]
    raise CronError(f"{name!r} is not a weekday")


def _weekdays(text: str) -> frozenset[int]:
    out: set[int] = set()
    for item in text.split(","):
        if ".." in item:
            a, _, b = item.partition("..")
            first, last = _weekday(a), _weekday(b)
            out.update(range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)])
        else:
            out.add(_weekday(item))
    return frozenset(out)


def parse_calendar(text: str) -> CronExpr:
    """An ``OnCalendar=`` value as the minutes it fires at; :class:`CronError` for what bdr cannot read."""
    original = text.strip()
    spec = SHORTHANDS.get(original.lower(), original)
    words = spec.split()
    weekdays = frozenset(range(7))
    if words and _WEEKDAY_WORD.match(words[0]) and words[0].lower() not in SHORTHANDS:
        weekdays = _weekdays(words.pop(0))
    date, time = "*-*-*", "00:00:00"
    for word in words:
        if ":" in word:
            time = word
        elif "-" in word:
            date = word
        else:
            raise CronError(f"{original!r}: {word!r} (a time zone?) is not supported by bdr lint")
    parts = date.split("-")
    if len(parts) == 2:
        parts = ["*", *parts]
    if len(parts) != 3:
        raise CronError(f"{original!r}: the date must be YEAR-MONTH-DAY or MONTH-DAY")
    if parts[0] not in ("*", ""):
        raise CronError(f"{original!r}: a calendar bound to a year runs out; bdr lint does not judge it")
    clock = time.split(":")
    if len(clock) not in (2, 3):
        raise CronError(f"{original!r}: the time must be HOUR:MINUTE[:SECOND]")
    return CronExpr(
        text=original,
        minutes=_values(clock[1], 0, 59, "minute"),
        hours=_values(clock[0], 0, 23, "hour"),
        days=_values(parts[2], 1, 31, "day"),
        months=_values(parts[1], 1, 12, "month"),
        weekdays=weekdays,
        day_or=False,
    )


@dataclass(frozen=True, slots=True)
class UnitFile:
    """A unit file's settings: ``(section, key) -> values`` in file order, with line numbers."""

    path: Path
    settings: dict[tuple[str, str], list[tuple[str, int]]] = field(default_factory=dict)

    def get(self, section: str, key: str) -> list[tuple[str, int]]:
        return self.settings.get((section, key), [])


def read_unit(path: Path) -> UnitFile:
    """Parse a unit file (sections, ``Key=value``, comments, ``\\`` continuations; an empty value resets)."""
    unit = UnitFile(path)
    section = ""
    pending = ""
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            start = start or number
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        where, start = start or number, 0
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        values = unit.settings.setdefault((section, key.strip()), [])
        if not value.strip():
            values.clear()
        else:
            values.append((value.strip(), where))
    return unit


def _exec_argv(value: str) -> list[str]:
    """An ``ExecStart=`` value's words, its prefixes (``-@:+!``) dropped."""
    return command_tokens(value.lstrip("-@:+!"))


@dataclass(frozen=True, slots=True)
class TimerSchedule:
    """What one timer schedules: the backups its service takes, and how the timer is set up."""

    timer: Path
    service: Path | None
    backups: tuple[ScheduledBackup, ...]
    persistent: bool
    line: int | None


def read_timer(timer: Path) -> tuple[TimerSchedule | None, list[CrontabProblem]]:
    """The backups ``timer`` schedules (None when its service takes none)."""
    unit = read_unit(timer)
    target = next((v for v, _ in unit.get("Timer", "Unit")), f"{timer.stem}.service")
    service = timer.parent / target
    if not service.is_file():
        return None, [CrontabProblem(timer, 1, f"its service {target} is not next to it: bdr lint cannot tell what "
                                     "it runs (lint the directory that holds both)")]
    calls = [c for value, _ in read_unit(service).get("Service", "ExecStart")
             for recognise in COMMAND_RECOGNISERS for c in recognise(_exec_argv(value))]
    if not calls:
        return None, []
    problems: list[CrontabProblem] = []
    exprs: list[CronExpr] = []
    texts: list[str] = []
    first_line: int | None = None
    for value, number in unit.get("Timer", "OnCalendar"):
        first_line = first_line or number
        try:
            exprs.append(parse_calendar(value))
            texts.append(f"OnCalendar={value}")
        except CronError as exc:
            problems.append(CrontabProblem(timer, number, str(exc)))
    interval: float | None = None
    for key in ("OnUnitActiveSec", "OnUnitInactiveSec"):
        for value, number in unit.get("Timer", key):
            first_line = first_line or number
            try:
                interval = parse_duration(_systemd_span(value))
                texts.append(f"{key}={value}")
            except ValueError as exc:
                problems.append(CrontabProblem(timer, number, f"{key}={value}: {exc}"))
    if not exprs and interval is None:
        problems.append(CrontabProblem(timer, 1, "no OnCalendar= (or OnUnitActiveSec=) line: the timer never fires "
                                       "on a schedule"))
        return None, problems
    persistent = any(v.lower() in ("true", "yes", "1", "on") for v, _ in unit.get("Timer", "Persistent"))
    text = "; ".join(texts)
    backups = tuple(
        ScheduledBackup(c.source, text, timer, first_line, c.program, keep_sets=c.keep_sets,
                        keep_days=c.keep_days, offsite=c.offsite, exprs=tuple(exprs), interval=interval)
        for c in calls
    )
    return TimerSchedule(timer, service, backups, persistent, first_line), problems


_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|second|seconds|m|min|minute|minutes|h|hr|hour|hours|d|day|days|"
                   r"w|week|weeks)?\s*$")
_SPAN_UNITS = {"s": "s", "sec": "s", "second": "s", "seconds": "s", "m": "m", "min": "m", "minute": "m",
               "minutes": "m", "h": "h", "hr": "h", "hour": "h", "hours": "h", "d": "d", "day": "d", "days": "d",
               "w": "w", "week": "w", "weeks": "w"}


def _systemd_span(value: str) -> str:
    """A systemd time span (``30min``, ``1h``, ``2 days``) as bdr's duration text (one unit only)."""
    match = _SPAN.match(value)
    if not match:
        raise ValueError(f"not a time span bdr lint reads: {value!r}")
    number, unit = match.groups()
    return f"{number}{_SPAN_UNITS[unit or 's']}"


def timers_in(directories: Iterable[Path]) -> list[Path]:
    """The ``*.timer`` files of ``directories`` (an installed unit directory, a checkout's ``systemd/``)."""
    found: list[Path] = []
    for directory in directories:
        if directory.is_file() and directory.suffix == ".timer":
            found.append(directory)
        elif directory.is_dir():
            found += sorted(p for p in directory.glob("*.timer") if p.is_file())
    return list(dict.fromkeys(found))


def read_timers(timers: Sequence[Path]) -> tuple[list[TimerSchedule], list[CrontabProblem]]:
    schedules: list[TimerSchedule] = []
    problems: list[CrontabProblem] = []
    for timer in timers:
        found, trouble = read_timer(timer)
        problems += trouble
        if found is not None:
            schedules.append(found)
    return schedules, problems
