"""The restore runbook: one sequence for every engine, journaled, resumable, rolled back on failure.

Every restore (Redis full and selective, Qdrant, configuration) runs the same steps::

    fetch -> check -> safety backup -> [stop] -> replace -> [start] -> verify -> finish
                                         \\______ on failure: rollback ______/

- ``fetch``: the set's files into a work directory, each checked against the manifest;
- ``check``: everything the restore will load is checked, and the instance is proved able
  to start again, **before anything live is touched**; a failure here changes nothing;
- ``safety backup``: the current data, as a set tagged ``safety`` (skipped when there is
  nothing to protect);
- ``stop`` / ``start``: only for engines that swap files under a stopped service (Redis);
- ``replace``: the data put in place (atomically where the engine can);
- ``verify``: the live data compared with the backup; a failed check is a failure;
- ``finish``: what the restore kept for a rollback is released.

A failure (an error, a failed check, Ctrl-C or SIGTERM) in ``stop`` .. ``verify`` runs the
engine's ``rollback`` and raises :class:`~bdr.errors.RestoreRolledBack` (exit 10), or
:class:`~bdr.errors.RollbackFailed` (exit 12) when the rollback fails too, naming the step
that failed. Before each step the runbook writes the journal (:mod:`bdr.safety.journal`), so a
restore killed at any point is finished by ``--resume`` or rolled back by ``--abort``,
and meanwhile every command on that instance says so.

An engine supplies a :class:`Restorer`: the parts that differ. Its steps must be
idempotent (run again after a crash, they do what is left), and it keeps what it needs to
go on in :meth:`Restorer.state`, which the journal stores.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bdr.config import Config
from bdr.engines.base import Check, RestoreRequest, RestoreResult, StepLog, StepStatus
from bdr.engines.selection import Conflict, Selection
from bdr.errors import (
    BdrError,
    CheckFailed,
    NothingToResume,
    RestoreInProgress,
    RestoreRolledBack,
    RollbackFailed,
    UsageError,
    WouldLoseWrites,
)
from bdr.repository import ObjectCipher
from bdr.safety.failpoints import failpoint
from bdr.safety.journal import Journal, JournalEntry, Status, new_restore_id
from bdr.safety.signals import Interrupted, signals_as_interrupts, signals_held

logger = logging.getLogger(__name__)

FETCH, CHECK, SAFETY, STOP, REPLACE, START, VERIFY, FINISH, ROLLBACK = (
    "fetch", "check", "safety backup", "stop", "replace", "start", "verify", "finish", "rollback")
ORDER = (FETCH, CHECK, SAFETY, STOP, REPLACE, START, VERIFY, FINISH)
UNTOUCHED = (FETCH, CHECK, SAFETY)
"""Steps before which nothing live has changed: a failure there needs no rollback."""


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What a step did, for its line in the output and the journal."""

    detail: str = ""
    skipped: bool = False


class Restorer(Protocol):
    """The parts of a restore that differ between engines; :class:`Runbook` does the rest."""

    source: str
    stops_service: bool
    """Whether the restore stops and starts the service (``stop``/``start`` steps)."""
    result: RestoreResult
    """Counts, facts and checks it adds to the outcome."""

    @property
    def instance(self) -> str:
        """The instance being restored: the journal key."""
        ...

    def fetch(self) -> StepOutcome: ...

    def check(self) -> StepOutcome:
        """Prove the restore can work without touching anything live; raise otherwise."""
        ...

    def dry_run(self) -> list[Check]:
        """What a real run would change ("would restore ... (dry run, nothing changed)")."""
        ...

    def safety_backup(self) -> tuple[str | None, StepOutcome]:
        """Back up what the restore replaces; (None, skipped) when there is nothing to protect."""
        ...

    def stop(self) -> StepOutcome: ...

    def replace(self) -> StepOutcome: ...

    def start(self) -> StepOutcome: ...

    def verify(self) -> list[Check]: ...

    def rollback(self, safety_id: str | None) -> StepOutcome:
        """Put the data from before the restore back (and the service up if it was); idempotent."""
        ...

    def finish(self) -> StepOutcome:
        """Release what was kept for a rollback (old files, work directories)."""
        ...

    def discard(self) -> None:
        """Clean up after a restore that changed nothing live (a failed fetch/check, a dry run)."""
        ...

    def state(self) -> dict[str, Any]:
        """What ``--resume``/``--abort`` need, as JSON-able data (stored in the journal)."""
        ...


