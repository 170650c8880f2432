"""Production, only read: what it looked like before and after a live restore test.

Before and after each source's test, bdr reads production with read-only requests and
nothing else (no backup, no CONFIG SET, no write): each source's profile
(:mod:`bdr.drill.profiles`) says how, and what proves it untouched: the same process that
was not restarted, and every count equal or only grown by the application (a Redis key
count that fell is accepted only as far as Redis itself expired or evicted keys meanwhile;
files must be identical). Anything else is a failed verification: a BREACH.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

OPTIONAL_FIELDS = frozenset({"run_id", "uptime_seconds", "expired", "evicted", "files"})
"""The fields of :class:`ProductionState` only some sources fill (each profile names its own)."""


@dataclass(frozen=True, slots=True)
class ProductionState:
    """One read of production; ``error`` when it could not be read."""

    source: str
    instance: str
    address: str
    at: str
    pid: int | None = None
    run_id: str = ""
    uptime_seconds: int | None = None
    version: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    """Redis: keys per db (``db0``); Qdrant: points per collection; config: bytes per file."""
    expired: int = 0
    evicted: int = 0
    files: dict[str, str] = field(default_factory=dict)
    """config: path -> sha256 (or ``secret size=.. mode=.. mtime=..``)."""
    error: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self, fields: frozenset[str] = OPTIONAL_FIELDS) -> dict[str, Any]:
        """The read for the evidence: the source's own ``fields`` of :data:`OPTIONAL_FIELDS`, and what is set."""
        return {k: v for k, v in asdict(self).items()
                if v not in ("", None) and (k not in OPTIONAL_FIELDS or k in fields)}


def now() -> str:
    from bdr.repository.manifest import to_iso, utcnow

    return to_iso(utcnow())


def observed_state(source: str, name: str, read: Mapping[str, object], at: str) -> ProductionState:
    """A monitoring service's read (:mod:`bdr.drill.observed`) as a :class:`ProductionState`."""
    counts = read["counts"]
    assert isinstance(counts, dict)
    return ProductionState(source, name, str(read["address"]), at, run_id=str(read.get("run_id", "")),
                           version=str(read.get("version", "")), counts={str(k): int(v) for k, v in counts.items()})


def grown(what: str, before: int, after: int) -> str:
    if after == before:
        return f"{what} equal ({after})"
    return f"{what} {before} → {after}: only grown (+{after - before}, written by the application)"
