"""The history of drill runs: one JSON line per run (and per review) in ``<reports>/history.jsonl``.

Each run appends its *record*: its id, time, scope, and per scenario case (``scenario`` or
``scenario/case``) the verdict and every objective it measured (achieved and target,
seconds), the remediation items still open, and the sha256 of the report files it wrote.
``bdr report sign`` appends a *review* line for a run. The report reads the history back
for the trend over past runs and for the open items it carries over.

The file is a hash chain: every line carries ``prev``, the sha256 of the line before it
(``null`` on the first), so removing, reordering or editing a line breaks the chain at
that point (:mod:`bdr.report.integrity` names the first broken link). A record may also be
signed (Ed25519, :mod:`bdr.report.signing`). Appending takes a lock on the file, so two
runs finishing at once still make one chain.

Reading for the trend is tolerant: a torn or hand-edited line is skipped (and counted, so
the report can say so), never fatal. Lines of schema 1 (no chain, one RTO per scenario)
are still read. The line format is documented in ``drills/README.md``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdr.report.records import RemediationItem, RunReport
from bdr.report.verdict import Verdict, verdict_of
from bdr.storage.local import translate_os_error

logger = logging.getLogger(__name__)

HISTORY_FILE = "history.jsonl"
HISTORY_SCHEMA_VERSION = 2
RUN = "run"
REVIEW = "review"
SIGNATURE_FIELD = "signature"


def line_hash(raw: bytes) -> str:
    """``sha256:<hex>`` of one history line as stored (without its newline): what the next line's ``prev`` holds."""
    return "sha256:" + hashlib.sha256(raw.rstrip(b"\r\n")).hexdigest()


def canonical(body: dict[str, Any]) -> bytes:
    """The bytes a record's signature is made over: the line's JSON without ``signature``, keys sorted."""
    data = {k: v for k, v in body.items() if k != SIGNATURE_FIELD}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True, slots=True)
class ObjectiveRecord:
    """One objective of one scenario case in one run (seconds; target None: none defined)."""

    achieved: float | None
    target: float | None

    @property
    def met(self) -> bool:
        return self.achieved is not None and self.target is not None and self.achieved <= self.target

    def to_dict(self) -> dict[str, Any]:
        return {"achieved": self.achieved, "target": self.target}


@dataclass(frozen=True, slots=True)
class ScenarioRecord:
    """One scenario case of one past run: its verdict and every objective it measured."""

    verdict: Verdict
    scenario: str = ""
    objectives: dict[str, ObjectiveRecord] = field(default_factory=dict)
    """By objective key (``rto redis_restart``, ``rpo sessions``); schema-1 lines give ``rto`` alone."""

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "verdict": str(self.verdict),
                "objectives": {k: v.to_dict() for k, v in self.objectives.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], key: str = "") -> ScenarioRecord:
        objectives: dict[str, ObjectiveRecord] = {}
        if "objectives" in data:
            for name, value in _mapping(data["objectives"]).items():
                value = _mapping(value)
                objectives[str(name)] = ObjectiveRecord(_seconds(value.get("achieved")), _seconds(value.get("target")))
        else:  # schema 1: one RTO (its name not recorded) and the RPOs
            if data.get("rto_target_seconds") is not None:
                objectives["rto"] = ObjectiveRecord(_seconds(data.get("rto_seconds")),
                                                    _seconds(data.get("rto_target_seconds")))
            targets = _mapping(data.get("rpo_target_seconds"))
            for name, value in _mapping(data.get("rpo_seconds")).items():
                objectives[f"rpo {name}"] = ObjectiveRecord(_seconds(value), _seconds(targets.get(name)))
        return cls(Verdict(data["verdict"]), str(data.get("scenario") or key.split("/")[0]), objectives)

    def objective(self, key: str) -> ObjectiveRecord | None:
        found = self.objectives.get(key)
        if found is None and key.startswith("rto "):
            found = self.objectives.get("rto")  # a schema-1 line
        return found


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """The record of one run, as remembered for the trend, the carried-over items and the integrity check."""

    run_id: str
    time: str
    """ISO 8601 UTC start of the run."""
    all_targets_met: bool
    scenarios: dict[str, ScenarioRecord]
    scale: str = ""
    runtime: str = ""
    scope: str = "sandbox"
    operator: str = ""
    open_items: tuple[RemediationItem, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    """sha256 of the report files of the run (``json``, ``html``, ``xml``)."""
    prev: str | None = None
    signature: dict[str, Any] | None = None
    line: int = 0
    """Its line number in the file (0: not read from one)."""

    def body(self) -> dict[str, Any]:
        return {
            "schema_version": HISTORY_SCHEMA_VERSION,
            "kind": RUN,
            "run_id": self.run_id,
            "time": self.time,
            "scope": self.scope,
            "operator": self.operator,
            "all_targets_met": self.all_targets_met,
            "scale": self.scale,
            "runtime": self.runtime,
            "scenarios": {name: record.to_dict() for name, record in self.scenarios.items()},
            "open_items": [i.to_dict() for i in self.open_items],
            "files": dict(self.files),
            "prev": self.prev,
        }

    def to_json_line(self) -> str:
        body = self.body()
        if self.signature is not None:
            body[SIGNATURE_FIELD] = self.signature
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any], line: int = 0) -> HistoryEntry:
        scenarios = _mapping(data["scenarios"])
        return cls(
            run_id=_text(data["run_id"]),
            time=_text(data["time"]),
            all_targets_met=bool(data.get("all_targets_met", False)),
            scenarios={str(name): ScenarioRecord.from_dict(_mapping(rec), str(name))
                       for name, rec in scenarios.items()},
            scale=str(data.get("scale", "")),
            runtime=str(data.get("runtime", "")),
            scope=str(data.get("scope", "sandbox")),
            operator=str(data.get("operator", "")),
            open_items=tuple(RemediationItem.from_dict(_mapping(i)) for i in data.get("open_items") or []),
            files={str(k): str(v) for k, v in _mapping(data.get("files")).items()},
            prev=data.get("prev"),
            signature=data.get(SIGNATURE_FIELD),
            line=line,
        )


