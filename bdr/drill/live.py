"""The live restore test: each source's newest good set restored into its test target, measured, reported.

:func:`run_live` runs one test per source (``live_redis``, ``live_qdrant``, ``live_config``),
one after the other, each in these steps on its own clock:

1. **select backup**: the newest good set of the production instance (safety backups and
   damaged sets passed over, and named) in the repository, or off-site with ``remote``;
2. **production before**: production read (:mod:`.production`);
3. **test start**: the RTO clock starts; **restore** runs :func:`bdr.api.restore` into the
   test target (:mod:`.targets`): fetch (the download, off-site), check, safety backup of the
   target, stop, replace, start, verify; its steps go on the timeline;
4. **verify content** (the source's proof, :mod:`.profiles`) and **application checks** (:mod:`.checks`);
   **data verified**: the clock stops: that is the achieved RTO, split into detect (0: the
   test breaks nothing), restore and verify;
5. **production after**, compared with before: untouched or a BREACH.

The achieved RPO of each data type the source holds is the age of the restored set's
snapshot at the start of the drill. When every source was tested, ``live_system`` adds the
three restores up against ``full_system_restore`` (``offsite_restore`` with ``remote``),
as ``bdr restore all`` runs them one after another.

``prometheus`` and ``grafana`` take part only when bdr.yaml configures them; their sets are
extracted into scratch space and verified there (:mod:`.observed`), never restored into an
instance, and ``live_system`` stays the sum of the three datastores.

Nothing here raises for a failed restore, check or target: each becomes part of the report,
and :attr:`LiveRun.breached` says whether the run is a BREACH.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bdr import api
from bdr.config import Config
from bdr.drill import checks as app_checks
from bdr.drill import observed, profiles
from bdr.drill.production import ProductionState
from bdr.drill.profiles import profile, restore_target, volume
from bdr.drill.settings import DRILL_SOURCES, LIVE_SOURCES, OBSERVED_SOURCES
from bdr.drill.targets import RestoreTarget, production_name
from bdr.drill.timeline import Timeline
from bdr.engines.base import Step
from bdr.errors import BdrError, ConfigError, UsageError
from bdr.report.provenance import host_facts, operator_name, policy_fingerprint, policy_targets
from bdr.report.records import (
    DrillResult,
    Outcome,
    RunReport,
    Scope,
    ScopeKind,
    StandIn,
    SystemTested,
    TargetCheck,
    Verification,
    VerificationKind,
)
from bdr.repository import BackupSet
from bdr.repository.manifest import to_iso
from bdr.sources import source as source_entry
from bdr.util.durations import format_duration

logger = logging.getLogger(__name__)

RTO_MEASURES = ("from the test start until the restored data was verified: the selection of the newest set is "
                "before the clock; the fetch (the download from S3 with --remote), check, safety backup of the "
                "test target, stop, replace, start, the runbook's verification, the content proof and the "
                "application checks are on it")
RTO_EXCLUDES = ("detection and decision time: in a real incident someone has to notice, escalate and decide to "
                "restore; a restore test starts at the restore, so its 'detect' phase is 0")


@dataclass(slots=True)
class LiveRun:
    """A finished live drill: its report and where it went."""

    report: RunReport
    paths: Any = None
    stored: list[str] = field(default_factory=list)

    @property
    def breached(self) -> bool:
        return not self.report.all_met


@dataclass(slots=True)
class SourceTest:
    """What one source's test found, beyond its :class:`DrillResult` (for the scope statement)."""

    source: str
    production: str
    backup: BackupSet | None = None
    target: str = ""
    temporary: bool = False
    before: ProductionState | None = None


def _snapshot_time(backup: BackupSet) -> datetime:
    """When the set's data was taken: Redis's own clock at BGSAVE, else the start of the backup."""
    requested = backup.manifest.facts.get("snapshot_requested_at")
    if isinstance(requested, int | float) and requested > 0:
        return datetime.fromtimestamp(float(requested), UTC)
    return backup.manifest.started


