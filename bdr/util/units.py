"""Quantities as people read and write them: ``512 B``, ``3.4 MiB``, ``16MiB``."""

from __future__ import annotations

import re


def format_bytes(count: float) -> str:
    """``512 B``, ``12.0 MiB`` (binary units, one decimal)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TiB"


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 1000 ** 2,
               "mib": 1 << 20, "g": 1 << 30, "gb": 1000 ** 3, "gib": 1 << 30}


SIZE_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG](?:[iI]?[bB])?|[bB])?\s*$"
"""A size as written: a number and an optional unit (also the JSON Schema's pattern of one)."""


def parse_size(text: str) -> int | None:
    """Bytes in ``16MiB``, ``512k``, ``1.5GB`` or ``1048576`` (k, m, g are binary); None when it is not a size."""
    match = re.match(SIZE_PATTERN, text)
    if match is None:
        return None
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])