@dataclass(frozen=True, slots=True)
class ReviewEntry:
    """A sign-off of one run (``bdr report sign``): who, in which role, what they decided."""

    run_id: str
    time: str
    reviewer: str
    role: str
    decision: str
    """``accepted`` or ``rejected``."""
    comment: str = ""
    files: dict[str, str] = field(default_factory=dict)
    """sha256 of the JSON the reviewer signed off and of the HTML re-rendered with the sign-off."""
    prev: str | None = None
    signature: dict[str, Any] | None = None
    line: int = 0

    def body(self) -> dict[str, Any]:
        return {"schema_version": HISTORY_SCHEMA_VERSION, "kind": REVIEW, "run_id": self.run_id, "time": self.time,
                "reviewer": self.reviewer, "role": self.role, "decision": self.decision, "comment": self.comment,
                "files": dict(self.files), "prev": self.prev}

    def to_json_line(self) -> str:
        body = self.body()
        if self.signature is not None:
            body[SIGNATURE_FIELD] = self.signature
        return json.dumps(body, separators=(",", ":"))

    @property
    def signed_by(self) -> str:
        return str(self.signature.get("key_id", "")) if self.signature else ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], line: int = 0) -> ReviewEntry:
        return cls(run_id=_text(data["run_id"]), time=_text(data["time"]), reviewer=_text(data["reviewer"]),
                   role=_text(data["role"]), decision=_text(data["decision"]), comment=str(data.get("comment", "")),
                   files={str(k): str(v) for k, v in _mapping(data.get("files")).items()}, prev=data.get("prev"),
                   signature=data.get(SIGNATURE_FIELD), line=line)