def _translated(exc: OSError) -> BdrError:
    from bdr.storage.local import translate_os_error

    return translate_os_error(exc, exc.filename or "the restore's work directory")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BdrError):
        return exc.message
    if isinstance(exc, Interrupted):
        return f"interrupted by {exc.args[0] if exc.args else 'a signal'}"
    if isinstance(exc, OSError):
        return _translated(exc).message
    return f"{type(exc).__name__}: {exc}"


@dataclass(slots=True)
class Runbook:
    """Runs a :class:`Restorer` through the steps, journaled, with rollback."""

    journal: Journal
    log: StepLog
    entry: JournalEntry | None = None
    _touched: bool = field(default=False, repr=False)
    _earlier: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """Steps an interrupted run recorded before this one took over (the journal keeps them all)."""

    # --- the journal ---------------------------------------------------------------------------

    def _begin(self, restorer: Restorer, ref: str, repository: str, safety_repository: str) -> JournalEntry:
        entry = JournalEntry(id=new_restore_id(), source=restorer.source, instance=restorer.instance, ref=ref,
                             repository=repository, safety_repository=safety_repository)
        self.entry = self.journal.begin(entry)
        return self.entry

    def _record(self, restorer: Restorer, step: str, status: str | None = None) -> None:
        assert self.entry is not None
        self.entry.step = step
        if status is not None:
            self.entry.status = status
        self.entry.state = restorer.state()
        self.entry.steps = [*self._earlier, *self.log.to_list()]
        self.journal.save(self.entry)

    def _run_step(self, restorer: Restorer, name: str, action: Callable[[], StepOutcome]) -> StepOutcome:
        self._record(restorer, name)
        key = name.replace(" ", "-")
        with self.log.step(name) as step:
            failpoint(f"restore.{key}")
            outcome = action()
            step.detail = outcome.detail
            if outcome.skipped:
                step.status = StepStatus.SKIPPED
            failpoint(f"restore.{key}.after")
        return outcome

    # --- a new restore -------------------------------------------------------------------------

    def run(self, restorer: Restorer, *, ref: str, repository: str, safety_repository: str, dry_run: bool = False,
            safety: bool = True) -> RestoreResult:
        """The whole restore of ``restorer`` (``dry_run``: fetch and check, then say what would change)."""
        self._begin(restorer, ref, repository, safety_repository)
        with signals_as_interrupts():
            if not self._prepare(restorer, dry_run=dry_run, safety=safety):
                return restorer.result
            return self._go_on(restorer, STOP if restorer.stops_service else REPLACE)

    def _prepare(self, restorer: Restorer, *, dry_run: bool = False, safety: bool = True) -> bool:
        """fetch, check, safety backup: nothing live is touched; a failure cleans up and leaves no journal.

        Returns False after a dry run (the restore ends there). A safety set already recorded
        (a resumed restore) is reused.
        """
        result = restorer.result
        try:
            self._run_step(restorer, FETCH, restorer.fetch)
            self._run_step(restorer, CHECK, restorer.check)
            if dry_run:
                result.checks.extend(restorer.dry_run())
                self._close_untouched(restorer, Status.ABORTED)
                return False
            if not safety:
                self.log.skipped(SAFETY, "turned off")
            elif result.safety_id is None:
                def take() -> StepOutcome:
                    safety_id, outcome = restorer.safety_backup()
                    result.safety_id = safety_id
                    assert self.entry is not None
                    self.entry.safety_id = safety_id
                    return outcome

                self._run_step(restorer, SAFETY, take)
        except OSError as exc:
            self._close_untouched(restorer, Status.ABORTED, exc)
            raise _translated(exc) from exc
        except BaseException as exc:
            self._close_untouched(restorer, Status.ABORTED, exc)
            raise
        return True

    def _go_on(self, restorer: Restorer, first: str) -> RestoreResult:
        """From ``first`` to the end; on failure, roll back."""
        result = restorer.result
        steps = [s for s in ORDER[ORDER.index(first):] if restorer.stops_service or s not in (STOP, START)]
        try:
            for name in steps:
                if name == FINISH:
                    break
                self._touched = True
                if name == STOP:
                    self._run_step(restorer, STOP, restorer.stop)
                elif name == REPLACE:
                    self._run_step(restorer, REPLACE, restorer.replace)
                elif name == START:
                    self._run_step(restorer, START, restorer.start)
                elif name == VERIFY:
                    self._run_step(restorer, VERIFY, lambda: self._verify(restorer))
        except BaseException as exc:
            self._roll_back(restorer, exc)
        try:
            self._run_step(restorer, FINISH, restorer.finish)
        except (BdrError, OSError) as exc:  # the restore is verified: a cleanup problem is only a warning
            logger.warning("restore %s verified, but cleaning up failed: %s", result.ref, _reason(exc))
        assert self.entry is not None
        self._record(restorer, FINISH, Status.DONE)
        self.journal.close(self.entry, Status.DONE)
        return result

    def _verify(self, restorer: Restorer) -> StepOutcome:
        checks = restorer.verify()
        restorer.result.checks.extend(checks)
        failed = [c for c in checks if not c.ok]
        if failed:
            raise CheckFailed(detail="; ".join(f"{c.name}: {c.detail}" for c in failed))
        passed = [c for c in checks if not c.skipped]
        skipped = [c for c in checks if c.skipped]
        summary = f"{len(passed)} check(s) passed" + (f", {len(skipped)} not verified" if skipped else "")
        detail = "; ".join(f"{c.name}: {c.detail}" for c in checks)
        return StepOutcome(f"{summary}: {detail}" if checks else "nothing to check")

    def _close_untouched(self, restorer: Restorer, status: str, exc: BaseException | None = None) -> None:
        """Nothing live changed: clean up, and the restore leaves no journal behind."""
        with contextlib.suppress(Exception):
            restorer.discard()
        if self.entry is not None:
            if exc is not None:
                self.entry.error = _reason(exc)
            self.journal.close(self.entry, status)

    # --- rollback ------------------------------------------------------------------------------

    def _failed_step(self) -> str:
        return next((s.name for s in reversed(self.log.steps) if s.status == StepStatus.FAILED), "?")

    def _roll_back(self, restorer: Restorer, exc: BaseException) -> None:
        """Undo after ``exc``; always raises (rolled back, or rollback failed)."""
        result = restorer.result
        assert self.entry is not None
        failed = self._failed_step()
        reason = _reason(exc)
        self.entry.error = f"{failed}: {reason}"
        logger.warning("restore %s of %s %s failed at %s (%s); rolling back", result.ref, restorer.source,
                       restorer.instance, failed, reason)
        try:
            with signals_held():
                self._record(restorer, ROLLBACK, Status.ROLLING_BACK)
                with self.log.step(ROLLBACK) as step:
                    failpoint("restore.rollback")
                    step.detail = restorer.rollback(result.safety_id).detail
                    failpoint("restore.rollback.after")
        except WouldLoseWrites:
            self._record(restorer, ROLLBACK, Status.ROLLBACK_FAILED)
            raise
        except BaseException as again:
            self._record(restorer, ROLLBACK, Status.ROLLBACK_FAILED)
            kept = f"; the data from before the restore is kept in safety backup {result.safety_id}" \
                if result.safety_id else ""
            raise RollbackFailed(
                detail=f"restore of {result.ref} failed at step {failed!r} ({reason}) and so did the rollback "
                f"({_reason(again)}){kept}; the journal keeps the restore open: fix the cause, then run "
                f"`bdr restore {restorer.source} --abort --target {restorer.instance}`"
            ) from exc
        self.journal.close(self.entry, Status.ROLLED_BACK)
        undo = self.log.steps[-1].detail or "nothing had changed"
        if result.safety_id:
            undo += f" (the data from before is also in safety backup {result.safety_id})"
        raise RestoreRolledBack(ref=result.ref, step=failed, detail=reason, undo=undo) from exc

    # --- after a crash -------------------------------------------------------------------------

    def resume(self, restorer: Restorer, entry: JournalEntry) -> RestoreResult:
        """Finish an interrupted restore from where it stopped (or finish its rollback)."""
        self._earlier = [{**s, "run": "interrupted"} for s in entry.steps]
        self.entry = self.journal.adopt(entry)
        restorer.result.safety_id = entry.safety_id
        with signals_as_interrupts():
            if entry.status in (Status.ROLLING_BACK, Status.ROLLBACK_FAILED) or entry.step == ROLLBACK:
                return self._abort(restorer)
            if entry.step in UNTOUCHED:  # nothing live was touched: start again from the fetch
                self._prepare(restorer)
                return self._go_on(restorer, STOP if restorer.stops_service else REPLACE)
            first = entry.step if entry.step in ORDER else VERIFY
            if first == FINISH:
                return self._go_on(restorer, FINISH)
            return self._go_on(restorer, first)

    def abort(self, restorer: Restorer, entry: JournalEntry) -> RestoreResult:
        """Roll an interrupted restore back to the data from before it."""
        self._earlier = [{**s, "run": "interrupted"} for s in entry.steps]
        self.entry = self.journal.adopt(entry)
        restorer.result.safety_id = entry.safety_id
        with signals_as_interrupts():
            return self._abort(restorer)

    def _abort(self, restorer: Restorer) -> RestoreResult:
        assert self.entry is not None
        result = restorer.result
        if self.entry.step == FINISH and self.entry.status == Status.RUNNING:
            # verified already: the previous data may be half deleted; finish, and say how to undo
            self._go_on(restorer, FINISH)
            result.checks.append(Check("not rolled back", True, "the restore had been verified when it was "
                                       "interrupted, so it was finished; to undo it, restore the safety set"
                                       + (f": bdr restore {restorer.source} {result.safety_id} --target "
                                          f"{restorer.instance}" if result.safety_id else "")))
            return result
        if self.entry.step in UNTOUCHED and self.entry.status == Status.RUNNING:
            self.log.skipped(ROLLBACK, f"nothing live was changed (interrupted at {self.entry.step})")
            self._close_untouched(restorer, Status.ABORTED)
            result.checks.append(Check("aborted", True, "nothing live had been changed; the restore is cancelled"))
            return result
        before = (self.entry.step, self.entry.status)
        try:
            with signals_held():
                self._record(restorer, ROLLBACK, Status.ROLLING_BACK)
                with self.log.step(ROLLBACK) as step:
                    step.detail = restorer.rollback(result.safety_id).detail
        except WouldLoseWrites:
            self._record(restorer, *before)  # nothing was done: the restore stays where it was
            raise
        except BaseException as exc:
            self._record(restorer, ROLLBACK, Status.ROLLBACK_FAILED)
            raise RollbackFailed(
                detail=f"the rollback of restore {self.entry.id} failed ({_reason(exc)}); the journal keeps it open: "
                f"fix the cause and run `bdr restore {restorer.source} --abort --target {restorer.instance}` again"
                + (f"; the data from before the restore is in safety backup {result.safety_id}"
                   if result.safety_id else "")
            ) from exc
        self.journal.close(self.entry, Status.ROLLED_BACK)
        result.checks.append(Check("rolled back", True, f"restore {self.entry.id} rolled back to the data from "
                                   "before it" + (f" (also in safety backup {result.safety_id})"
                                                  if result.safety_id else "")))
        return result


