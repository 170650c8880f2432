"""What the report shows, computed once from a :class:`~bdr.report.records.RunReport`.

The template only lays out what this module decided: the scope, who ran it, the headline
verdict of the run, each objective as achieved vs target with its margin in words (an RTO
split into detect, restore and verify), the verifications, the remediation items, the
coverage matrix, the steps with their offsets, the evidence as a tree of printable nodes.

One rounding rule: every duration in every table, chart and sentence goes through
:func:`bdr.util.durations.format_duration` (``850ms``, ``12.3s``, ``4m05s``), every share of a
target through :func:`percent_text`, every time through :func:`utc_text`. The JSON keeps the
raw numbers (seconds to the millisecond).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from bdr.report.history import History, ReviewEntry, TrendPoint, trend
from bdr.report.records import (
    CoverageRow,
    DrillResult,
    DrillStep,
    RemediationItem,
    RunReport,
    TargetCheck,
    Verification,
)
from bdr.report.remediation import overdue
from bdr.report.verdict import Verdict, verdict_of
from bdr.repository.manifest import from_iso
from bdr.util.durations import format_duration

FAULT_STEP = "fault injected"
START_STEP = "test start"
"""Where a drill breaks nothing (the monthly restore test, the freshness check) its clock starts here."""
CLOCK_STARTS = (FAULT_STEP, START_STEP)
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
    Verdict.BREACHED: "at least one objective was over its target or could not be measured, or a check failed",
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


def percent_text(percent: float | None) -> str:
    """A share of a target, the one way every table and chart writes it."""
    if percent is None:
        return "—"
    if percent == float("inf"):
        return "∞ % of target"
    if 0 < percent < 0.1:
        return "<0.1% of target"
    return f"{percent:.1f}% of target" if percent < 10 else f"{percent:.0f}% of target"


# --- objectives --------------------------------------------------------------------------------

NO_TARGET = "no target defined"
PHASE_LABELS = {"detect": "detect", "restore": "restore", "verify": "verify"}


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
        return NO_TARGET if self.check.target_seconds is None else format_duration(self.check.target_seconds)

    @property
    def defined(self) -> bool:
        return self.check.defined

    @property
    def met(self) -> bool:
        return self.check.met

    @property
    def status(self) -> str:
        """CSS class and word: ``met``, ``breached`` or ``none`` (no target defined)."""
        if not self.check.defined:
            return "none"
        return "met" if self.check.met else "breached"

    @property
    def status_label(self) -> str:
        return {"met": "✔ met", "breached": "✘ BREACHED", "none": "○ no target"}[self.status]

    @property
    def verdict(self) -> Verdict:
        return Verdict.MET if self.check.met or not self.check.defined else Verdict.BREACHED

    @property
    def percent(self) -> float | None:
        """Achieved as a percentage of the target (None when not measured or no target is defined)."""
        achieved, target = self.check.achieved_seconds, self.check.target_seconds
        if achieved is None or target is None:
            return None
        if target <= 0:
            return 0.0 if achieved <= 0 else float("inf")
        return 100.0 * achieved / target

    @property
    def percent_text(self) -> str:
        return percent_text(self.percent)

    @property
    def margin(self) -> str:
        if not self.check.defined:
            return NO_TARGET
        margin = self.check.margin_seconds
        if margin is None:
            return "unknown: not measured"
        if margin >= 0:
            return f"{format_duration(margin)} to spare"
        return f"{format_duration(-margin)} over target"

    @property
    def phases(self) -> str:
        """``detect 4ms · restore 4.6s · verify 330ms`` (empty when the check has no phases)."""
        return " · ".join(f"{PHASE_LABELS.get(name, name)} {format_duration(seconds)}"
                          for name, seconds in self.check.phases)


@dataclass(frozen=True, slots=True)
class VerificationView:
    verification: Verification

    @property
    def status(self) -> str:
        """CSS class: ``ok``, ``bad`` or ``unverified``."""
        if self.verification.skipped:
            return "unverified"
        return "ok" if self.verification.ok else "bad"

    @property
    def label(self) -> str:
        return {"ok": "✔ passed", "bad": "✘ FAILED", "unverified": "⊘ not verified"}[self.status]


# --- steps -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepView:
    step: DrillStep

    @property
    def instant(self) -> bool:
        return self.step.seconds <= 0

    @property
    def starts(self) -> str:
        """Offset from the scenario's start: ``+64ms``, ``+12.3s``, ``+7m38s``."""
        return "+" + format_duration(self.step.offset)

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
    def key(self) -> str:
        return self.result.key

    @property
    def anchor(self) -> str:
        return "scenario-" + re.sub(r"[^A-Za-z0-9_-]+", "-", self.result.key)

    @property
    def checks(self) -> list[CheckView]:
        return [CheckView(c) for c in self.result.checks]

    @property
    def verifications(self) -> list[VerificationView]:
        return [VerificationView(v) for v in self.result.verifications]

    @property
    def steps(self) -> list[StepView]:
        return [StepView(s) for s in self.result.steps]

    @property
    def clock_start(self) -> str:
        """What started the RTO clock: ``fault injected``, or ``test start`` where nothing was broken."""
        return next((s.name for s in self.result.steps if s.name in CLOCK_STARTS), FAULT_STEP)

    @property
    def duration(self) -> str:
        return seconds_text(elapsed(self.result.started_at, self.result.finished_at)) \
            if self.result.finished_at else "—"

    @property
    def breached(self) -> list[CheckView]:
        return [c for c in self.checks if c.defined and not c.met]

    @property
    def failed_verifications(self) -> list[VerificationView]:
        return [v for v in self.verifications if v.status == "bad"]

    @property
    def problem(self) -> str:
        """Why the scenario did not prove its targets, in one paragraph ('' when it did)."""
        if self.verdict is Verdict.MET:
            return ""
        if self.result.failure:
            return self.result.failure
        parts = [c.check.describe() for c in self.breached]
        parts += [f"{v.verification.kind} check {v.verification.name} FAILED: {v.verification.detail}"
                  for v in self.failed_verifications]
        if parts:
            return "; ".join(parts)
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
    checks = [c for s in scenarios for c in s.checks if c.defined]
    failed_checks = sum(len(s.failed_verifications) for s in scenarios)
    breached = sum(1 for c in checks if not c.met) + failed_checks
    counted = len(checks) + sum(len([v for v in s.verifications if v.status != "unverified"]) for s in scenarios)
    ran = len(scenarios) - counts[Verdict.SKIPPED]
    what = "restore test" if report.live else "scenario"
    details: list[str] = []
    if not scenarios:
        status, headline = "untested", "NO SCENARIO RAN"
    elif ran == 0:
        status, headline = "untested", "NOTHING TESTED: EVERY SCENARIO WAS SKIPPED"
    elif report.all_met and breached == 0:
        untested_count = sum(1 for row in report.coverage if not row.tested)
        status = "met"
        headline = "ALL TARGETS MET" if not untested_count else \
            f"ALL TESTED TARGETS MET · {untested_count} UNTESTED"
    elif breached:
        targets = breached - failed_checks
        parts = [f"{targets} TARGET{'S' if targets != 1 else ''} BREACHED"] if targets else []
        parts += [f"{failed_checks} CHECK{'S' if failed_checks != 1 else ''} FAILED"] if failed_checks else []
        status, headline = "breached", ", ".join(parts)
    else:
        not_proven = counts[Verdict.FAILED] + counts[Verdict.ERROR]
        status = "failed"
        headline = f"{not_proven} SCENARIO{'S' if not_proven != 1 else ''} FAILED: TARGETS NOT PROVEN"
    details.append(f"{counted - breached} of {counted} objectives and checks met across {ran} {what}"
                   f"{'s' if ran != 1 else ''} run.")
    broken = [s for s in scenarios if s.verdict in (Verdict.BREACHED, Verdict.FAILED, Verdict.ERROR)]
    if broken:
        details.append("Not proven: " + ", ".join(f"{s.key} ({s.verdict})" for s in broken) + ".")
    skipped = [s.key for s in scenarios if s.verdict is Verdict.SKIPPED]
    if skipped:
        details.append(f"Skipped, targets not tested: {', '.join(skipped)}.")
    untested = [row.objective for row in report.coverage if not row.tested]
    if untested:
        details.append(f"Targets of the policy no scenario tested: {', '.join(untested)} (see the coverage matrix).")
    return Summary(status, headline, tuple(details), counts, counted, breached)


