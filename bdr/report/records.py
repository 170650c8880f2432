"""What a drill proves, as typed records: scope, steps, objectives, checks, remediation.

These records are the single source of the compliance report: the HTML, the JSON (whose
schema is :data:`JSON_SCHEMA_VERSION`, documented in ``drills/README.md``), the JUnit XML
and the history line are all rendered from them, never re-parsed from each other. Both
kinds of drill produce them: the sandbox drills (``drills/``, services bdr builds itself)
and the live restore test (:mod:`bdr.drill`, the user's own backups).

Vocabulary:

- an *objective* (:class:`TargetCheck`) is a time measured against a target of the policy:
  an RTO by target name, an RPO by data type, or another window. A policy may define no
  target for what was measured: the check is then shown as *no target defined*, neither
  met nor breached;
- a *verification* (:class:`Verification`) is a yes/no proof: content equal to the
  manifest, an application check of ``bdr.yaml``, production left untouched. A failed one
  is a breach, one that could not be made is *not verified* (never *passed*);
- a *remediation item* (:class:`RemediationItem`) is what someone must fix: every breach,
  failure or skipped scenario, with an owner and a due date, carried from run to run until
  a later run passes it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from bdr.engines.base import Step, StepStatus

JSON_SCHEMA_VERSION = 2
"""2: scope, operator, verifications, cases, remediation and coverage (1: the first drill reports)."""


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


class ScopeKind(StrEnum):
    SANDBOX = "sandbox"
    """Services bdr built itself, with a synthetic workload: proves bdr works."""
    LIVE = "live"
    """The user's own backups restored into their test targets: proves their backups restore."""


@dataclass(slots=True)
class DrillStep(Step):
    """One step of a scenario (``fault injected``, ``detected``, ``restore``, ``verified`` ...): the engine's
    :class:`~bdr.engines.base.Step` placed on the scenario's clock.

    A scenario fills it in as it runs (``with drill.step("restore") as step: ... step.detail = ...``);
    the report JSON has the step's fields, its ``offset`` and ``ok`` (not failed)."""

    offset: float = 0.0
    """Seconds from the start of the scenario, for the timeline."""

    @property
    def ok(self) -> bool:
        return self.status is not StepStatus.FAILED

    def to_dict(self) -> dict[str, Any]:
        return {**Step.to_dict(self), "offset": self.offset, "ok": self.ok}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DrillStep:
        """Back from :meth:`to_dict`, or from a report written before steps had a ``status`` (only ``ok``)."""
        status = data.get("status") or (StepStatus.OK if data.get("ok", True) else StepStatus.FAILED)
        return cls(name=str(data["name"]), started_at=str(data["started_at"]),
                   finished_at=str(data.get("finished_at", "")), seconds=float(data.get("seconds", 0.0)),
                   status=StepStatus(status), detail=str(data.get("detail", "")),
                   offset=float(data.get("offset", 0.0)))


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """One objective measured: an RTO (by target name), an RPO (by data type), another window."""

    kind: str
    """``rto``, ``rpo``, or another objective (``loss window``)."""
    name: str
    target_seconds: float | None
    """None: the policy defines no target for it (shown as such; neither met nor breached)."""
    achieved_seconds: float | None
    """None when it could not be measured (then the check is breached, if it has a target)."""
    note: str = ""
    phases: tuple[tuple[str, float], ...] = ()
    """An RTO split into its phases (detect, restore, verify), in seconds; they add up to it."""

    @property
    def defined(self) -> bool:
        return self.target_seconds is not None

    @property
    def met(self) -> bool:
        return (self.target_seconds is not None and self.achieved_seconds is not None
                and self.achieved_seconds <= self.target_seconds)

    @property
    def breached(self) -> bool:
        return self.defined and not self.met

    @property
    def margin_seconds(self) -> float | None:
        if self.achieved_seconds is None or self.target_seconds is None:
            return None
        return self.target_seconds - self.achieved_seconds

    @property
    def objective(self) -> str:
        """``rto redis_restart``: the key of this objective in the history and the coverage matrix."""
        return f"{self.kind} {self.name}"

    def describe(self) -> str:
        from bdr.util.durations import format_duration

        achieved = "not measured" if self.achieved_seconds is None else format_duration(self.achieved_seconds)
        if self.target_seconds is None:
            return f"{self.kind.upper()} {self.name}: achieved {achieved}, no target defined"
        verdict = "met" if self.met else "BREACHED"
        return f"{self.kind.upper()} {self.name}: achieved {achieved}, target {format_duration(self.target_seconds)} " \
               f"({verdict})"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "target_seconds": self.target_seconds,
            "achieved_seconds": None if self.achieved_seconds is None else round(self.achieved_seconds, 3),
            "margin_seconds": None if self.margin_seconds is None else round(self.margin_seconds, 3),
            "met": self.met,
            "note": self.note,
        }
        if self.phases:
            data["phases"] = {name: round(seconds, 3) for name, seconds in self.phases}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetCheck:
        phases = data.get("phases") or {}
        return cls(str(data["kind"]), str(data["name"]), data.get("target_seconds"), data.get("achieved_seconds"),
                   str(data.get("note", "")), tuple((str(k), float(v)) for k, v in dict(phases).items()))


