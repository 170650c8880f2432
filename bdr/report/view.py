"""What the report shows, computed once from a :class:`~drills.evidence.RunReport`.

The template only lays out what this module decided: the headline verdict of the run,
each objective as achieved vs target with its margin in words, the steps with their
offsets, the evidence as a tree of printable nodes. Numbers are formatted here (durations
with :func:`bdr.durations.format_duration`, times in UTC) so every output says the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from bdr.durations import format_duration
from bdr.manifest import from_iso
from bdr.report.records import DrillResult, DrillStep, RunReport, TargetCheck
from bdr.report.history import History, TrendPoint, trend
from bdr.report.verdict import Verdict, verdict_of

FAULT_STEP = "fault injected"
VERIFIED_STEP = "data verified"
NOT_MEASURED = "not measured"

KIND_LABELS = {"rto": "RTO", "rpo": "RPO"}
VERDICT_LABELS = {
    Verdict.MET: "✔ MET",
    Verdict.BREACHED: "✘ BREACHED",
    Verdict.FAILED: "✘ FAILED",
    Verdict.ERROR: "⚠ ERROR",
    Verdict.SKIPPED: "⊘ SKIPPED",
}
VERDICT_MEANINGS = {
    Verdict.MET: "the scenario ran to the end and every objective was within its target",
    Verdict.BREACHED: "at least one objective was over its target, or could not be measured",
    Verdict.FAILED: "the recovery did not work (a step or a check of the data failed)",
    Verdict.ERROR: "the drill itself could not run (its setup failed): nothing was proven",
    Verdict.SKIPPED: "not run in this environment: its targets were not tested",
}
_SECRET_KEY = re.compile(r"(^|[_\-. ])(password|passwd|passphrase|token|secret|api[_\-]?key|private[_\-]?key|"
                         r"access[_\-]?key|credentials?)($|[_\-. ])", re.IGNORECASE)
_MONO_KEY = re.compile(r"sha|digest|checksum|hash|(^|_)ids?$|path|file", re.IGNORECASE)
_HEXISH = re.compile(r"^[0-9a-f]{16,}$")
_MAX_DEPTH = 4


def seconds_text(value: float | None) -> str:
    return NOT_MEASURED if value is None else format_duration(value)


def utc_text(iso: str | None) -> str:
    """``2026-11-25 06:00:00 UTC`` for an ISO 8601 timestamp (as given when it cannot be read)."""
    if not iso:
        return "—"
    try:
        return from_iso(iso).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return iso


def elapsed(start: str | None, end: str | None) -> float | None:
    try:
        return max(0.0, (from_iso(end or "") - from_iso(start or "")).total_seconds())
    except ValueError:
        return None


# --- objectives --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckView:
    """One objective as a row: achieved vs target, the margin and the verdict, in words."""

    check: TargetCheck

    @property
    def kind(self) -> str:
        return KIND_LABELS.get(self.check.kind, self.check.kind)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.check.name}"

    @property
    def achieved(self) -> str:
        return seconds_text(self.check.achieved_seconds)

    @property
    def target(self) -> str:
        return format_duration(self.check.target_seconds)

    @property
    def met(self) -> bool:
        return self.check.met

    @property
    def verdict(self) -> Verdict:
        return Verdict.MET if self.check.met else Verdict.BREACHED

    @property
    def percent(self) -> float | None:
        """Achieved as a percentage of the target (None when not measured)."""
        achieved, target = self.check.achieved_seconds, self.check.target_seconds
        if achieved is None:
            return None
        if target <= 0:
            return 0.0 if achieved <= 0 else float("inf")
        return 100.0 * achieved / target

    @property
    def percent_text(self) -> str:
        percent = self.percent
        if percent is None:
            return "—"
        if percent == float("inf"):
            return "∞ % of target"
        if 0 < percent < 0.1:
            return "<0.1% of target"
        return f"{percent:.1f}% of target" if percent < 10 else f"{percent:.0f}% of target"

    @property
    def margin(self) -> str:
        margin = self.check.margin_seconds
        if margin is None:
            return "unknown: not measured"
        if margin >= 0:
            return f"{format_duration(margin)} to spare"
        return f"{format_duration(-margin)} over target"


# --- steps -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepView:
    step: DrillStep

    @property
    def instant(self) -> bool:
        return self.step.seconds <= 0

    @property
    def starts(self) -> str:
        """Offset from the scenario's start: ``+0.064s``, ``+12.34s``, ``+7m38s``."""
        offset = self.step.offset
        if offset < 10:
            return f"+{offset:.3f}s"
        return f"+{offset:.2f}s" if offset < 60 else f"+{format_duration(offset)}"

    @property
    def clock(self) -> str:
        """The wall-clock start, time of day in UTC to the millisecond."""
        try:
            return from_iso(self.step.started_at).strftime("%H:%M:%S.%f")[:-3]
        except ValueError:
            return self.step.started_at

    @property
    def duration(self) -> str:
        return "instant" if self.instant else format_duration(self.step.seconds)