# --- the entry points the service layer calls -------------------------------------------------------


class RestoringEngine(Protocol):
    """What an engine offers the runbook."""

    source: str

    @property
    def selection_type(self) -> type[Selection]:
        """The kind of selection its restores take: how the journal's is read back (:func:`request_of`)."""
        ...

    def instance_name(self, config: Config, target: str | None) -> str:
        """The journal key of the instance a restore with ``--target target`` works on."""
        ...

    def restorer(self, request: RestoreRequest) -> Restorer: ...

    def resumed(self, request: RestoreRequest, entry: JournalEntry, result: RestoreResult) -> Restorer:
        """The restorer of an interrupted restore, rebuilt from its journal entry (``request``: see
        :func:`request_of`)."""
        ...


def journal_of(config: Config) -> Journal:
    return Journal.at(config.repository_path())


def run_restore(engine: RestoringEngine, request: RestoreRequest) -> RestoreResult:
    """A new restore of ``request`` through the runbook."""
    journal = journal_of(request.config)
    journal.check_clear(engine.source, engine.instance_name(request.config, request.target))
    restorer = engine.restorer(request)
    book = Runbook(journal, request.log)
    return book.run(restorer, ref=restorer.result.ref, repository=request.repository.url,
                    safety_repository=request.safety_repo.url, dry_run=request.dry_run,
                    safety=request.safety_backup)