@dataclass(frozen=True, slots=True)
class History:
    """The past runs (oldest first), the reviews, and how many lines could not be read."""

    entries: tuple[HistoryEntry, ...] = ()
    ignored_lines: int = 0
    reviews: tuple[ReviewEntry, ...] = ()

    def including(self, entry: HistoryEntry) -> History:
        """These runs plus ``entry`` (replacing a run with the same id), oldest first."""
        return History(_ordered([*self.entries, entry]), self.ignored_lines, self.reviews)

    def until(self, run_id: str) -> History:
        """Only the runs up to and including ``run_id`` (the trend as it was on that run)."""
        anchor = self.run(run_id)
        if anchor is None:
            return self
        return History(tuple(e for e in self.entries if (e.time, e.run_id) <= (anchor.time, anchor.run_id)),
                       self.ignored_lines, self.reviews)

    def before(self, run_id: str) -> History:
        """The runs before ``run_id`` (all of them when it is not there)."""
        anchor = self.run(run_id)
        if anchor is None:
            return self
        return History(tuple(e for e in self.entries if (e.time, e.run_id) < (anchor.time, anchor.run_id)),
                       self.ignored_lines, self.reviews)

    def run(self, run_id: str) -> HistoryEntry | None:
        return next((e for e in self.entries if e.run_id == run_id), None)

    def reviews_of(self, run_id: str) -> list[ReviewEntry]:
        return [r for r in self.reviews if r.run_id == run_id]

    @property
    def latest(self) -> HistoryEntry | None:
        return self.entries[-1] if self.entries else None


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One objective of one scenario case in one past run."""

    run_id: str
    time: str
    achieved_seconds: float | None
    target_seconds: float | None
    verdict: Verdict

    @property
    def met(self) -> bool:
        return (self.achieved_seconds is not None and self.target_seconds is not None
                and self.achieved_seconds <= self.target_seconds)


def entry_of(report: RunReport, files: dict[str, str] | None = None, prev: str | None = None) -> HistoryEntry:
    """The history record of a run (``files``: sha256 of its report files; ``prev``: the chain link)."""
    scenarios: dict[str, ScenarioRecord] = {}
    for result in report.results:
        objectives = {c.objective: ObjectiveRecord(_rounded(c.achieved_seconds), c.target_seconds)
                      for c in result.checks}
        scenarios[result.key] = ScenarioRecord(verdict_of(result), result.scenario, objectives)
    return HistoryEntry(
        run_id=report.run_id,
        time=report.started_at,
        all_targets_met=report.all_met,
        scenarios=scenarios,
        scale=str(report.environment.get("scale", "")),
        runtime=str(report.environment.get("runtime", "")),
        scope=str(report.scope.kind),
        operator=report.operator,
        open_items=tuple(i for i in report.remediation if i.open),
        files=dict(files or {}),
        prev=prev,
    )


class ChainedAppend:
    """The history file, locked, ready to take the next record: ``prev`` is the hash of its last line.

    ``with ChainedAppend(path) as tail: ... tail.append(entry)``: whatever the caller renders
    between entering and appending (the HTML shows ``prev``) stays true, since no other run can
    append meanwhile.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.prev: str | None = None
        self._handle: Any = None
        self._torn = False

    def __enter__(self) -> ChainedAppend:
        try:
            self._handle = open(self.path, "a+b")  # held (and locked) until __exit__
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX)
            self._handle.seek(0)
            raw = self._handle.read()
        except OSError as exc:
            if self._handle is not None:
                self._handle.close()
            raise translate_os_error(exc, self.path) from exc
        lines = [line for line in raw.split(b"\n") if line.strip()]
        self.prev = line_hash(lines[-1]) if lines else None
        self._torn = bool(raw) and not raw.endswith(b"\n")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()  # releases the lock
            self._handle = None

    def append(self, entry: HistoryEntry | ReviewEntry,
               sign: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> HistoryEntry | ReviewEntry:
        """Write ``entry`` chained to the last line (and signed by ``sign`` when given); the record as written."""
        import dataclasses

        chained = dataclasses.replace(entry, prev=self.prev)
        if sign is not None:
            chained = dataclasses.replace(chained, signature=sign(chained.body()))
        line = chained.to_json_line().encode("utf-8")
        try:
            self._handle.seek(0, os.SEEK_END)
            self._handle.write((b"\n" if self._torn else b"") + line + b"\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise translate_os_error(exc, self.path) from exc
        self.prev, self._torn = line_hash(line), False
        logger.debug("appended %s of run %s to %s", type(entry).__name__, entry.run_id, self.path)
        return chained


def append_history(path: Path, entry: HistoryEntry | ReviewEntry,
                   sign: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> HistoryEntry | ReviewEntry:
    """Add one record to the history file (created if missing), chained to the line before it."""
    with ChainedAppend(path) as tail:
        return tail.append(entry, sign)


def parse_line(raw: bytes, number: int) -> HistoryEntry | ReviewEntry:
    """One history line as its record; ValueError/KeyError/TypeError when it is not one."""
    data = json.loads(raw.decode("utf-8"))
    data = _mapping(data)
    if data.get("kind") == REVIEW:
        return ReviewEntry.from_dict(data, number)
    return HistoryEntry.from_dict(data, number)


def read_history(path: Path) -> History:
    """Every readable run and review in ``path``, runs oldest first; a missing file is an empty history."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return History()
    except OSError as exc:
        logger.warning("cannot read drill history %s: %s; the trend is left out", path, exc)
        return History()
    entries: list[HistoryEntry] = []
    reviews: list[ReviewEntry] = []
    ignored = 0
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = parse_line(line, number)
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            ignored += 1
            logger.warning("%s line %d is not a drill history record (%s); skipped", path, number, exc)
            continue
        if isinstance(record, ReviewEntry):
            reviews.append(record)
        else:
            entries.append(record)
    return History(_ordered(entries), ignored, tuple(reviews))


def trend(history: History, key: str, objective: str) -> list[TrendPoint]:
    """The achieved ``objective`` (``rto redis_restart``) of scenario case ``key`` over the runs."""
    points: list[TrendPoint] = []
    for entry in history.entries:
        record = entry.scenarios.get(key)
        if record is None or record.verdict is Verdict.SKIPPED:
            continue
        found = record.objective(objective)
        if found is None:
            continue
        points.append(TrendPoint(entry.run_id, entry.time, found.achieved, found.target, record.verdict))
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
