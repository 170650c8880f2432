"""The history of drill runs: one JSON line per run in ``<reports>/history.jsonl``.

Each run appends a line with its id, time, and per scenario the verdict and the achieved
RTO and RPO with their targets (seconds). The report reads it back to show the trend over
past runs. Reading is tolerant: a torn or hand-edited line is skipped (and counted, so the
report can say so), never fatal. The line format is documented in ``drills/README.md``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdr.report.records import RunReport
from bdr.report.files import append_line
from bdr.report.verdict import Verdict, verdict_of

logger = logging.getLogger(__name__)

HISTORY_FILE = "history.jsonl"
HISTORY_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class ScenarioRecord:
    """One scenario of one past run: its verdict and achieved objectives (seconds)."""

    verdict: Verdict
    rto_seconds: float | None = None
    rto_target_seconds: float | None = None
    rpo_seconds: dict[str, float | None] = field(default_factory=dict)
    rpo_target_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": str(self.verdict),
            "rto_seconds": self.rto_seconds,
            "rto_target_seconds": self.rto_target_seconds,
            "rpo_seconds": dict(self.rpo_seconds),
            "rpo_target_seconds": dict(self.rpo_target_seconds),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScenarioRecord:
        return cls(
            verdict=Verdict(data["verdict"]),
            rto_seconds=_seconds(data.get("rto_seconds")),
            rto_target_seconds=_seconds(data.get("rto_target_seconds")),
            rpo_seconds={str(k): _seconds(v) for k, v in _mapping(data.get("rpo_seconds")).items()},
            rpo_target_seconds={
                str(k): s for k, v in _mapping(data.get("rpo_target_seconds")).items() if (s := _seconds(v)) is not None
            },
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One run of the drill suite, as remembered for the trend."""

    run_id: str
    time: str
    """ISO 8601 UTC start of the run."""
    all_targets_met: bool
    scenarios: dict[str, ScenarioRecord]
    scale: str = ""
    runtime: str = ""

    def to_json_line(self) -> str:
        return json.dumps({
            "schema_version": HISTORY_SCHEMA_VERSION,
            "run_id": self.run_id,
            "time": self.time,
            "all_targets_met": self.all_targets_met,
            "scale": self.scale,
            "runtime": self.runtime,
            "scenarios": {name: record.to_dict() for name, record in self.scenarios.items()},
        }, sort_keys=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryEntry:
        scenarios = _mapping(data["scenarios"])
        return cls(
            run_id=_text(data["run_id"]),
            time=_text(data["time"]),
            all_targets_met=bool(data.get("all_targets_met", False)),
            scenarios={str(name): ScenarioRecord.from_dict(_mapping(rec)) for name, rec in scenarios.items()},
            scale=str(data.get("scale", "")),
            runtime=str(data.get("runtime", "")),
        )


@dataclass(frozen=True, slots=True)
class History:
    """The past runs, oldest first, and how many lines could not be read."""

    entries: tuple[HistoryEntry, ...] = ()
    ignored_lines: int = 0

    def including(self, entry: HistoryEntry) -> History:
        """These runs plus ``entry`` (replacing a run with the same id), oldest first."""
        return History(_ordered([*self.entries, entry]), self.ignored_lines)

    def until(self, run_id: str) -> History:
        """Only the runs up to and including ``run_id`` (the trend as it was on that run)."""
        anchor = next((e for e in self.entries if e.run_id == run_id), None)
        if anchor is None:
            return self
        return History(tuple(e for e in self.entries if e.time <= anchor.time), self.ignored_lines)


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One objective of one scenario in one past run."""

    run_id: str
    time: str
    achieved_seconds: float | None
    target_seconds: float | None
    verdict: Verdict

    @property
    def met(self) -> bool:
        return (self.achieved_seconds is not None and self.target_seconds is not None
                and self.achieved_seconds <= self.target_seconds)


def entry_of(report: RunReport) -> HistoryEntry:
    """The history line of a run."""
    scenarios: dict[str, ScenarioRecord] = {}
    for result in report.results:
        rto = result.rto
        scenarios[result.scenario] = ScenarioRecord(
            verdict=verdict_of(result),
            rto_seconds=_rounded(rto.achieved_seconds) if rto else None,
            rto_target_seconds=rto.target_seconds if rto else None,
            rpo_seconds={c.name: _rounded(c.achieved_seconds) for c in result.rpos},
            rpo_target_seconds={c.name: c.target_seconds for c in result.rpos},
        )
    return HistoryEntry(
        run_id=report.run_id,
        time=report.started_at,
        all_targets_met=report.all_met,
        scenarios=scenarios,
        scale=str(report.environment.get("scale", "")),
        runtime=str(report.environment.get("runtime", "")),
    )


def append_history(path: Path, entry: HistoryEntry) -> None:
    """Add one run to the history file (created if missing)."""
    append_line(path, entry.to_json_line())
    logger.debug("appended run %s to %s", entry.run_id, path)


def read_history(path: Path) -> History:
    """Every readable run in ``path``, oldest first; a missing file is an empty history."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return History()
    except OSError as exc:
        logger.warning("cannot read drill history %s: %s; the trend is left out", path, exc)
        return History()
    entries: list[HistoryEntry] = []
    ignored = 0
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line.decode("utf-8"))
            entries.append(HistoryEntry.from_dict(_mapping(data)))
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            ignored += 1
            logger.warning("%s line %d is not a drill history record (%s); skipped", path, number, exc)
    return History(_ordered(entries), ignored)


def trend(history: History, scenario: str, kind: str, name: str = "") -> list[TrendPoint]:
    """The achieved ``rto`` (or ``rpo`` of data type ``name``) of ``scenario`` over the runs."""
    points: list[TrendPoint] = []
    for entry in history.entries:
        record = entry.scenarios.get(scenario)
        if record is None:
            continue
        achieved: float | None
        target: float | None
        if kind == "rto":
            if record.rto_target_seconds is None:
                continue
            achieved, target = record.rto_seconds, record.rto_target_seconds
        else:
            if name not in record.rpo_seconds:
                continue
            achieved, target = record.rpo_seconds[name], record.rpo_target_seconds.get(name)
        if record.verdict is Verdict.SKIPPED:
            continue
        points.append(TrendPoint(entry.run_id, entry.time, achieved, target, record.verdict))
    return points


def _ordered(entries: list[HistoryEntry]) -> tuple[HistoryEntry, ...]:
    latest = {e.run_id: e for e in entries}  # a run written twice: the last line wins
    return tuple(sorted(latest.values(), key=lambda e: (e.time, e.run_id)))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"not a number of seconds: {value!r}")
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a non-empty string: {value!r}")
    return value


def _mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value
