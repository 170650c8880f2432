"""The clock of one live restore test: timed steps, the test start, the moment the data was verified.

Steps are timed on the monotonic clock and placed on the wall clock from one origin, so
offsets add up exactly and a clock step of the host cannot shorten an RTO. The steps of
the restore runbook (fetch, check, safety backup, stop, replace, start, verify, finish)
come back from :func:`bdr.api.restore` with their own UTC times and are placed on the same
timeline (:meth:`Timeline.add_restore_steps`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from bdr.engines.base import Step, StepStatus
from bdr.report.phases import rto_phases
from bdr.report.records import DrillResult, DrillStep, TargetCheck
from bdr.repository.manifest import from_iso, to_iso

START = "test start"
VERIFIED = "data verified"


class Timeline:
    """Records the steps of one :class:`~bdr.report.records.DrillResult`."""

    def __init__(self, result: DrillResult) -> None:
        self.result = result
        self._origin = time.monotonic()
        self._origin_wall = datetime.now(UTC).timestamp()
        self._start: float | None = None
        self._verified: float | None = None

    def _wall(self, mono: float) -> str:
        return to_iso(datetime.fromtimestamp(self._origin_wall + (mono - self._origin), UTC))

    def _place(self, step: DrillStep, begun: float, ended: float, ok: bool = True) -> DrillStep:
        """Put ``step`` on this timeline (monotonic ``begun``/``ended``) and record it."""
        step.started_at, step.finished_at = self._wall(begun), self._wall(ended)
        step.seconds, step.offset = round(ended - begun, 4), round(begun - self._origin, 4)
        if not ok:
            step.status = StepStatus.FAILED
        self.result.steps.append(step)
        return step

    def _add(self, name: str, begun: float, ended: float, detail: str, ok: bool) -> DrillStep:
        return self._place(DrillStep(name=name, started_at="", detail=detail), begun, ended, ok)

    @contextlib.contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[DrillStep]:
        """Time a step; the yielded step's ``detail`` may be filled in; an exception marks it failed."""
        step = DrillStep(name=name, started_at="", detail=detail)
        begun = time.monotonic()
        try:
            yield step
        except BaseException as exc:
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            step.detail = step.detail or str(message)
            self._place(step, begun, time.monotonic(), ok=False)
            raise
        self._place(step, begun, time.monotonic())

    def mark(self, name: str, detail: str = "", ok: bool = True) -> None:
        now = time.monotonic()
        self._add(name, now, now, detail, ok)

    def start(self, detail: str) -> None:
        """The RTO clock starts: nothing is broken, the restore test begins."""
        self._start = time.monotonic()
        self.result.fault_at = self._wall(self._start)
        self._add(START, self._start, self._start, detail, True)

    def verified(self, detail: str = "restored data verified") -> None:
        self._verified = time.monotonic()
        self.result.verified_at = self._wall(self._verified)
        self._add(VERIFIED, self._verified, self._verified, detail, True)

    @property
    def rto_seconds(self) -> float | None:
        if self._start is None or self._verified is None:
            return None
        return self._verified - self._start

    def rto(self, target: str, target_seconds: float | None, note: str = "") -> TargetCheck:
        check = TargetCheck("rto", target, target_seconds, self.rto_seconds, note, rto_phases(self.result.steps))
        self.result.checks.append(check)
        return check

    def add_restore_steps(self, steps: Sequence[Step], begun: float) -> None:
        """The runbook's steps, placed on this timeline (``begun``: monotonic time the restore was called)."""
        if not steps:
            return
        try:
            first = from_iso(steps[0].started_at).timestamp()
        except ValueError:
            return
        for step in steps:
            try:
                at = from_iso(step.started_at).timestamp() - first + begun
            except ValueError:
                continue
            name = "verify: the runbook's checks" if step.name == "verify" else f"runbook: {step.name}"
            detail = step.detail if step.status is not StepStatus.SKIPPED else f"skipped: {step.detail}"
            self._add(name, at, at + step.seconds, detail, step.status is not StepStatus.FAILED)
