"""``bdr restore redis --to-time TIME``: a base plus the archived stream up to TIME, through the one runbook.

A point-in-time restore is a Redis restore whose *input* differs, so it reuses the two restorers
and everything they own (safety backup, write pause, stop, atomic swap, start, verify, rollback,
the journal and ``--resume``/``--abort``):

- :class:`PointInTimeRestore` is a :class:`~bdr.engines.redis.restore.FullRestore` whose
  ``fetch`` step also fetches the plan's segments and assembles base + stream into an AOF
  directory (:mod:`.replay`); its ``check`` step then loads that into a private temporary
  redis-server (Redis's own loader replays the commands) and saves the RDB the normal install
  path stages, swaps in and verifies;
- :class:`PointInTimeSelectiveRestore` is a :class:`~bdr.engines.redis.selective.SelectiveRestore`
  (``--keys PATTERN``) whose temporary server is loaded the same way: the matching keys are
  copied as they were at TIME.

The plan (base, segments, window: :mod:`.window`) is made before the runbook starts, so a time the
archive cannot reach is refused (:class:`~bdr.errors.PointInTimeUnreachable`, exit 4) with the
earliest and latest reachable times before anything is fetched; it is kept in the journal, so an
interrupted restore resumes with the same base and cut. ``--dry-run`` runs fetch and check (the
replay included) and says which base and segments it uses and when the last replayed command
was received.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bdr.config import Config
from bdr.engines.base import Check, RestoreRequest, RestoreResult
from bdr.engines.redis.archive.bases import bases_of
from bdr.engines.redis.archive.layout import list_segments
from bdr.engines.redis.archive.replay import Replayed, assemble
from bdr.engines.redis.archive.window import Plan, iso_us, plan, reachable_text, us_of, windows
from bdr.engines.redis.restore import FullRestore
from bdr.engines.redis.selective import SelectiveRestore
from bdr.engines.runbook import Restorer, StepOutcome, run_restore
from bdr.engines.selection import RedisSelection, option
from bdr.errors import PointInTimeUnreachable, UsageError
from bdr.repository import Repository
from bdr.safety.journal import JournalEntry
from bdr.util.durations import format_duration

logger = logging.getLogger(__name__)

MODES = ("point-in-time", "point-in-time-selective")
"""The journal modes of these restores (``--resume``/``--abort`` find their restorer by it)."""
LATEST = "latest"


def _plan_of(state: Any) -> Plan:
    return Plan.from_state(dict(state))


def _state_of(chosen: Plan) -> dict[str, Any]:
    return chosen.to_state()


@dataclass(frozen=True, slots=True)
class PointInTimeSelection(RedisSelection):
    """A Redis selection (``--keys``/``--db``, or everything) at a moment: ``to_time`` as asked, ``plan`` the base
    and segments that reach it (made before the runbook starts, kept in the journal for ``--resume``)."""

    to_time: str | None = option(None)
    plan: Plan | None = option(None, parse=_plan_of, dump=_state_of)  # noqa: RUF009 (a field(), default None)

    def check(self) -> None:
        RedisSelection.check(self)
        if self.node:
            raise UsageError(detail="a point-in-time restore selects keys with --keys (and --db) only")

    @property
    def chosen(self) -> Plan:
        if self.plan is None:
            raise UsageError(detail="a point-in-time restore needs its plan (bdr.api.restore(..., to_time=...))")
        return self.plan


def parse_moment(value: str | datetime) -> int | None:
    """UTC microseconds of ``--to-time`` (None for ``latest``); a time without a zone is refused (ambiguous)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise UsageError(detail="--to-time needs a time zone")
        return us_of(value)
    text = value.strip()
    if text.lower() in (LATEST, "now"):
        return None
    if text.startswith("@"):
        try:
            return round(float(text[1:]) * 1_000_000)
        except ValueError:
            raise UsageError(detail=f"--to-time {value!r}: @ takes Unix seconds, e.g. @1796221499.5") from None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(detail=f"--to-time {value!r} is not a time: give 2026-12-02T14:04:59Z (UTC), "
                         "2026-12-02T15:04:59+01:00, @<unix seconds> or latest") from None
    if moment.tzinfo is None:
        raise UsageError(detail=f"--to-time {value!r} has no time zone: write {text}Z for UTC, or {text}+01:00")
    return us_of(moment.astimezone(UTC))