def drill_window(report: RunReport) -> tuple[str | None, str | None]:
    """First scenario start and last scenario end: the drill itself, not the test runner's session."""
    starts = [r.started_at for r in report.results if r.started_at]
    ends = [r.finished_at for r in report.results if r.finished_at]
    return (min(starts) if starts else report.started_at), (max(ends) if ends else report.finished_at)


def drill_duration(report: RunReport) -> float | None:
    start, end = drill_window(report)
    return elapsed(start, end)


def scope_label(report: RunReport) -> str:
    return "LIVE: the user's own backups" if report.live else "SANDBOX: services bdr built for the drill"


def run_facts(report: RunReport) -> list[Fact]:
    """Who and when: the first facts under the scope."""
    env = report.environment
    start, end = drill_window(report)
    commit = str(env.get("policy_git_commit") or "—")
    return [
        Fact("Scope", scope_label(report)),
        Fact("Operator", report.operator or str(env.get("user") or "—")),
        Fact("Date", utc_text(start)),
        Fact("Drill duration", seconds_text(elapsed(start, end)) + " (first scenario start to last end)"),
        Fact("Host", str(env.get("host", "—"))),
        Fact("bdr", str(env.get("bdr_version", "—"))),
        Fact("Policy", str(env.get("policy_file", "—")), mono=True),
        Fact("Policy sha256", str(env.get("policy_sha256", "—")), mono=True),
        Fact("Policy git commit", commit, mono=commit != "—"),
        Fact("Services", "this installation's own (see the scope)" if report.live else
             str(env.get("runtime", "—")) + (f", scale {env['scale']}" if env.get("scale") else "")),
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


def generated_at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


# --- remediation, coverage -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemView:
    item: RemediationItem
    today: str

    @property
    def status(self) -> str:
        """CSS class and word: ``open``, ``overdue``, ``resolved``."""
        if not self.item.open:
            return "resolved"
        return "overdue" if overdue(self.item, self.today) else "open"

    @property
    def status_label(self) -> str:
        if self.status == "resolved":
            return f"✔ resolved by {self.item.resolved_run}"
        if self.status == "overdue":
            return "✘ OVERDUE"
        if self.item.carried and self.item.last_seen_run != self.item.opened_run:
            return "open (still failing)" if self.item.last_seen_run else "open (not re-tested)"
        return "open"

    @property
    def origin(self) -> str:
        return "carried over" if self.item.carried else "new in this run"


def item_views(report: RunReport) -> list[ItemView]:
    today = (report.finished_at or report.started_at)[:10]
    order = {"overdue": 0, "open": 1, "resolved": 2}
    views = [ItemView(i, today) for i in report.remediation]
    return sorted(views, key=lambda v: (order[v.status], v.item.due, v.item.id))


@dataclass(frozen=True, slots=True)
class CoverageView:
    row: CoverageRow

    @property
    def label(self) -> str:
        kind, _, name = self.row.objective.partition(" ")
        return f"{KIND_LABELS.get(kind, kind)} {name}"

    @property
    def target(self) -> str:
        return format_duration(self.row.target_seconds)

    @property
    def status(self) -> str:
        if not self.row.tested:
            return "untested"
        verdicts = {v for _, v in self.row.tested_by}
        return "met" if verdicts == {"met"} else "breached"


@dataclass(frozen=True, slots=True)
class ProductionRow:
    """Production of one live test, before and after: what proves it was only read."""

    scenario: str
    name: str
    address: str
    before: dict[str, Any]
    after: dict[str, Any]
    verdict: str
    """``passed``, ``FAILED`` or ``not verified``."""
    detail: str

    @property
    def status(self) -> str:
        return {"passed": "ok", "FAILED": "bad"}.get(self.verdict, "unverified")

    def facts(self, state: Mapping[str, Any]) -> str:
        if state.get("error"):
            return f"not readable: {state['error']}"
        counts = state.get("counts") or {}
        if "pid" in state and state.get("pid") is not None and "run_id" in state:
            total = sum(int(v) for v in counts.values())
            return (f"pid {state.get('pid')}, run id {str(state.get('run_id'))[:8]}, "
                    f"up {state.get('uptime_seconds')}s, {total} keys")
        if "files" in state:
            return f"{len(state.get('files') or {})} files"
        total = sum(int(v) for v in counts.values())
        return f"{len(counts)} collection(s), {total} points"


def production_rows(report: RunReport) -> list[ProductionRow]:
    rows = []
    for result in report.results:
        production = result.evidence.get("production")
        if not isinstance(production, Mapping):
            continue
        before, after = dict(production.get("before") or {}), dict(production.get("after") or {})
        proof = next((v for v in result.verifications if v.kind == "production"), None)
        rows.append(ProductionRow(result.key, f"{before.get('source')}/{before.get('instance')}",
                                  str(before.get("address", "")), before, after,
                                  proof.status if proof else "not verified", proof.detail if proof else ""))
    return rows


# --- integrity, sign-off -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Integrity:
    """What the HTML can say about its own tamper evidence (its own sha256 lives in the record)."""

    json_sha256: str
    prev: str | None
    """The hash of the history line before this run's record (None: the first record)."""
    signing_key_id: str = ""
    """The Ed25519 key that signs the record ('' : unsigned)."""
    history_file: str = "history.jsonl"


@dataclass(frozen=True, slots=True)
class ReviewView:
    review: ReviewEntry

    @property
    def accepted(self) -> bool:
        return self.review.decision == "accepted"

    @property
    def when(self) -> str:
        return utc_text(self.review.time)


# --- trend over past runs ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrendRow:
    """One objective of one scenario case over the past runs, with its numbers in words."""

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
        return NO_TARGET if target is None else format_duration(target)

    @property
    def breaches(self) -> int:
        return sum(1 for p in self.points if p.target_seconds is not None and not p.met)


def trend_rows(results: Sequence[DrillResult], history: History, last: int = 20) -> list[TrendRow]:
    """For each objective measured in this run, per scenario case, its last ``last`` values over the history."""
    rows: list[TrendRow] = []
    for result in results:
        for check in result.checks:
            points = trend(history, result.key, check.objective)[-last:]
            if points:
                rows.append(TrendRow(result.key, CheckView(check).label, tuple(points)))
    return rows
