"""The runbook's control flow: order, journal before every step, rollback, resume and abort, exit codes.

The restorer here records what it is asked to do (the engines' restorers are tested against real
services in tests/integration and tests/faults); every failure is a real exception raised at a step.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bdr.engines.base import Check, RestoreResult, StepLog
from bdr.engines.runbook import ORDER, Runbook, StepOutcome
from bdr.errors import NoSpace, RestoreRolledBack, RollbackFailed
from bdr.safety.journal import Journal, Status


@dataclass
class Recording:
    result: RestoreResult = field(default_factory=lambda: RestoreResult("redis", "redis-1", "production", []))
    fail_at: str | None = None
    fail_rollback: bool = False
    calls: list[str] = field(default_factory=list)
    journal_step_seen: dict[str, str] = field(default_factory=dict)
    journal: Journal | None = None
    source: str = "redis"
    stops_service: bool = True
    checks_ok: bool = True

    @property
    def instance(self) -> str:
        return "production"

    def _do(self, name: str) -> StepOutcome:
        self.calls.append(name)
        if self.journal is not None:
            entry = self.journal.find("redis", "production")
            self.journal_step_seen[name] = entry.step if entry else "-"
        if self.fail_at == name:
            raise OSError(28, "No space left on device", "/data")
        return StepOutcome(f"{name} done")

    def fetch(self) -> StepOutcome:
        return self._do("fetch")

    def check(self) -> StepOutcome:
        return self._do("check")

    def dry_run(self) -> list[Check]:
        return [Check("dry run", True, "would restore")]

    def safety_backup(self) -> tuple[str | None, StepOutcome]:
        return "redis-safety", self._do("safety backup")

    def stop(self) -> StepOutcome:
        return self._do("stop")

    def replace(self) -> StepOutcome:
        return self._do("replace")

    def start(self) -> StepOutcome:
        return self._do("start")

    def verify(self) -> list[Check]:
        self._do("verify")
        return [Check("key counts", self.checks_ok, "live 3, backup 3" if self.checks_ok else "live 2, backup 3")]

    def rollback(self, safety_id: str | None) -> StepOutcome:
        self.calls.append(f"rollback:{safety_id}")
        if self.fail_rollback:
            raise OSError(5, "Input/output error", "/data")
        return StepOutcome("put the old files back")

    def finish(self) -> StepOutcome:
        return self._do("finish")

    def discard(self) -> None:
        self.calls.append("discard")

    def state(self) -> dict[str, Any]:
        return {"work": "/data/.bdr-restore-x"}


def book(tmp_path: Path) -> tuple[Runbook, Journal]:
    journal = Journal(tmp_path / "journal")
    return Runbook(journal, StepLog()), journal


def run(runbook: Runbook, restorer: Recording, **kw: Any) -> RestoreResult:
    return runbook.run(restorer, ref="redis-1", repository="/repo", safety_repository="/repo", **kw)  # type: ignore[arg-type]


def test_steps_run_in_order_each_journaled_before_it_runs(tmp_path: Path) -> None:
    runbook, journal = book(tmp_path)
    restorer = Recording(journal=journal)
    result = run(runbook, restorer)
    assert restorer.calls == list(ORDER)
    assert restorer.journal_step_seen == {name: name for name in ORDER}
    assert result.ok and result.safety_id == "redis-safety"
    assert journal.find("redis", "production") is None  # closed
    (done,) = journal.history()
    assert done.status == Status.DONE and [s["name"] for s in done.steps] == list(ORDER)


@pytest.mark.parametrize("step", ["fetch", "check", "safety backup"])
def test_a_failure_before_anything_live_changed_needs_no_rollback(tmp_path: Path, step: str) -> None:
    runbook, journal = book(tmp_path)
    restorer = Recording(fail_at=step)
    with pytest.raises(NoSpace, match="no space left on /data"):  # typed, not an OSError traceback
        run(runbook, restorer)
    assert "discard" in restorer.calls and not any(c.startswith("rollback") for c in restorer.calls)
    assert journal.entries() == [] and journal.history()[0].status == Status.ABORTED


@pytest.mark.parametrize("step", ["stop", "replace", "start", "verify"])
def test_a_failure_from_the_stop_on_rolls_back_and_exits_10_naming_the_step(tmp_path: Path, step: str) -> None:
    runbook, journal = book(tmp_path)
    restorer = Recording(fail_at=step)
    with pytest.raises(RestoreRolledBack) as raised:
        run(runbook, restorer)
    assert raised.value.exit_code == 10
    assert f"failed at step {step!r}" in raised.value.message and "redis-safety" in raised.value.message
    assert restorer.calls[-1] == "rollback:redis-safety"
    assert journal.entries() == [] and journal.history()[0].status == Status.ROLLED_BACK


def test_a_failed_check_is_a_failure(tmp_path: Path) -> None:
    runbook, _ = book(tmp_path)
    with pytest.raises(RestoreRolledBack, match="key counts: live 2, backup 3"):
        run(runbook, Recording(checks_ok=False))


def test_a_failed_rollback_exits_12_and_keeps_the_journal_open(tmp_path: Path) -> None:
    runbook, journal = book(tmp_path)
    with pytest.raises(RollbackFailed) as raised:
        run(runbook, Recording(fail_at="start", fail_rollback=True))
    assert raised.value.exit_code == 12 and "--abort" in raised.value.message
    entry = journal.find("redis", "production")
    assert entry is not None and entry.status == Status.ROLLBACK_FAILED


def test_dry_run_changes_nothing_and_leaves_no_journal(tmp_path: Path) -> None:
    runbook, journal = book(tmp_path)
    restorer = Recording()
    result = run(runbook, restorer, dry_run=True)
    assert restorer.calls == ["fetch", "check", "discard"]
    assert [c.name for c in result.checks] == ["dry run"] and journal.entries() == []


def _interrupted(journal: Journal, step: str, status: str = Status.RUNNING) -> None:
    """A journal left by a killed run: written by a pid that no longer exists."""
    entry = {"id": "restore-x", "source": "redis", "instance": "production", "ref": "redis-1",
             "repository": "/repo", "safety_repository": "/repo", "step": step, "status": status,
             "safety_id": "redis-safety", "pid": 2 ** 22 + 7, "host": __import__("socket").gethostname(),
             "state": {}}
    journal.root.mkdir(parents=True, exist_ok=True)
    (journal.root / "redis-production.json").write_text(json.dumps(entry))


@pytest.mark.parametrize("step", ["stop", "replace", "start", "verify", "finish"])
def test_resume_goes_on_from_the_interrupted_step(tmp_path: Path, step: str) -> None:
    runbook, journal = book(tmp_path)
    _interrupted(journal, step)
    (entry,) = journal.interrupted()
    assert "was interrupted at step" in entry.interrupted_message() and "--resume" in entry.interrupted_message()
    restorer = Recording()
    runbook.resume(restorer, entry)  # type: ignore[arg-type]
    assert restorer.calls == list(ORDER[ORDER.index(step):])
    assert journal.entries() == []


def test_resume_of_a_restore_killed_before_the_stop_starts_again_and_keeps_its_safety_set(tmp_path: Path) -> None:
    runbook, journal = book(tmp_path)
    _interrupted(journal, "check")
    restorer = Recording()
    result = runbook.resume(restorer, journal.interrupted()[0])  # type: ignore[arg-type]
    assert restorer.calls == ["fetch", "check", *ORDER[ORDER.index("stop"):]]  # the safety set is reused
    assert result.safety_id == "redis-safety"


@pytest.mark.parametrize(("step", "status"), [("replace", Status.RUNNING), ("rollback", Status.ROLLING_BACK),
                                               ("rollback", Status.ROLLBACK_FAILED)])
def test_abort_rolls_back(tmp_path: Path, step: str, status: str) -> None:
    runbook, journal = book(tmp_path)
    _interrupted(journal, step, status)
    restorer = Recording()
    result = runbook.abort(restorer, journal.interrupted()[0])  # type: ignore[arg-type]
    assert restorer.calls == ["rollback:redis-safety"]
    assert result.checks[-1].name == "rolled back" and journal.history()[0].status == Status.ROLLED_BACK


def test_abort_before_the_stop_only_cleans_up(tmp_path: Path) -> None:
    runbook, journal = book(tmp_path)
    _interrupted(journal, "safety backup")
    restorer = Recording()
    runbook.abort(restorer, journal.interrupted()[0])  # type: ignore[arg-type]
    assert restorer.calls == ["discard"]


def test_sigterm_during_a_step_rolls_back(tmp_path: Path) -> None:
    runbook, _ = book(tmp_path)

    class Terminated(Recording):
        def replace(self) -> StepOutcome:
            self.calls.append("replace")
            signal.raise_signal(signal.SIGTERM)
            return StepOutcome()

    restorer = Terminated()
    with pytest.raises(RestoreRolledBack, match="interrupted by SIGTERM"):
        run(runbook, restorer)
    assert restorer.calls[-1] == "rollback:redis-safety"


def test_a_second_restore_of_the_same_instance_is_refused_while_one_is_interrupted(tmp_path: Path) -> None:
    from bdr.errors import RestoreInterrupted

    runbook, journal = book(tmp_path)
    _interrupted(journal, "replace")
    with pytest.raises(RestoreInterrupted) as raised:
        run(runbook, Recording())
    assert raised.value.exit_code == 13 and "bdr restore redis --resume --target production" in raised.value.message