def archive_instance(config: Config, repo: Repository, target: str | None, base: str | None) -> str:
    """Whose archive a restore reads: the base's instance, else the target's when it has one, else the default."""
    if base is not None and base != LATEST:
        return repo.get(base, "redis").manifest.instance
    wanted = config.redis_instance(target).name
    if list_segments(repo, wanted) or target is None:
        return wanted
    logger.warning("redis %s has no archive in %s: restoring from the archive of %s", wanted, repo.url,
                   config.redis_default)
    return config.redis_default


def make_plan(repo: Repository, instance: str, target_us: int | None, base: str | None = None) -> Plan:
    """The plan of a restore of ``instance``'s archive to ``target_us`` (None: the latest reachable moment)."""
    segments = list_segments(repo, instance)
    found_bases = bases_of(repo, instance)
    if target_us is None:
        found = windows(segments, found_bases)
        if not found:
            raise PointInTimeUnreachable(instance=instance, time=LATEST, why="no base joins the archived stream",
                                         reachable=reachable_text(found))
        target_us = found[-1].to_us
    base_id = repo.get(base, "redis").id if base is not None and base != LATEST else None
    return plan(instance, segments, found_bases, target_us, base_id)


def _replay(restorer: PointInTimeRestore | PointInTimeSelectiveRestore, work: Path) -> str:
    """fetch, second half: the segments, and base + stream assembled where the first half put the base."""
    request = restorer.request
    assert request is not None and request.backup is not None and restorer.plan is not None
    incoming = work / "incoming"
    dbfilename = str(request.backup.manifest.facts.get("dbfilename") or "dump.rdb")
    rdb = incoming / dbfilename
    if not rdb.is_file():
        raise PointInTimeUnreachable(instance=restorer.plan.instance, time=iso_us(restorer.plan.target_us),
                                     why=f"base {request.backup.id} holds no {dbfilename}",
                                     reachable="choose another base")
    assembled = work / "replay"
    shutil.rmtree(assembled, ignore_errors=True)
    replayed = assemble(request.repository, restorer.plan, rdb, assembled, request.cipher)
    shutil.rmtree(incoming)
    os.replace(assembled, incoming)
    restorer.replayed = replayed
    restorer.result.facts["point_in_time"] = _facts(restorer.plan, replayed)
    return (f"{len(restorer.plan.segments)} segment(s) match their checksums; {replayed.stream_bytes} bytes of the "
            f"stream up to offset {replayed.cut} (last command received {iso_us(replayed.cut_us)})")


def _facts(chosen: Plan, replayed: Replayed | None) -> dict[str, Any]:
    facts: dict[str, Any] = {"to_time": iso_us(chosen.target_us), "instance": chosen.instance, "base": chosen.base_id,
                             "stream": chosen.join.replid, "base_offset": chosen.join.offset,
                             "segments": [s.name.name for s in chosen.segments], "window": chosen.window.to_dict()}
    if chosen.skipped:
        facts["bases_skipped"] = list(chosen.skipped)
    if replayed is not None:
        facts.update(replayed.to_dict())
        facts["precision_seconds"] = round(max(0, chosen.target_us - replayed.confirmed_us) / 1e6, 6)
    return facts


def _would(chosen: Plan, replayed: Replayed | None) -> str:
    if replayed is None:
        return f"to {iso_us(chosen.target_us)} from {chosen.describe()}"
    precision = max(0, chosen.target_us - replayed.confirmed_us) / 1e6
    return (f"to {iso_us(chosen.target_us)} from {chosen.describe()}: replays up to offset {replayed.cut}, the last "
            f"command received at {iso_us(replayed.cut_us)}, none newer known up to {iso_us(replayed.confirmed_us)} "
            f"(precision {format_duration(precision)}; the window is {chosen.window.describe()})")


@dataclass(slots=True)
class PointInTimeRestore(FullRestore):
    """A full restore to a moment (see the module docstring)."""

    plan: Plan | None = None
    replayed: Replayed | None = None

    def fetch(self) -> StepOutcome:
        first = FullRestore.fetch(self)
        assert self.work is not None
        return StepOutcome(f"base {first.detail}; {_replay(self, self.work)}")

    def check(self) -> StepOutcome:
        outcome = FullRestore.check(self)
        assert self.plan is not None
        when = iso_us(self.replayed.cut_us) if self.replayed else iso_us(self.plan.target_us)
        self.expected.origin = (f"base {self.plan.base_id} + the archived stream up to {when}, replayed by a "
                                "temporary redis-server and saved as an RDB")
        return StepOutcome(f"replayed: {outcome.detail}")

    def dry_run(self) -> list[Check]:
        assert self.plan is not None
        checks = FullRestore.dry_run(self)
        return [Check(c.name, c.ok, f"point in time {_would(self.plan, self.replayed)}; {c.detail}") for c in checks]

    def state(self) -> dict[str, Any]:
        assert self.plan is not None
        return {**FullRestore.state(self), "mode": MODES[0], "selection": _selection_state(self)}


