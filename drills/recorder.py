"""Recording a scenario as it runs: timed steps, the fault, the verification, the objectives.

A scenario calls ``drill.fault()`` when it injects the disaster and ``drill.verified()``
when the recovered data has been checked; the achieved RTO is the time between the two.
``drill.rpo(...)`` turns the writer's acknowledged writes into an achieved RPO per data
type. ``drill.assert_targets()`` fails the test with the numbers when any is breached.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bdr.manifest import to_iso
from drills.evidence import DrillResult, DrillStep, TargetCheck
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

    def _step(self, name: str, begun: float, ended: float, detail: str, ok: bool) -> DrillStep:
        start_wall = self._origin_wall.timestamp() + (begun - self._origin)
        end_wall = self._origin_wall.timestamp() + (ended - self._origin)
        step = DrillStep(
            name=name,
            started_at=to_iso(datetime.fromtimestamp(start_wall, UTC)),
            finished_at=to_iso(datetime.fromtimestamp(end_wall, UTC)),
            seconds=round(ended - begun, 4),
            offset=round(begun - self._origin, 4),
            detail=detail,
            ok=ok,
        )
        self.result.steps.append(step)
        return step

    @contextlib.contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[dict[str, str]]:
        """Time a step; the yielded dict's ``detail`` may be filled in by the scenario."""
        info = {"detail": detail}
        begun = time.monotonic()
        try:
            yield info
        except BaseException as exc:
            self._step(name, begun, time.monotonic(), info["detail"] or f"{type(exc).__name__}: {exc}", False)
            raise
        self._step(name, begun, time.monotonic(), info["detail"], True)

    def mark(self, name: str, detail: str = "") -> None:
        """An instantaneous event on the timeline."""
        now = time.monotonic()
        self._step(name, now, now, detail, True)

    def fault(self, detail: str) -> float:
        """The disaster happens now: the RTO clock starts. Returns the wall-clock time."""
        self._fault_mono = time.monotonic()
        self._fault_wall = _now()
        self.result.fault_at = to_iso(self._fault_wall)
        self._step("fault injected", self._fault_mono, self._fault_mono, detail, True)
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
        self._step("data verified", self._verified_mono, self._verified_mono, detail, True)
        return self._verified_mono - self._fault_mono

    def rto(self, target: str, note: str = "") -> TargetCheck:
        """Record the achieved RTO against the policy's ``target`` (e.g. ``redis_restart``)."""
        achieved = None
        if self._fault_mono is not None and self._verified_mono is not None:
            achieved = self._verified_mono - self._fault_mono
        check = TargetCheck("rto", target, self.policy.rto(target), achieved, note)
        self.result.checks.append(check)
        return check

    def rpo(self, data_type: str, newest_surviving_write: float | None, note: str = "") -> TargetCheck:
        """Achieved RPO of ``data_type``: fault time minus the newest acknowledged write that survived."""
        achieved = None if newest_surviving_write is None else max(0.0, self.fault_time - newest_surviving_write)
        check = TargetCheck("rpo", data_type, self.policy.rpo(data_type), achieved, note)
        self.result.checks.append(check)
        return check

    def check(self, kind: str, name: str, target: float, achieved: float | None, note: str = "") -> TargetCheck:
        """Record any other objective (the freshness scenario's schedule windows)."""
        check = TargetCheck(kind, name, target, achieved, note)
        self.result.checks.append(check)
        return check

    def assert_targets(self) -> None:
        """Fail the test, with the numbers, when any objective was breached."""
        breached = [c for c in self.result.checks if not c.met]
        if breached:
            pytest.fail("; ".join(c.describe() for c in breached), pytrace=False)
