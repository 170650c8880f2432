"""A drill step is the engine's Step on the scenario's clock: one record, the same JSON as before plus its status."""

from __future__ import annotations

import pytest

from bdr.config import Config
from bdr.engines.base import Step, StepStatus
from bdr.report.records import DrillResult, DrillStep
from drills.policy import Policy
from drills.recorder import Drill

BEFORE = {"name": "restore", "started_at": "2026-12-02T14:00:00.000000Z", "finished_at": "2026-12-02T14:00:02.500000Z",
          "seconds": 2.5, "offset": 1.25, "detail": "bdr restore redis latest", "ok": False}
"""A step as the reports written before the one step record have it (no ``status``)."""


def test_a_report_written_before_reads_back() -> None:
    step = DrillStep.from_dict(BEFORE)
    assert isinstance(step, Step)
    assert (step.status, step.ok, step.offset, step.detail) == (StepStatus.FAILED, False, 1.25, BEFORE["detail"])
    assert {k: v for k, v in step.to_dict().items() if k != "status"} == BEFORE
    assert DrillStep.from_dict(step.to_dict()) == step


def test_the_recorder_yields_the_step_and_records_it() -> None:
    result = DrillResult("s", "S", "node", "process", "2026-12-02T14:00:00Z")
    drill = Drill(result, Policy(Config(), "bdr.yaml", ""))
    with drill.step("backup", "bdr backup redis") as step:
        step.detail += ": redis-20261202T140000Z-abc"
    with pytest.raises(RuntimeError), drill.step("restore") as failing:
        raise RuntimeError("the target is down")
    assert result.steps == [step, failing]
    assert step.ok and step.detail == "bdr backup redis: redis-20261202T140000Z-abc" and step.finished_at
    assert not failing.ok and failing.detail == "RuntimeError: the target is down"
    assert [s["ok"] for s in result.to_dict()["steps"]] == [True, False]
    assert DrillResult.from_dict(result.to_dict()).steps == result.steps