@dataclass(slots=True)
class PointInTimeSelectiveRestore(SelectiveRestore):
    """``--keys PATTERN --to-time TIME``: the matching keys as they were at TIME (see the module docstring)."""

    plan: Plan | None = None
    replayed: Replayed | None = None

    def fetch(self) -> StepOutcome:
        first = SelectiveRestore.fetch(self)
        assert self.work is not None
        return StepOutcome(f"base {first.detail}; {_replay(self, self.work)}")

    def dry_run(self) -> list[Check]:
        assert self.plan is not None
        checks = SelectiveRestore.dry_run(self)
        return [Check(c.name, c.ok, f"point in time {_would(self.plan, self.replayed)}; {c.detail}") for c in checks]

    def state(self) -> dict[str, Any]:
        assert self.plan is not None
        return {**SelectiveRestore.state(self), "mode": MODES[1], "selection": _selection_state(self)}


def _selection_state(restorer: PointInTimeRestore | PointInTimeSelectiveRestore) -> dict[str, Any]:
    """The journal's selection: the request's (keys, db, to_time) with the plan the restorer uses."""
    assert restorer.plan is not None
    asked = restorer.request.selection if restorer.request is not None else None
    selection = asked if isinstance(asked, PointInTimeSelection) else PointInTimeSelection()
    return dataclasses.replace(selection, plan=restorer.plan).to_state()


class PointInTimeEngine:
    """The runbook's entry points for restores to a moment (a ``RestoringEngine``)."""

    source = "redis"
    selection_type = PointInTimeSelection

    def instance_name(self, config: Config, target: str | None) -> str:
        return config.redis_instance(target).name

    def restorer(self, request: RestoreRequest) -> Restorer:
        from bdr.engines.redis import ENGINE

        selection = PointInTimeSelection.expect(request.selection, self.source)
        chosen = selection.chosen
        restorer: PointInTimeRestore | PointInTimeSelectiveRestore
        if selection.keys:
            restorer = PointInTimeSelectiveRestore.new(ENGINE, request)  # type: ignore[assignment]
        else:
            restorer = PointInTimeRestore.new(ENGINE, request)  # type: ignore[assignment]
        restorer.plan = chosen
        restorer.result.facts["point_in_time"] = _facts(chosen, None)
        return restorer

    def resumed(self, request: RestoreRequest, entry: JournalEntry, result: RestoreResult) -> Restorer:
        from bdr.engines.redis import ENGINE

        chosen = PointInTimeSelection.expect(request.selection, self.source).chosen
        restorer: PointInTimeRestore | PointInTimeSelectiveRestore
        if entry.state.get("mode") == MODES[1]:
            restorer = PointInTimeSelectiveRestore.resumed(ENGINE, request, entry, result)  # type: ignore[assignment]
        else:
            restorer = PointInTimeRestore.resumed(ENGINE, request, entry, result)  # type: ignore[assignment]
        restorer.plan = chosen
        return restorer


POINT_IN_TIME = PointInTimeEngine()


def restore_to_time(request: RestoreRequest, base: str | None, to_time: str | datetime) -> RestoreResult:
    """Restore Redis ``request.target`` to ``to_time`` from the archive in ``request.repository`` (``base``: the
    set to start from, None: the newest that reaches it), all of it or the keys of ``request.selection``.

    ``request`` is made by :func:`bdr.api.restore` as for any restore (its ``backup`` is None): this adds
    the plan and its base, then runs it through the runbook."""
    asked = RedisSelection.expect(request.selection, "redis")
    selection = PointInTimeSelection(keys=asked.keys, db=asked.db, node=asked.node)
    selection.check()
    target_us = parse_moment(to_time)
    repo = request.repository
    instance = archive_instance(request.config, repo, request.target, base)
    the_plan = make_plan(repo, instance, target_us, base)
    found = repo.get(the_plan.base_id, "redis")
    request = dataclasses.replace(request, backup=found, selection=dataclasses.replace(
        selection, to_time=iso_us(the_plan.target_us), plan=the_plan))
    with repo.reading(found.id):
        return run_restore(POINT_IN_TIME, request)
