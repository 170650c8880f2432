"""Restoring a Prometheus TSDB through the runbook: fetched and checked beside the data, swapped while stopped.

1. ``fetch``: the set's blocks into ``<data_dir>/.bdr-restore-<id>/new/`` (the same file
   system: every move is a rename), each file checked against the manifest; a data
   directory lost entirely is created again;
2. ``check``: the blocks are those the manifest lists, with readable ``meta.json``; how the
   server is started again is known (the running process, the journal, ``start_args``, or
   the launch the backup recorded) and the runtime's preflight passes;
3. ``safety backup``: a TSDB snapshot of the running server (skipped when it is down or
   holds nothing: its files are then kept beside the data until the restore is verified);
4. ``stop``: through the runtime; what the data directory holds now (blocks, ``wal``,
   ``chunks_head``) is what the swap will move aside;
5. ``replace``: :class:`~bdr.engines.swap.DataSwap`: each restored block renamed in,
   every other TSDB entry moved to ``old/`` (``snapshots/`` is left alone);
6. ``start``: the server as it was launched, until ``/-/ready``;
7. ``verify``: ready, a range query over the restored blocks' time range answers with
   data, the newest sample there is the backup's newest, the series count is the
   manifest's;
8. ``finish``: the previous files are deleted.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bdr.config import Config, PrometheusInstance
from bdr.engines.base import Check, RestoreRequest, RestoreResult, safety_backup
from bdr.engines.prometheus.live import ALL_SERIES, need_room, newest_sample, runtime_of, series_in
from bdr.engines.prometheus.tsdb import blocks_of
from bdr.engines.runbook import StepOutcome
from bdr.engines.selection import Selection
from bdr.engines.swap import WORK_PREFIX, DataSwap, StopAndSwap, new_work_dir, swap_fields, sweep_work_dirs
from bdr.errors import (
    BdrError,
    CheckFailed,
    NothingToBackUp,
    NotWritable,
    PreflightFailed,
    ServiceError,
    UsageError,
)
from bdr.repository import extract_set
from bdr.repository.manifest import to_iso
from bdr.runtime.base import Launch, Needs
from bdr.runtime.prometheus import PrometheusRuntime
from bdr.safety.journal import JournalEntry

if TYPE_CHECKING:  # the engine hands itself in: no import back into it
    from bdr.engines.prometheus.engine import PrometheusEngine

logger = logging.getLogger(__name__)

KEEP = ("snapshots", "lost+found")
"""Entries of a data directory a restore leaves where they are."""
MARGIN_BYTES = 64 << 20
"""Room the restored server needs beside its blocks to run (WAL, head chunks)."""


def settle(root: Path, owner: tuple[int, int] | None) -> None:
    """Give every restored file and directory under ``root`` to ``owner`` (bdr as root) and fsync it: the blocks
    must be the server's and on disk before they are swapped in."""
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if owner is not None and os.geteuid() == 0:
            os.chown(path, *owner, follow_symlinks=False)
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    if owner is not None and os.geteuid() == 0:
        os.chown(root, *owner)


def _instance(config: Config, state: dict[str, Any]) -> PrometheusInstance:
    name = str(state["instance"])
    if name in config.prometheus:
        return config.prometheus[name]
    return PrometheusInstance(name=name, url=str(state.get("url") or "http://127.0.0.1:9090"))


def _iso(ms: int | None) -> str:
    from datetime import UTC, datetime

    return to_iso(datetime.fromtimestamp(ms / 1000, UTC)) if ms is not None else "-"


