"""Human durations (``90s``, ``5m``, ``1h``, ``30d``, ``1y``) to seconds and back."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
DURATION_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*([smhdwy]?)\s*$"
"""A duration as written: a number and an optional unit (also the JSON Schema's pattern of one)."""
_PATTERN = re.compile(DURATION_PATTERN)


def parse_duration(value: str | int | float) -> float:
    """Seconds in ``value``: a number of seconds or a number with a unit (s, m, h, d, w, y)."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"negative duration: {value!r}")
        return float(value)
    if not isinstance(value, str):  # a list, a mapping, null in a YAML file: a clear error, not a TypeError
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 5m, 1h, 30d)")
    match = _PATTERN.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 5m, 1h, 30d)")
    number, unit = match.groups()
    return float(number) * _UNITS[unit or "s"]


def format_duration(seconds: float) -> str:
    """A short human form: ``850ms``, ``12.3s``, ``4m05s``, ``2h10m``, ``3d4h``."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if round(seconds * 1000) < 1000:
        return f"{seconds * 1000:.0f}ms"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)  # round first: 3599.6 s is 1h00m, not 60m00s
    if whole < 3600:
        minutes, secs = divmod(whole, 60)
        return f"{minutes}m{secs:02d}s"
    if whole < 86400:
        hours, rest = divmod(whole, 3600)
        return f"{hours}h{rest // 60:02d}m"
    days, rest = divmod(whole, 86400)
    return f"{days}d{rest // 3600}h"
