"""Recording a scenario as it runs: timed steps, the fault, the verification, the objectives.

A scenario calls ``drill.fault()`` when it injects the disaster (or ``drill.start()`` where
nothing is broken: the monthly restore test, the freshness check) and ``drill.verified()``
when the recovered data has been checked; the achieved RTO is the time between the two,
split into detect, restore and verify (:mod:`bdr.report.phases`). ``drill.rpo(...)`` turns
the writer's acknowledged writes into an achieved RPO per data type; ``drill.verification``
records a yes/no proof (the fingerprints of a restored store before and after).
``drill.assert_targets()`` fails the test with the numbers when any is breached.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bdr.engines.base import StepStatus
from bdr.report.phases import rto_phases
from bdr.report.records import DrillResult, DrillStep, TargetCheck, Verification
from bdr.repository.manifest import to_iso
from drills.policy import Policy


def _now() -> datetime:
    return datetime.now(UTC)


class Drill:
    """The recorder handed to each scenario by the ``drill`` fixture."""

    def __init__(self, result: DrillResult, policy: Policy) -> None:
        self.result = result
        self.policy = policy
        self._origin = time.monotonic()
        self._origin_wall = _now()
        self._fault_mono: float | None = None
        self._fault_wall: datetime | None = None
        self._verified_mono: float | None = None

    @property
    def evidence(self) -> dict[str, Any]:
        return self.result.evidence

    def _finish(self, step: DrillStep, begun: float, ended: float, failed: bool = False) -> DrillStep:
        """Place ``step`` on the scenario's clock (monotonic ``begun``/``ended``) and record it."""
        start_wall = self._origin_wall.timestamp() + (begun - self._origin)
        end_wall = self._origin_wall.timestamp() + (ended - self._origin)
        step.started_at = to_iso(datetime.fromtimestamp(start_wall, UTC))
        step.finished_at = to_iso(datetime.fromtimestamp(end_wall, UTC))
        step.seconds = round(ended - begun, 4)
        step.offset = round(begun - self._origin, 4)
        if failed:
            step.status = StepStatus.FAILED
        self.result.steps.append(step)
        return step

    def _step(self, name: str, begun: float, ended: float, detail: str) -> DrillStep:
        return self._finish(DrillStep(name=name, started_at="", detail=detail), begun, ended)

    @contextlib.contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[DrillStep]:
        """Time a step; the scenario may fill in the yielded step's ``detail``; an exception marks it failed."""
        step = DrillStep(name=name, started_at=to_iso(_now()), detail=detail)
        begun = time.monotonic()
        try:
            yield step
        except BaseException as exc:
            step.detail = step.detail or f"{type(exc).__name__}: {exc}"
            self._finish(step, begun, time.monotonic(), failed=True)
            raise
        self._finish(step, begun, time.monotonic())

    def mark(self, name: str, detail: str = "") -> None:
        """An instantaneous event on the timeline."""
        now = time.monotonic()
        self._step(name, now, now, detail)

    def fault(self, detail: str) -> float:
        """The disaster happens now: the RTO clock starts. Returns the wall-clock time."""
        return self._clock("fault injected", detail)

    def start(self, detail: str) -> float:
        """Where nothing is broken (a restore test, a schedule check): the clock starts at ``test start``."""
        return self._clock("test start", detail)

    def _clock(self, name: str, detail: str) -> float:
        self._fault_mono = time.monotonic()
        self._fault_wall = _now()
        self.result.fault_at = to_iso(self._fault_wall)
        self._step(name, self._fault_mono, self._fault_mono, detail)
        return self._fault_wall.timestamp()

    @property
    def fault_time(self) -> float:
        assert self._fault_wall is not None, "drill.fault() was not called"
        return self._fault_wall.timestamp()

    def verified(self, detail: str = "data verified") -> float:
        """The recovered data has been checked: the RTO clock stops. Returns the achieved RTO."""
        assert self._fault_mono is not None, "drill.fault() must come before drill.verified()"
        self._verified_mono = time.monotonic()
        self.result.verified_at = to_iso(_now())
        self._step("data verified", self._verified_mono, self._verified_mono, detail)
        return self._verified_mono - self._fault_mono

    def rto(self, target: str, note: str = "") -> TargetCheck:
        """Record the achieved RTO against the policy's ``target`` (e.g. ``redis_restart``)."""
        achieved = None
        if self._fault_mono is not None and self._verified_mono is not None:
            achieved = self._verified_mono - self._fault_mono
        check = TargetCheck("rto", target, self.policy.rto(target), achieved, note, rto_phases(self.result.steps))
        self.result.checks.append(check)
        return check

    def rpo(self, data_type: str, newest_surviving_write: float | None, note: str = "") -> TargetCheck:
        """Achieved RPO of ``data_type``: fault time minus the newest acknowledged write that survived."""
        achieved = None if newest_surviving_write is None else max(0.0, self.fault_time - newest_surviving_write)
        check = TargetCheck("rpo", data_type, self.policy.rpo(data_type), achieved, note)
        self.result.checks.append(check)
        return check

    def check(self, kind: str, name: str, target: float | None, achieved: float | None, note: str = "") -> TargetCheck:
        """Record any other objective (the freshness scenario's schedule windows)."""
        check = TargetCheck(kind, name, target, achieved, note)
        self.result.checks.append(check)
        return check

    def verification(self, kind: str, name: str, ok: bool, detail: str = "", skipped: bool = False) -> Verification:
        """Record a yes/no proof (``content``: a restored store's fingerprint equals the one before)."""
        verification = Verification(kind, name, ok, detail, skipped)
        self.result.verifications.append(verification)
        return verification

    def fingerprints(self, before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> str:
        """Compare each restored store's fingerprint after the recovery with the one before; one verification per
        store, both sets in the evidence; what was compared, in words, for the step's detail."""
        self.evidence["fingerprints"] = {"before": before, "after": after}
        said = []
        for store, then in before.items():
            now = after.get(store)
            equal = now is not None and _same(then, now)
            what = _fingerprint_words(store, then)
            detail = f"{what}: equal before and after" if equal else f"{what}: DIFFERS ({_difference(then, now)})"
            self.verification("content", f"{store} fingerprint", equal, detail)
            said.append(detail)
        return "; ".join(said)

    def assert_targets(self) -> None:
        """Fail the test, with the numbers, when any objective was breached."""
        breached = [c.describe() for c in self.result.checks if c.breached]
        breached += [f"{v.kind} check {v.name} FAILED: {v.detail}" for v in self.result.failed_verifications]
        if breached:
            pytest.fail("; ".join(breached), pytrace=False)


def _same(a: Any, b: Any) -> bool:
    """Equal, floats within float32 rounding (a vector checksum after an engine re-normalized cosine vectors)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=1e-6)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _fingerprint_words(store: str, facts: dict[str, Any]) -> str:
    if store.startswith("redis/"):
        return f"{store} {facts.get('keys')} keys, DEBUG DIGEST {str(facts.get('digest'))[:16]}"
    if store.startswith("qdrant/"):
        return f"{store} " + ", ".join(f"{name} {c.get('points')} points" for name, c in facts.items()) + \
            " (payloads by sha256, vectors within float32 rounding)"
    return f"{store} {len(facts)} files by sha256"


def _difference(then: dict[str, Any], now: dict[str, Any] | None) -> str:
    if now is None:
        return "not fingerprinted after"
    flat_then, flat_now = _flat(then), _flat(now)
    keys = sorted(k for k in set(flat_then) | set(flat_now) if not _same(flat_then.get(k), flat_now.get(k)))
    return ", ".join(f"{k}: {str(flat_then.get(k))[:20]} → {str(flat_now.get(k))[:20]}" for k in keys[:4])


def _flat(facts: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in facts.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
