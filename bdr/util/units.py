"""Quantities as people read them: ``512 B``, ``3.4 MiB``."""

from __future__ import annotations


def format_bytes(count: float) -> str:
    """``512 B``, ``12.0 MiB`` (binary units, one decimal)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TiB"
