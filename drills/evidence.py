"""What a drill proves, as typed records: steps, targets met or breached, and the evidence.

These records are the single source of the compliance report: the HTML, the JSON (whose
schema is :data:`JSON_SCHEMA_VERSION`, documented in ``drills/README.md``), the JUnit XML
and the history line are all rendered from them, never re-parsed from each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

JSON_SCHEMA_VERSION = 1


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(slots=True)
class DrillStep:
    """One step of a scenario: ``fault injected``, ``detected``, ``restore``, ``verified`` ..."""

    name: str
    started_at: str
    finished_at: str
    seconds: float
    offset: float
    """Seconds from the start of the scenario, for the timeline."""
    detail: str = ""
    ok: bool = True


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """One objective measured: an RTO (by target name) or an RPO (by data type)."""

    kind: str
    """``rto`` or ``rpo``."""
    name: str
    target_seconds: float
    achieved_seconds: float | None
    """None when it could not be measured (then the check fails)."""
    note: str = ""

    @property
    def met(self) -> bool:
        return self.achieved_seconds is not None and self.achieved_seconds <= self.target_seconds

    @property
    def margin_seconds(self) -> float | None:
        return None if self.achieved_seconds is None else self.target_seconds - self.achieved_seconds

    def describe(self) -> str:
        from bdr.durations import format_duration

        achieved = "not measured" if self.achieved_seconds is None else format_duration(self.achieved_seconds)
        verdict = "met" if self.met else "BREACHED"
        return f"{self.kind.upper()} {self.name}: achieved {achieved}, target {format_duration(self.target_seconds)} " \
               f"({verdict})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "target_seconds": self.target_seconds,
            "achieved_seconds": None if self.achieved_seconds is None else round(self.achieved_seconds, 3),
            "margin_seconds": None if self.margin_seconds is None else round(self.margin_seconds, 3),
            "met": self.met,
            "note": self.note,
        }


@dataclass(slots=True)
class DrillResult:
    """Everything one scenario run produced."""

    scenario: str
    title: str
    nodeid: str
    runtime: str
    started_at: str
    finished_at: str = ""
    outcome: Outcome = Outcome.PASSED
    failure: str = ""
    steps: list[DrillStep] = field(default_factory=list)
    fault_at: str | None = None
    verified_at: str | None = None
    checks: list[TargetCheck] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    """Backup ids, manifest checksums, versions, counts: whatever the scenario proves with."""

    @property
    def rto(self) -> TargetCheck | None:
        return next((c for c in self.checks if c.kind == "rto"), None)

    @property
    def rpos(self) -> list[TargetCheck]:
        return [c for c in self.checks if c.kind == "rpo"]

    @property
    def targets_met(self) -> bool:
        return all(c.met for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = str(self.outcome)
        data["checks"] = [c.to_dict() for c in self.checks]
        data["targets_met"] = self.targets_met
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DrillResult:
        values = {k: v for k, v in data.items() if k not in ("targets_met",)}
        values["outcome"] = Outcome(values.get("outcome", "passed"))
        values["steps"] = [DrillStep(**s) for s in values.get("steps", [])]
        values["checks"] = [
            TargetCheck(c["kind"], c["name"], c["target_seconds"], c["achieved_seconds"], c.get("note", ""))
            for c in values.get("checks", [])
        ]
        return cls(**values)


@dataclass(slots=True)
class RunReport:
    """One run of the drill suite: its results and the context an auditor needs."""

    run_id: str
    started_at: str
    finished_at: str
    results: list[DrillResult]
    environment: dict[str, Any]
    """bdr/Redis/Qdrant/Python versions, host, runtime, scale, policy file and its sha256."""
    policy: dict[str, Any]
    """The targets in force: {"rto": {...}, "rpo": {...}} in seconds."""
    schema_version: int = JSON_SCHEMA_VERSION

    @property
    def all_met(self) -> bool:
        return all(r.outcome == Outcome.PASSED and r.targets_met for r in self.results if r.outcome != "skipped")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "all_targets_met": self.all_met,
            "environment": self.environment,
            "policy": self.policy,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        return cls(
            run_id=data["run_id"],
            started_at=data["started_at"],
            finished_at=data["finished_at"],
            results=[DrillResult.from_dict(r) for r in data.get("results", [])],
            environment=data.get("environment", {}),
            policy=data.get("policy", {}),
            schema_version=data.get("schema_version", JSON_SCHEMA_VERSION),
        )