# --- evidence ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scalar:
    kind: ClassVar[str] = "scalar"
    text: str
    mono: bool = False


@dataclass(frozen=True, slots=True)
class Block:
    """A value too deep to lay out: pretty JSON."""

    kind: ClassVar[str] = "block"
    text: str


@dataclass(frozen=True, slots=True)
class Pairs:
    kind: ClassVar[str] = "pairs"
    items: tuple[tuple[str, Node], ...]


@dataclass(frozen=True, slots=True)
class Grid:
    """A list of records with the same shape: a table."""

    kind: ClassVar[str] = "grid"
    columns: tuple[str, ...]
    rows: tuple[tuple[Node, ...], ...]


@dataclass(frozen=True, slots=True)
class Items:
    kind: ClassVar[str] = "items"
    elements: tuple[Node, ...]


Node = Scalar | Block | Pairs | Grid | Items


def evidence_node(value: Any, key: str = "", depth: int = 0) -> Node:
    """Any JSON-ish value as a printable tree: mappings as pairs, lists of records as tables."""
    if key and _SECRET_KEY.search(key):
        return Scalar("••• (redacted)")
    if isinstance(value, Mapping):
        if not value:
            return Scalar("(none)")
        if depth >= _MAX_DEPTH:
            return Block(_pretty(value))
        return Pairs(tuple((str(k), evidence_node(v, str(k), depth + 1)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        if not value:
            return Scalar("(none)")
        if depth >= _MAX_DEPTH:
            return Block(_pretty(value))
        if all(isinstance(v, Mapping) for v in value):
            columns = tuple(dict.fromkeys(str(k) for v in value for k in v))
            rows = tuple(tuple(evidence_node(v.get(c), c, depth + 2) for c in columns) for v in value)
            return Grid(columns, rows)
        if all(_is_scalar(v) for v in value) and len(value) <= 12 and sum(len(str(v)) for v in value) <= 160:
            return Scalar(", ".join(_scalar_text(v, key) for v in value), _mono(key, value[0]))
        return Items(tuple(evidence_node(v, key, depth + 1) for v in value))
    return Scalar(_scalar_text(value, key), _mono(key, value))


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _scalar_text(value: Any, key: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and key.endswith("seconds"):
        text = format_duration(float(value))
        return text if value < 60 else f"{text} ({value:g} s)"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ") if abs(value) >= 100_000 else str(value)
    if _is_scalar(value):
        return str(value)
    return _pretty(value)


def _mono(key: str, value: Any) -> bool:
    return bool(_MONO_KEY.search(key)) or (isinstance(value, str) and bool(_HEXISH.match(value)))


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str, ensure_ascii=False)


def humanize(key: str) -> str:
    """``policy_sha256`` → ``policy sha256`` (keys stay recognisable next to the JSON)."""
    return key.replace("_", " ")


# --- scenarios ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScenarioView:
    result: DrillResult

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.result)

    @property
    def verdict_label(self) -> str:
        return VERDICT_LABELS[self.verdict]

    @property
    def anchor(self) -> str:
        return "scenario-" + re.sub(r"[^A-Za-z0-9_-]+", "-", self.result.scenario)

    @property
    def checks(self) -> list[CheckView]:
        return [CheckView(c) for c in self.result.checks]

    @property
    def steps(self) -> list[StepView]:
        return [StepView(s) for s in self.result.steps]

    @property
    def duration(self) -> str:
        return seconds_text(elapsed(self.result.started_at, self.result.finished_at)) \
            if self.result.finished_at else "—"

    @property
    def breached(self) -> list[CheckView]:
        return [c for c in self.checks if not c.met]

    @property
    def problem(self) -> str:
        """Why the scenario did not prove its targets, in one paragraph ('' when it did)."""
        if self.verdict is Verdict.MET:
            return ""
        if self.result.failure:
            return self.result.failure
        if self.breached:
            return "; ".join(c.check.describe() for c in self.breached)
        return VERDICT_MEANINGS[self.verdict]

    @property
    def evidence(self) -> Node:
        return evidence_node(self.result.evidence)


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fact:
    label: str
    value: str
    mono: bool = False


@dataclass(frozen=True, slots=True)
class Summary:
    """The headline: one unambiguous sentence, and the counts behind it."""

    status: str
    """CSS class: met, breached, failed, untested."""
    headline: str
    details: tuple[str, ...]
    counts: dict[Verdict, int]
    targets_checked: int
    targets_breached: int


def summarize(report: RunReport) -> Summary:
    scenarios = [ScenarioView(r) for r in report.results]
    counts = {v: sum(1 for s in scenarios if s.verdict is v) for v in Verdict}
    checks = [c for s in scenarios for c in s.checks]
    breached = sum(1 for c in checks if not c.met)
    ran = len(scenarios) - counts[Verdict.SKIPPED]
    details: list[str] = []
    if not scenarios:
        status, headline = "untested", "NO SCENARIO RAN"
    elif ran == 0:
        status, headline = "untested", "NOTHING TESTED: EVERY SCENARIO WAS SKIPPED"
    elif report.all_met and breached == 0:
        status, headline = "met", "ALL TARGETS MET"
    elif breached:
        status, headline = "breached", f"{breached} TARGET{'S' if breached != 1 else ''} BREACHED"
    else:
        not_proven = counts[Verdict.FAILED] + counts[Verdict.ERROR]
        status = "failed"
        headline = f"{not_proven} SCENARIO{'S' if not_proven != 1 else ''} FAILED: TARGETS NOT PROVEN"
    details.append(f"{len(checks) - breached} of {len(checks)} objectives met across {ran} scenario"
                   f"{'s' if ran != 1 else ''} run.")
    broken = [s for s in scenarios if s.verdict in (Verdict.BREACHED, Verdict.FAILED, Verdict.ERROR)]
    if broken:
        details.append("Not proven: " + ", ".join(f"{s.result.scenario} ({s.verdict})" for s in broken) + ".")
    skipped = [s.result.scenario for s in scenarios if s.verdict is Verdict.SKIPPED]
    if skipped:
        details.append(f"Skipped, targets not tested: {', '.join(skipped)}.")
    return Summary(status, headline, tuple(details), counts, len(checks), breached)


def run_facts(report: RunReport) -> list[Fact]:
    env = report.environment
    return [
        Fact("Date", utc_text(report.started_at)),
        Fact("Runtime", seconds_text(elapsed(report.started_at, report.finished_at))),
        Fact("Scale", str(env.get("scale", "—"))),
        Fact("Host", str(env.get("host", "—"))),
        Fact("Services", str(env.get("runtime", "—"))),
        Fact("bdr", str(env.get("bdr_version", "—"))),
        Fact("Policy", str(env.get("policy_file", "—")), mono=True),
        Fact("Run id", report.run_id, mono=True),
    ]


def environment_rows(environment: Mapping[str, Any]) -> list[tuple[str, Node]]:
    return [(humanize(k), evidence_node(v, k)) for k, v in environment.items()]


def policy_rows(policy: Mapping[str, Any]) -> list[Fact]:
    """The targets in force, one row per objective."""
    rows: list[Fact] = []
    for kind in ("rto", "rpo"):
        for name, seconds in _items(policy.get(kind)):
            label = f"{KIND_LABELS[kind]} {name}"
            rows.append(Fact(label, format_duration(float(seconds)) if _is_number(seconds) else str(seconds)))
    return rows


def _items(value: Any) -> Iterable[tuple[str, Any]]:
    return sorted(value.items()) if isinstance(value, Mapping) else ()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def scenario_views(results: Sequence[DrillResult]) -> list[ScenarioView]:
    return [ScenarioView(r) for r in results]


def generated_at(now: datetime) -> str:
    return now.strftime("%Y-%m-%d %H:%M:%S UTC")


# --- trend over past runs ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrendRow:
    """One objective of one scenario over the past runs, with its numbers in words."""

    scenario: str
    objective: str
    points: tuple[TrendPoint, ...]

    def _values(self) -> list[float]:
        return [p.achieved_seconds for p in self.points if p.achieved_seconds is not None]

    @property
    def runs(self) -> int:
        return len(self.points)

    @property
    def latest(self) -> str:
        return seconds_text(self.points[-1].achieved_seconds) if self.points else "—"

    @property
    def best(self) -> str:
        values = self._values()
        return format_duration(min(values)) if values else "—"

    @property
    def worst(self) -> str:
        values = self._values()
        return format_duration(max(values)) if values else "—"

    @property
    def target(self) -> str:
        target = self.points[-1].target_seconds if self.points else None
        return "—" if target is None else format_duration(target)

    @property
    def breaches(self) -> int:
        return sum(1 for p in self.points if not p.met)


def trend_rows(results: Sequence[DrillResult], history: History, last: int = 20) -> list[TrendRow]:
    """For each objective measured in this run, its last ``last`` values over the history."""
    rows: list[TrendRow] = []
    for result in results:
        objectives = [("rto", "", "RTO")] if result.rto else []
        objectives += [("rpo", c.name, f"RPO {c.name}") for c in result.rpos]
        for kind, name, label in objectives:
            points = trend(history, result.scenario, kind, name)[-last:]
            if points:
                rows.append(TrendRow(result.scenario, label, tuple(points)))
    return rows