def newest_set(config: Config, source: str, instance: str, remote: str | None) -> tuple[BackupSet, list[str]]:
    """The newest good, non-safety set of ``instance``, and the damaged sets newer than it (passed over)."""
    from bdr.api.listing import list_repository

    listing = list_repository(config, source, remote=remote, include_safety=False)
    good = [b for b in listing.sets if b.manifest.instance == instance]
    if not good:
        others = sorted({b.manifest.instance for b in listing.sets})
        also = f" (sets of {', '.join(others)} only)" if others else ""
        raise UsageError(detail=f"no good backup of {source}/{instance} in {listing.repository}{also}: run "
                         f"bdr backup {source} first")
    chosen = good[0]
    passed = [f"{d.id} (damaged: {d.reason})" for d in listing.damaged
              if d.instance in (instance, None) and (d.created is None or d.created >= chosen.created)]
    return chosen, passed


def test_source(config: Config, source: str, drill_start: datetime, scratch: Path, remote: str | None,
                progress: Callable[[str], None]) -> tuple[DrillResult, SourceTest]:
    """One source's restore test (see the module docstring); never raises for what it finds."""
    settings = config.drill.source(source)
    entry = source_entry(source)
    prod = production_name(config, source, settings)
    rto_target = entry.rto_target
    result = DrillResult(
        scenario=f"live_{source}", title=f"Live restore test: {entry.title}", nodeid=f"bdr drill --live ({source})",
        runtime="live", started_at=to_iso(datetime.now(UTC)), sources=[source],
        planned=[f"rto {rto_target}", *(f"rpo {t}" for t in entry.data_types if t in config.targets.rpo)],
    )
    found = SourceTest(source, prod)
    clock = Timeline(result)
    evidence = result.evidence
    try:
        with clock.step("select backup", f"newest good set of {source}/{prod}") as step:
            backup, passed = newest_set(config, source, prod, remote)
            found.backup = backup
            step.detail = f"{backup.id} ({volume(backup.manifest)}) from {backup.repository}" + (
                f"; passed over {len(passed)} damaged set(s)" if passed else "")
        evidence["backup"] = {
            "id": backup.id, "instance": backup.manifest.instance, "repository": backup.repository,
            "location": backup.location, "started_at": backup.manifest.started_at,
            "finished_at": backup.manifest.finished_at, "snapshot_at": to_iso(_snapshot_time(backup)),
            "manifest_digest": backup.manifest.digest, "manifest_mac": "present" if backup.manifest.mac else "none",
            "encrypted": backup.manifest.encrypted, "key_id": backup.manifest.key_id,
            "data_bytes": backup.manifest.data_size, "stored_bytes": backup.manifest.stored_size,
            "volume": volume(backup.manifest), "verified": backup.verified, "passed_over": passed,
        }
    except BdrError as exc:
        result.outcome, result.failure = Outcome.FAILED, exc.message
        clock.rto(rto_target, config.targets.rto.get(rto_target), note="no set to restore")
        _rpos(result, config, source, None, drill_start)
        result.finished_at = to_iso(datetime.now(UTC))
        return result, found
    with clock.step("production before", "read only: INFO / counts / file hashes") as step:
        found.before = profiles.probe(config, source, prod)
        step.detail = _state_text(found.before)
    try:
        if source in OBSERVED_SOURCES:
            found.target, found.temporary = profile(source).observed_in, True
            evidence["restore_target"] = {"name": source, "temporary": True, "description": found.target,
                                          "path": str(scratch / source)}
            _observed_restore(config, backup, scratch / source, clock, result, remote, progress)
        else:
            with restore_target(config, source, settings, scratch) as target:
                found.target, found.temporary = target.description, target.temporary
                evidence["restore_target"] = {"name": target.name, "temporary": target.temporary,
                                              "description": target.description}
                _restore_and_verify(target, backup, clock, result, remote, progress)
    except ConfigError:
        raise
    except BdrError as exc:  # the target could not be set up (a temporary server that would not start ...)
        if result.outcome == Outcome.PASSED:
            result.outcome, result.failure = Outcome.ERROR, f"the restore target could not be set up: {exc.message}"
    clock.rto(rto_target, config.targets.rto.get(rto_target),
              note=("off-site: the download is on the clock" if remote else "from the local repository")
              + ("; into a temporary instance" if found.temporary else ""))
    _rpos(result, config, source, backup, drill_start)
    with clock.step("production after", "read only, compared with before") as step:
        after = profiles.probe(config, source, prod)
        proof = profiles.compare(found.before, after)
        result.verifications.append(proof)
        step.detail = proof.detail
    fields = profile(source).state_fields
    evidence["production"] = {"before": found.before.to_dict(fields), "after": after.to_dict(fields),
                              "untouched": proof.status}
    result.finished_at = to_iso(datetime.now(UTC))
    return result, found