@dataclass(slots=True)
class PrometheusRestore(StopAndSwap):
    """A restore of one Prometheus server's TSDB (see the module docstring)."""

    engine: PrometheusEngine
    request: RestoreRequest
    instance_config: PrometheusInstance
    runtime: PrometheusRuntime
    result: RestoreResult
    data_dir: Path | None = None
    created: bool = False
    """The data directory was gone (a total loss): bdr made it again."""
    source: str = "prometheus"

    @property
    def instance(self) -> str:
        return self.instance_config.name

    @property
    def _facts(self) -> dict[str, Any]:
        return dict(self.request.backup.manifest.facts) if self.request.backup is not None else {}

    @classmethod
    def new(cls, engine: PrometheusEngine, request: RestoreRequest) -> PrometheusRestore:
        if request.backup is None:
            raise UsageError(detail="a Prometheus restore needs a backup set (there is no old script's format)")
        Selection.expect(request.selection, engine.source)  # none: it replaces the whole TSDB
        instance = request.config.prometheus_instance(request.target)
        runtime = runtime_of(instance)
        result = RestoreResult(source="prometheus", ref=request.backup.id, target=instance.name,
                               steps=request.log.steps, dry_run=request.dry_run)
        return cls(engine, request, instance, runtime, result, was_running=runtime.running())

    @classmethod
    def resumed(cls, engine: PrometheusEngine, request: RestoreRequest, entry: JournalEntry,
                result: RestoreResult) -> PrometheusRestore:
        state = entry.state
        instance = _instance(request.config, state)
        fields = swap_fields(state)
        return cls(engine, request, instance, runtime_of(instance, fields["launch"]), result,
                   data_dir=Path(state["data_dir"]) if state.get("data_dir") else None, **fields)

    def state(self) -> dict[str, Any]:
        return {"instance": self.instance, "url": self.instance_config.url,
                "data_dir": str(self.data_dir) if self.data_dir else None, **self.swap_state()}

    # --- steps ---------------------------------------------------------------------------------

    def _data_dir(self) -> Path:
        try:
            return self.runtime.data_path()
        except BdrError:
            recorded = self._facts.get("launch") or {}
            if recorded.get("data_dir"):
                return Path(str(recorded["data_dir"]))
            if self._facts.get("data_dir"):
                return Path(str(self._facts["data_dir"]))
            raise

    def fetch(self) -> StepOutcome:
        assert self.request.backup is not None
        self.data_dir = self._data_dir()
        created = self.created = not self.data_dir.exists()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            removed = sweep_work_dirs(self.data_dir)
            self.work = new_work_dir(self.data_dir, self.result.ref)
        except OSError as exc:
            raise NotWritable(path=str(exc.filename or self.data_dir), detail=(
                f"{exc.strerror}: bdr restores into the data directory of Prometheus {self.instance} (its blocks "
                "are prepared beside the data), which must be writable; nothing was changed")) from exc
        extract_set(self.request.repository, self.request.backup, self.work / "new", self.request.cipher)
        notes = [f"{len(self.request.backup.manifest.files)} file(s) match the manifest"]
        if created:
            notes.append(f"the data directory {self.data_dir} was gone: created again")
        if removed:
            notes.append(f"removed {len(removed)} leftover work dir(s) of killed restores")
        return StepOutcome("; ".join(notes))

    def _launch(self) -> Launch:
        """How the server is started again; the launch the backup recorded when nothing else knows."""
        try:
            launch = self.runtime.launch()
        except BdrError:
            recorded = self._facts.get("launch")
            if self.runtime.kind != "process" or not recorded:
                raise
            launch = Launch.from_dict(recorded)
        if launch.runtime == "process":  # started again as recorded now, not as whatever runs after the stop
            self.runtime = runtime_of(self.instance_config, launch)
        return launch

    def check(self) -> StepOutcome:
        assert self.work is not None and self.data_dir is not None
        blocks = blocks_of(self.work / "new")
        want = sorted(str(b.get("ulid")) for b in self._facts.get("blocks") or [])
        if sorted(b.ulid for b in blocks) != want:
            raise CheckFailed(detail=f"the blocks of {self.result.ref} are not those its manifest lists; nothing "
                              "was changed")
        need_room(self.data_dir, MARGIN_BYTES, self.instance)
        self.launch = self._launch()
        problems = self.runtime.preflight(Needs(free_bytes=MARGIN_BYTES))
        if problems:
            raise PreflightFailed(what=f"into Prometheus {self.instance}", detail="; ".join(problems))
        owner = self._owner()
        settle(self.work / "new", owner)
        if self.created and owner is not None and os.geteuid() == 0:
            os.chown(self.data_dir, *owner)
        self.swap = self._prepared()
        facts = self._facts
        self.result.counts.update(blocks=len(blocks), samples=int(facts.get("samples") or 0),
                                  series=int(facts.get("series") or 0))
        return StepOutcome(f"{len(blocks)} block(s), {facts.get('samples', '?')} samples from "
                           f"{_iso(facts.get('oldest_sample_ms'))} to {_iso(facts.get('newest_sample_ms'))}; can be "
                           f"started again ({self.launch.describe()})")

    def _owner(self) -> tuple[int, int] | None:
        """Who the restored files belong to: the user the server runs as, else the data directory's owner."""
        if self.launch is not None and self.launch.uid is not None:
            return self.launch.uid, self.launch.gid if self.launch.gid is not None else -1
        assert self.data_dir is not None
        info = os.stat(self.data_dir.parent if self.created else self.data_dir)
        return info.st_uid, info.st_gid

    def _prepared(self) -> DataSwap:
        assert self.work is not None and self.data_dir is not None
        clear = [p.name for p in sorted(self.data_dir.iterdir())
                 if p.name not in KEEP and not p.name.startswith(WORK_PREFIX)]
        return DataSwap.prepared(self.data_dir, self.work, clear)

    def dry_run(self) -> list[Check]:
        assert self.swap is not None
        return [Check("dry run", True, f"would restore {self.result.ref} into Prometheus {self.instance}: stop it, "
                      f"replace {len(self.swap.install)} block(s) and move {', '.join(self.swap.clear) or 'nothing'} "
                      f"aside in {self.data_dir}, start it and verify (dry run, nothing changed)")]

    def safety_backup(self) -> tuple[str | None, StepOutcome]:
        if not self.runtime.ready():
            return None, StepOutcome(f"Prometheus {self.instance} is down: no snapshot can be taken; its current "
                                     "files are kept beside the data until the restore is verified", skipped=True)
        try:
            safety = safety_backup(self.engine, self.request, self.instance)
        except NothingToBackUp as exc:
            return None, StepOutcome(f"nothing to protect: {exc.message}", skipped=True)
        return safety.id, StepOutcome(safety.id)

    def stop(self) -> StepOutcome:
        if self.runtime.running():
            self.runtime.stop(timeout=self.instance_config.timeout)
        if self.runtime.running():
            raise ServiceError(detail=f"Prometheus {self.instance} is running again after the stop: something "
                               "restarts it; set runtime: systemd or command in bdr.yaml")
        if self.swap is not None and not self.swap.touched():
            self.swap = self._prepared()  # what the server wrote until it stopped is moved aside too
        return StepOutcome(f"stopped ({self.runtime.kind})")

    def replace(self) -> StepOutcome:
        assert self.swap is not None
        if self.runtime.running():
            raise ServiceError(detail=f"Prometheus {self.instance} is running: bdr does not replace the files of a "
                               "running server")
        swapped = self.swap.swap()
        return StepOutcome(f"{len(swapped)} entr(ies) swapped in {self.data_dir}; the previous files are kept "
                           "until the restore is verified")

    def start(self) -> StepOutcome:
        if not self.runtime.ready():
            self.runtime.start(timeout=self.instance_config.timeout)
        return StepOutcome(f"started ({self.runtime.kind}), /-/ready")

    def verify(self) -> list[Check]:
        facts = self._facts
        client = self.runtime.client(timeout=self.instance_config.timeout)
        checks = [Check("ready", client.ready(), f"{self.instance_config.url}/-/ready")]
        oldest, newest = facts.get("oldest_sample_ms"), facts.get("newest_sample_ms")
        if oldest is None or newest is None:
            return [*checks, Check("range query", True, "the backup records no time range", skipped=True)]
        step = max((int(newest) - int(oldest)) / 1000 / 50, 1.0)
        answered = client.range_series(f"count({ALL_SERIES})", int(oldest), int(newest), step)
        points = sum(len(s.get("values") or []) for s in answered)
        checks.append(Check("range query", points > 0, f"count over {_iso(oldest)} .. {_iso(newest)} answered with "
                            f"{points} point(s)"))
        restored = newest_sample(client, int(newest))
        self.result.facts.update(newest_restored_sample_ms=restored, newest_restored_sample=_iso(restored),
                                 **self.runtime.describe())
        checks.append(Check("newest sample", restored is not None and restored >= int(newest),
                            f"the newest restored sample is at {_iso(restored)}; the backup's newest at "
                            f"{_iso(int(newest))}"))
        if facts.get("series") is None:
            checks.append(Check("series", True, "the backup records no series count"
                                + (f" ({facts['series_unavailable']})" if facts.get("series_unavailable") else ""),
                                skipped=True))
            return checks
        try:
            series = series_in(client, int(oldest), int(newest))
        except ServiceError as exc:
            checks.append(Check("series", True, f"not counted: {exc.message}", skipped=True))
            return checks
        self.result.counts["series"] = series
        checks.append(Check("series", series == int(facts["series"]), f"{series} series in the restored range, "
                            f"{facts['series']} in the backup"))
        return checks

    def rollback(self, safety_id: str | None) -> StepOutcome:
        done: list[str] = []
        touched = self.swap is not None and self.swap.touched()
        if touched:
            assert self.swap is not None
            if self.runtime.running():
                self.runtime.stop(timeout=self.instance_config.timeout)
                done.append("stopped the restored server")
            missing = self.swap.can_unswap()
            if missing:
                raise ServiceError(detail=f"the previous {', '.join(missing)} kept beside the data are gone"
                                   + (f"; restore the safety set: bdr restore prometheus {safety_id} --target "
                                      f"{self.instance}" if safety_id else ""))
            back = self.swap.unswap()
            done.append(f"put {len(back)} previous entr(ies) back")
        if self.was_running and not self.runtime.ready():
            self.runtime.start(timeout=self.instance_config.timeout)
            done.append("started it on its previous data")
        elif not self.was_running:
            done.append("left it stopped, as it was before the restore")
        self.remove_work()
        return StepOutcome("; ".join(done) or "nothing had changed")

    def finish(self) -> StepOutcome:
        self.remove_work()
        return StepOutcome("previous files deleted")

    def discard(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
