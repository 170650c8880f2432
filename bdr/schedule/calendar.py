"""A cron expression as systemd ``OnCalendar=`` lines that fire at exactly the same minutes.

Both read local time. Each field becomes ``*``, a repetition (``00/15``: 0, 15, 30, 45) or a
list of the values cron would run on. The day rule is the one difference: when both
day-of-month and day-of-week are restricted, cron runs on a day matching *either*, while one
``OnCalendar=`` needs both, so such an expression becomes two lines (a timer fires on the
union of its lines). ``@daily`` and the other macros are expanded first (:mod:`bdr.lint.schedule`).
"""

from __future__ import annotations

from collections.abc import Iterable

from bdr.lint.schedule import CronExpr, parse_cron

WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def _field(values: Iterable[int], low: int, high: int, width: int = 2) -> str:
    chosen = sorted(set(values))
    if chosen == list(range(low, high + 1)):
        return "*"
    if len(chosen) > 2:
        step = chosen[1] - chosen[0]
        if step > 1 and chosen == list(range(chosen[0], high + 1, step)) and chosen[-1] + step > high:
            return f"{chosen[0]:0{width}d}/{step}"
        if chosen == list(range(chosen[0], chosen[-1] + 1)):
            return f"{chosen[0]:0{width}d}..{chosen[-1]:0{width}d}"
    return ",".join(f"{v:0{width}d}" for v in chosen)


def _weekdays(values: Iterable[int]) -> str:
    return ",".join(WEEKDAYS[d] for d in sorted(set(values)))


def on_calendar(expr: CronExpr | str) -> list[str]:
    """The ``OnCalendar=`` values equivalent to ``expr`` (one, or two for cron's either-day rule)."""
    cron = parse_cron(expr) if isinstance(expr, str) else expr
    time = f"{_field(cron.hours, 0, 23)}:{_field(cron.minutes, 0, 59)}:00"
    months = _field(cron.months, 1, 12)
    days = _field(cron.days, 1, 31)
    every_weekday = set(cron.weekdays) == set(range(7))
    if cron.day_or:
        return [f"*-{months}-{days} {time}", f"{_weekdays(cron.weekdays)} *-{months}-* {time}"]
    prefix = "" if every_weekday else f"{_weekdays(cron.weekdays)} "
    return [f"{prefix}*-{months}-{days} {time}"]