class VerificationKind(StrEnum):
    CONTENT = "content"
    """The restored data against the set's manifest (digest, content hash, sha256)."""
    APPLICATION = "application"
    """An application check of bdr.yaml (a key that must exist, a minimum point count ...)."""
    PRODUCTION = "production"
    """Production was only read: same process, counts equal or only grown."""
    RESTORE = "restore"
    """A check the restore itself made (the runbook's verify step)."""


@dataclass(frozen=True, slots=True)
class Verification:
    """One yes/no proof a drill made, or could not make (``skipped``: *not verified*)."""

    kind: str
    name: str
    ok: bool
    detail: str = ""
    skipped: bool = False

    @property
    def failed(self) -> bool:
        return not self.ok and not self.skipped

    @property
    def status(self) -> str:
        return "not verified" if self.skipped else ("passed" if self.ok else "FAILED")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "ok": self.ok, "detail": self.detail, "skipped": self.skipped}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verification:
        return cls(str(data["kind"]), str(data["name"]), bool(data["ok"]), str(data.get("detail", "")),
                   bool(data.get("skipped", False)))


@dataclass(slots=True)
class DrillResult:
    """Everything one scenario (or one case of it) produced."""

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
    case: str = ""
    """One case of a scenario with several (``deleted_redis_keys`` of ``accidental_deletion``)."""
    verifications: list[Verification] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    """The objectives (``rto redis_restart``) the scenario is meant to measure, for the coverage matrix."""
    sources: list[str] = field(default_factory=list)
    """The sources it exercises (redis, qdrant, config): whose owner a remediation item goes to."""

    @property
    def key(self) -> str:
        """``scenario`` or ``scenario/case``: what the history and the trend are keyed by."""
        return self.scenario if not self.case or self.case == self.scenario else f"{self.scenario}/{self.case}"

    @property
    def rto(self) -> TargetCheck | None:
        return next((c for c in self.checks if c.kind == "rto"), None)

    @property
    def rpos(self) -> list[TargetCheck]:
        return [c for c in self.checks if c.kind == "rpo"]

    @property
    def failed_verifications(self) -> list[Verification]:
        return [v for v in self.verifications if v.failed]

    @property
    def targets_met(self) -> bool:
        return all(c.met for c in self.checks if c.defined) and not self.failed_verifications

    @property
    def measured_anything(self) -> bool:
        return bool(self.checks or self.verifications)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = str(self.outcome)
        data["steps"] = [s.to_dict() for s in self.steps]
        data["checks"] = [c.to_dict() for c in self.checks]
        data["verifications"] = [v.to_dict() for v in self.verifications]
        data["targets_met"] = self.targets_met
        data["key"] = self.key
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DrillResult:
        values = {k: v for k, v in data.items() if k not in ("targets_met", "key")}
        values["outcome"] = Outcome(values.get("outcome", "passed"))
        values["steps"] = [DrillStep.from_dict(s) for s in values.get("steps", [])]
        values["checks"] = [TargetCheck.from_dict(c) for c in values.get("checks", [])]
        values["verifications"] = [Verification.from_dict(v) for v in values.get("verifications", [])]
        return cls(**values)


@dataclass(frozen=True, slots=True)
class SystemTested:
    """One system in scope: what it is, the part it played, and how much data it held."""

    name: str
    """``redis/production``, ``qdrant/test``, ``config``."""
    role: str
    """``production (read only)``, ``restore target``, ``backup set``, ``sandbox service``."""
    description: str
    volume: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class StandIn:
    """What stood in for what (moto for S3, the embedded Qdrant engine for a Qdrant server)."""

    real: str
    stand_in: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Scope:
    """What the run tested and what it did not: the first thing an auditor reads."""

    kind: str
    """:class:`ScopeKind`: ``sandbox`` or ``live``."""
    summary: str
    systems: tuple[SystemTested, ...] = ()
    stand_ins: tuple[StandIn, ...] = ()
    rto_measures: str = ""
    rto_excludes: str = "detection and decision time: the clock starts when the recovery starts"
    notes: tuple[str, ...] = ()

    @property
    def live(self) -> bool:
        return self.kind == ScopeKind.LIVE

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "summary": self.summary, "systems": [s.to_dict() for s in self.systems],
                "stand_ins": [s.to_dict() for s in self.stand_ins], "rto_measures": self.rto_measures,
                "rto_excludes": self.rto_excludes, "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scope:
        return cls(
            kind=str(data.get("kind", ScopeKind.SANDBOX)),
            summary=str(data.get("summary", "")),
            systems=tuple(SystemTested(**s) for s in data.get("systems", [])),
            stand_ins=tuple(StandIn(**s) for s in data.get("stand_ins", [])),
            rto_measures=str(data.get("rto_measures", "")),
            rto_excludes=str(data.get("rto_excludes", "")),
            notes=tuple(str(n) for n in data.get("notes", [])),
        )


class ItemStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class RemediationItem:
    """Something to fix: a breach, a failure or a scenario that did not run, with its owner and due date."""

    id: str
    """Stable across runs: ``<scenario key>: <what>`` (``redis_restart: RTO redis_restart``)."""
    scenario: str
    """The scenario key (``accidental_deletion/deleted_redis_keys``)."""
    kind: str
    """``breach``, ``failure``, ``error`` or ``skipped``."""
    title: str
    detail: str
    owner: str
    due: str
    """ISO date (``2026-12-09``)."""
    status: str = ItemStatus.OPEN
    opened_run: str = ""
    opened_at: str = ""
    last_seen_run: str = ""
    resolved_run: str = ""
    carried: bool = False
    """Opened by an earlier run and still open (or resolved by this one)."""

    @property
    def open(self) -> bool:
        return self.status == ItemStatus.OPEN

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RemediationItem:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, slots=True)
class CoverageRow:
    """One target of the policy and the scenarios that tested it in this run (or why none did)."""

    objective: str
    """``rto redis_restart``, ``rpo sessions``."""
    target_seconds: float
    tested_by: tuple[tuple[str, str], ...] = ()
    """(scenario key, verdict of that objective there: met / BREACHED / not measured)."""
    planned_by: tuple[str, ...] = ()
    """Scenarios meant to test it that did not measure it in this run (skipped, failed early)."""
    note: str = ""

    @property
    def tested(self) -> bool:
        return bool(self.tested_by)

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "target_seconds": self.target_seconds,
                "tested_by": [{"scenario": s, "verdict": v} for s, v in self.tested_by],
                "planned_by": list(self.planned_by), "tested": self.tested, "note": self.note}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CoverageRow:
        return cls(str(data["objective"]), float(data["target_seconds"]),
                   tuple((str(t["scenario"]), str(t["verdict"])) for t in data.get("tested_by", [])),
                   tuple(str(p) for p in data.get("planned_by", [])), str(data.get("note", "")))


def default_scope() -> Scope:
    """The scope of a record written before scopes were recorded (schema 1): a sandbox run."""
    return Scope(ScopeKind.SANDBOX, "sandbox drill (recorded before bdr wrote a scope statement)")


@dataclass(slots=True)
class RunReport:
    """One run of the drills (sandbox or live): its results and the context an auditor needs."""

    run_id: str
    started_at: str
    finished_at: str
    results: list[DrillResult]
    environment: dict[str, Any]
    """bdr/Redis/Qdrant/Python versions, host, runtime, scale, policy file, its sha256 and git commit."""
    policy: dict[str, Any]
    """The targets in force: {"rto": {...}, "rpo": {...}} in seconds."""
    schema_version: int = JSON_SCHEMA_VERSION
    scope: Scope = field(default_factory=default_scope)
    operator: str = ""
    """Who ran it (``--operator``, else the login user); never blank in a report bdr writes."""
    remediation: list[RemediationItem] = field(default_factory=list)
    coverage: list[CoverageRow] = field(default_factory=list)

    @property
    def all_met(self) -> bool:
        return all(r.outcome == Outcome.PASSED and r.targets_met for r in self.results if r.outcome != "skipped")

    @property
    def live(self) -> bool:
        return self.scope.live

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "all_targets_met": self.all_met,
            "scope": self.scope.to_dict(),
            "operator": self.operator,
            "environment": self.environment,
            "policy": self.policy,
            "results": [r.to_dict() for r in self.results],
            "remediation": [i.to_dict() for i in self.remediation],
            "coverage": [c.to_dict() for c in self.coverage],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        scope = data.get("scope")
        return cls(
            run_id=data["run_id"],
            started_at=data["started_at"],
            finished_at=data["finished_at"],
            results=[DrillResult.from_dict(r) for r in data.get("results", [])],
            environment=data.get("environment", {}),
            policy=data.get("policy", {}),
            schema_version=data.get("schema_version", JSON_SCHEMA_VERSION),
            scope=Scope.from_dict(scope) if isinstance(scope, dict) else default_scope(),
            operator=str(data.get("operator") or data.get("environment", {}).get("user", "")),
            remediation=[RemediationItem.from_dict(i) for i in data.get("remediation", [])],
            coverage=[CoverageRow.from_dict(c) for c in data.get("coverage", [])],
        )