def _restore_and_verify(target: RestoreTarget, backup: BackupSet, clock: Timeline, result: DrillResult,
                        remote: str | None, progress: Callable[[str], None]) -> None:
    source = target.source
    config = target.config
    clock.start(f"restore {backup.id} into {target.description}")
    begun = time.monotonic()
    progress(f"{source}: restoring {backup.id} into {target.description}")
    restored = None
    done: list[Step] = []
    try:
        with clock.step("restore", f"bdr restore {source} {backup.id} "
                        + (f"--to {target.root}" if target.root is not None else f"--target {target.name}")
                        + (f" --remote {remote}" if remote else "")) as step:
            restored = api.restore(
                config, source, backup.id, target=None if target.root is not None else target.name, remote=remote,
                root=str(target.root) if target.root is not None else None,
                safety_backup=not target.temporary, on_step=done.append,
            )
            step.detail = f"{len(restored.steps)} runbook steps in {format_duration(restored.seconds)}" + (
                f"; safety backup of the target: {restored.safety_id}" if restored.safety_id else "")
    except BdrError as exc:
        result.outcome, result.failure = Outcome.FAILED, f"the restore failed: {exc.message}"
        return
    finally:
        clock.add_restore_steps(restored.steps if restored is not None else done, begun)
    result.verifications.extend(Verification(VerificationKind.RESTORE, c.name, c.ok, c.detail, c.skipped)
                                for c in restored.checks)
    result.evidence["restore"] = {"runbook_seconds": round(restored.seconds, 3), "counts": restored.counts,
                                  "safety_id": restored.safety_id, "not_verified":
                                  [f"{c.name}: {c.detail}" for c in restored.checks if c.skipped]}
    with clock.step("verify content", "the restored data against the manifest") as step:
        proofs = profiles.proofs(config, source, backup.manifest, target)
        result.verifications.extend(proofs)
        step.detail = "; ".join(f"{v.name}: {v.status}" for v in proofs)
    drill = config.drill.source(source)
    if drill.checks:
        with clock.step("application checks", f"{len(drill.checks)} check(s) of drill.{source}.checks") as step:
            found = app_checks.run_checks(config, source, drill.checks, target.name, target.root)
            result.verifications.extend(found)
            step.detail = "; ".join(f"{v.name}: {v.status}" for v in found)
    else:
        result.verifications.append(Verification(
            VerificationKind.APPLICATION, "application checks", False,
            f"not verified: bdr.yaml defines no drill.{source}.checks (e.g. {profile(source).example_check})",
            skipped=True))
    result.evidence["fingerprints"] = _fingerprints(backup, proofs)
    failed = [v for v in result.verifications if v.failed]
    clock.verified("restored data verified" if not failed else
                   f"verification finished: {len(failed)} check(s) FAILED")