def pending_entry(config: Config, source: str, instance: str | None) -> JournalEntry:
    """The interrupted restore ``--resume``/``--abort`` work on (of ``instance``, else the only one)."""
    journal = journal_of(config)
    if instance is not None:
        entry = journal.find(source, instance)
    else:
        candidates = [e for e in journal.entries() if e.source == source]
        entry = candidates[0] if len(candidates) == 1 else None
        if len(candidates) > 1:
            names = ", ".join(e.instance for e in candidates)
            raise UsageError(detail=f"several {source} restores were interrupted ({names}): say which with --target")
    if entry is None:
        raise NothingToResume(source=source, instance=instance or "any instance")
    if entry.alive():
        raise RestoreInProgress(id=entry.id, source=source, instance=entry.instance, pid=entry.pid, host=entry.host,
                                step=entry.step)
    return entry


def request_of(config: Config, entry: JournalEntry, cipher: ObjectCipher | None, log: StepLog,
               force: bool = False, selection_type: type[Selection] = Selection) -> RestoreRequest:
    """The request an interrupted restore was made with, rebuilt from its journal entry.

    The set is looked up again where it was; when that repository cannot be read now (an
    S3 endpoint that is down), ``backup`` is None and only what needs no set (a Redis
    rollback to the files kept beside the data) can be done. The selection is read back as
    ``selection_type`` (the engine's kind) from the state's ``selection``.
    """
    from pathlib import Path

    from bdr.repository import Repository

    def repository(location: str) -> Repository:
        if "://" in location:
            return Repository.open(location, settings=config.remote)
        return Repository.open(Path(location))

    state = entry.state
    repo = repository(entry.repository)
    backup = None
    legacy = None
    if Path(entry.ref).exists() and not entry.ref.startswith(f"{entry.source}-"):
        legacy = Path(entry.ref)
    else:
        try:
            backup = repo.get(entry.ref)
        except BdrError as exc:
            logger.warning("the set %s of interrupted restore %s cannot be read now: %s", entry.ref, entry.id,
                           exc.message)
    return RestoreRequest(
        config=config, repository=repo, backup=backup, legacy_path=legacy, target=entry.instance, cipher=cipher,
        selection=selection_type.from_state(state.get("selection") or {}),
        conflict=Conflict.of(state.get("conflict") or Conflict.FAIL),
        safety_repository=repository(entry.safety_repository), log=log, force=force,
    )


def resume_restore(engine: RestoringEngine, config: Config, entry: JournalEntry, *, abort: bool, log: StepLog,
                   cipher: ObjectCipher | None, force: bool = False) -> RestoreResult:
    """Finish (``abort=False``) or roll back (``abort=True``) the interrupted restore ``entry``."""
    result = RestoreResult(source=entry.source, ref=entry.ref, target=entry.instance, steps=log.steps)
    result.facts["resumed"] = {"id": entry.id, "interrupted_at": entry.step, "status": entry.status,
                               "action": "abort" if abort else "resume"}
    restorer = engine.resumed(request_of(config, entry, cipher, log, force, engine.selection_type), entry, result)
    book = Runbook(journal_of(config), log)
    return book.abort(restorer, entry) if abort else book.resume(restorer, entry)