def _observed_restore(config: Config, backup: BackupSet, where: Path, clock: Timeline, result: DrillResult,
                      remote: str | None, progress: Callable[[str], None]) -> None:
    """Prometheus or Grafana: the set extracted into ``where`` (never production), verified, removed."""
    source = backup.source
    clock.start(f"restore {backup.id} into {profile(source).observed_in}")
    progress(f"{source}: restoring {backup.id} into {where}")
    try:
        try:
            with clock.step("restore", f"the set's files extracted into {where}" + (
                    f" from {remote}" if remote else "")) as step:
                observed.extract(config, backup, where, remote)
                step.detail = f"{len(backup.manifest.files)} file(s), each checked against the manifest"
        except BdrError as exc:
            result.outcome, result.failure = Outcome.FAILED, f"the restore failed: {exc.message}"
            return
        checks = config.drill.source(source).checks
        with clock.step("verify content", "the restored data against the manifest" + (
                f", and {len(checks)} check(s) of drill.{source}.checks" if checks else "")) as step:
            proofs, found = observed.verify(config, source, backup.manifest, where, checks)
            result.verifications.extend(proofs)
            result.verifications.extend(found)
            step.detail = "; ".join(f"{v.name}: {v.status}" for v in (*proofs, *found))
        if not checks:
            result.verifications.append(Verification(
                VerificationKind.APPLICATION, "application checks", False,
                f"not verified: bdr.yaml defines no drill.{source}.checks (e.g. {profile(source).example_check})",
                skipped=True))
        result.evidence["fingerprints"] = _fingerprints(backup, proofs)
    finally:
        observed.discard(where)
    failed = [v for v in result.verifications if v.failed]
    clock.verified("restored data verified" if not failed else
                   f"verification finished: {len(failed)} check(s) FAILED")


def _fingerprints(backup: BackupSet, proofs: Sequence[Verification]) -> dict[str, Any]:
    return {"manifest": profile(backup.source).fingerprint(backup.manifest),
            "restored": {v.name: f"{v.status}: {v.detail}" for v in proofs}}


def _rpos(result: DrillResult, config: Config, source: str, backup: BackupSet | None, drill_start: datetime) -> None:
    for data_type in source_entry(source).data_types:
        target = config.targets.rpo.get(data_type)
        if backup is None:
            if target is not None:
                result.checks.append(TargetCheck("rpo", data_type, target, None, "no set to restore"))
            continue
        snapshot = _snapshot_time(backup)
        age = max(0.0, (drill_start - snapshot).total_seconds())
        result.checks.append(TargetCheck("rpo", data_type, target, age,
                                         f"age of {backup.id}'s snapshot ({to_iso(snapshot)}) at the drill's start"))


def _state_text(state: ProductionState) -> str:
    return f"could not be read: {state.error}" if state.error else profile(state.source).state_text(state)


def system_result(results: Sequence[DrillResult], config: Config, remote: str | None) -> DrillResult | None:
    """``live_system``: the three restores added up, against the whole-system target."""
    by_source = {r.sources[0]: r for r in results if r.sources and r.sources[0] in LIVE_SOURCES}
    if set(by_source) != set(LIVE_SOURCES):
        return None
    target = "offsite_restore" if remote else "full_system_restore"
    times = [_rto_of(by_source[s]) for s in LIVE_SOURCES]
    achieved = None if any(t is None for t in times) else sum(t for t in times if t is not None)
    result = DrillResult(
        scenario="live_system", title="Live restore test: the whole system (sum of the three restores)",
        nodeid="bdr drill --live (all)", runtime="live",
        started_at=min(r.started_at for r in results), finished_at=max(r.finished_at for r in results),
        sources=list(LIVE_SOURCES), planned=[f"rto {target}"],
        outcome=Outcome.PASSED if all(r.outcome == Outcome.PASSED for r in by_source.values()) else Outcome.FAILED,
        failure="" if all(r.outcome == Outcome.PASSED for r in by_source.values())
        else "a source's restore did not finish: see its result",
    )
    parts = ", ".join(f"{s} {format_duration(t)}" for s, t in zip(LIVE_SOURCES, times, strict=True) if t is not None)
    result.evidence["restores_seconds"] = {s: (None if t is None else round(t, 3))
                                           for s, t in zip(LIVE_SOURCES, times, strict=True)}
    result.evidence["note"] = ("not a separate restore: the three tests above, added up; bdr restore all runs the same "
                               "restores one after another")
    result.checks.append(TargetCheck("rto", target, config.targets.rto.get(target), achieved,
                                     f"config, Redis and Qdrant restored one after another as bdr restore all does: "
                                     f"{parts}"))
    return result


def _rto_of(result: DrillResult) -> float | None:
    rto = result.rto
    return rto.achieved_seconds if rto is not None else None


def scope_of(config: Config, tests: Sequence[SourceTest], remote: str | None) -> Scope:
    systems: list[SystemTested] = []
    stand_ins: list[StandIn] = []
    for test in tests:
        if test.before is not None:
            systems.append(SystemTested(f"{test.source}/{test.production}", "production (read only)",
                                        f"{test.before.address}" + (f", {test.before.version}"
                                                                    if test.before.version else ""),
                                        _state_text(test.before)))
        if test.backup is not None:
            systems.append(SystemTested(test.backup.id, "backup set restored", f"from {test.backup.repository} "
                                        f"({test.backup.location}), taken {test.backup.manifest.started_at}",
                                        volume(test.backup.manifest)))
        if test.target:
            systems.append(SystemTested(f"{test.source} restore target", "test target (written)", test.target))
        stand_ins.extend(StandIn(real, used) for real, used in
                         profile(test.source).stand_ins(config, test.production, test.temporary))
    where = f"off-site ({remote}), the download timed" if remote else f"the local repository {config.repository}"
    return Scope(
        kind=ScopeKind.LIVE,
        summary=(f"Live: the newest good backup of each of {', '.join(t.source for t in tests)} restored from "
                 f"{where} into test targets on this system, with this installation's bdr.yaml. Production was "
                 "only read (its process and counts before and after are below)."),
        systems=tuple(systems),
        stand_ins=tuple(stand_ins),
        rto_measures=RTO_MEASURES,
        rto_excludes=RTO_EXCLUDES,
        notes=("The RPO achieved is the age of the restored set's snapshot at the start of the drill: the data a "
               "restore of it now would lose.",
               "A restore target is never production: bdr refuses a target with production's name or address."),
    )


def run_live(config: Config, *, remote: str | None = None, operator: str | None = None,
             sources: Sequence[str] = (), progress: Callable[[str], None] | None = None,
             now: datetime | None = None) -> RunReport:
    """Run the live restore test of ``sources`` (default: every enabled one); the run's report, not yet written."""
    configured = [s for s in DRILL_SOURCES if s in LIVE_SOURCES or getattr(config, s)]
    chosen = list(sources) or [s for s in configured if config.drill.source(s).enabled]
    unknown = [s for s in chosen if s not in DRILL_SOURCES]
    if unknown:
        raise UsageError(detail=f"unknown source(s) {', '.join(unknown)} for --live (known: "
                         f"{', '.join(DRILL_SOURCES)})")
    absent = [s for s in chosen if s not in configured]
    if absent:
        raise UsageError(detail=f"{', '.join(absent)}: not in bdr.yaml (add a {absent[0]}: section to test it)")
    if not chosen:
        raise UsageError(detail="every source is disabled in drill: of bdr.yaml; enable one or pass --source")
    say = progress or (lambda _text: None)
    started = now or datetime.now(UTC)
    results: list[DrillResult] = []
    tests: list[SourceTest] = []
    ordered = sorted(chosen, key=lambda name: source_entry(name).restore_rank)
    with tempfile.TemporaryDirectory(prefix="bdr-live-drill-") as scratch:
        for source in ordered:
            say(f"{source}: selecting the newest good set")
            result, test = test_source(config, source, started, Path(scratch), remote, say)
            results.append(result)
            tests.append(test)
    system = system_result(results, config, remote)
    if system is not None:
        results.append(system)
    environment = {
        **host_facts(),
        "user": operator_name(),
        "runtime": "live",
        "scale": "live data",
        "repository": str(config.repository_path()),
        "remote": remote or "",
        **policy_fingerprint(config),
        **_versions(),
    }
    return RunReport(
        run_id=f"drill-live-{started:%Y%m%dT%H%M%SZ}",
        started_at=to_iso(started),
        finished_at=to_iso(datetime.now(UTC)),
        results=results,
        environment=environment,
        policy=policy_targets(config),
        scope=scope_of(config, tests, remote),
        operator=operator_name(operator),
    )


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("qdrant-client", "redis"):
        try:
            out[name.replace("-", "_")] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name.replace("-", "_")] = "not installed"
    return out

