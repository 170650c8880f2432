"""Grafana restores through the runbook: the whole database, or one dashboard through the HTTP API.

**The database** (``bdr restore grafana SET``): fetch (the set's files, checked) -> check
(integrity_check and inventory of the fetched grafana.db, the runtime's preflight: the
commands exist, the database's directory is writable with room) -> safety backup (the live
database through the online backup API; skipped when it is gone, and when it is corrupt:
its file is kept aside all the same) -> stop Grafana -> replace (each file written beside
its target, the old one renamed to ``<name>.bdr-old`` with its ``-wal``/``-shm``/``-journal``
companions, the new one renamed into place, the directory fsynced) -> start -> verify (the
live database's inventory against the manifest: dashboard uids, folders, data sources,
alert rules; the health endpoint when ``url`` is set) -> finish (the ``.bdr-old`` files are
removed once a safety set holds them; without one they are kept and named). A rollback
renames the old files back and starts Grafana again.

**One dashboard** (``--dashboard UID``): imported with ``POST /api/dashboards/db``
(``overwrite``, into the folder it was exported from, created if gone), the database left
alone. It needs ``url`` (and a token): bdr never writes into the database of a running
Grafana behind its back, and Grafana's own validation and version history only run through
its API; without ``url`` the restore is refused before anything is touched, naming
``grafana.<name>.url``. Its safety set is the dashboard's current JSON; a rollback imports
it again (or deletes the dashboard when it did not exist).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bdr.config import Config, GrafanaInstance
from bdr.engines.base import Check, RestoreRequest, RestoreResult, safety_backup
from bdr.engines.grafana import database
from bdr.engines.grafana.api import GrafanaApi
from bdr.engines.grafana.layout import DB_NAME, EXPORT_PREFIX, live_path
from bdr.engines.runbook import Restorer, StepOutcome
from bdr.engines.selection import GrafanaSelection
from bdr.engines.swap import StopAndSwap
from bdr.errors import GrafanaDbCorrupt, GrafanaSetMismatch, NothingToBackUp, PreflightFailed, UsageError
from bdr.repository import extract_set
from bdr.runtime.base import Needs
from bdr.runtime.grafana import GrafanaService, grafana_runtime
from bdr.safety.journal import JournalEntry
from bdr.storage.local import fsync_dir

if TYPE_CHECKING:  # the engine hands itself in: no import back into it
    from bdr.engines.grafana.engine import GrafanaEngine

logger = logging.getLogger(__name__)

OLD_SUFFIX = ".bdr-old"
NEW_SUFFIX = ".bdr-new"
COMPANIONS = ("-wal", "-shm", "-journal")
"""SQLite's files beside a database: a stale WAL left beside a restored database would be replayed into it."""


def restorer_for(engine: GrafanaEngine, request: RestoreRequest) -> Restorer:
    selection = GrafanaSelection.expect(request.selection, engine.source)
    if selection.dashboard:
        return DashboardRestore.new(engine, request, selection.dashboard)
    return DatabaseRestore.new(engine, request)


def resumed_restorer(engine: GrafanaEngine, request: RestoreRequest, entry: JournalEntry,
                     result: RestoreResult) -> Restorer:
    restorer = restorer_for(engine, request)
    restorer.result = result
    restorer.load(entry.state)  # type: ignore[attr-defined]
    return restorer


def _result(request: RestoreRequest, target: str) -> RestoreResult:
    if request.backup is None:
        raise UsageError(detail="a grafana restore needs a backup set (an id, latest or a set directory)")
    return RestoreResult(source="grafana", ref=request.backup.id, target=target, steps=request.log.steps,
                         dry_run=request.dry_run)


def _fetch(request: RestoreRequest, work: Path) -> None:
    assert request.backup is not None
    extract_set(request.repository, request.backup, work, request.cipher)


def _same_owner_and_mode(path: Path, like: Path) -> None:
    """Give ``path`` the mode and owner of ``like`` (Grafana's user must write its database)."""
    info = like.stat()
    os.chmod(path, info.st_mode & 0o7777)
    if os.geteuid() == 0:
        os.chown(path, info.st_uid, info.st_gid)


def swap_in(source: Path, target: Path, mode: int) -> bool:
    """Put ``source``'s content at ``target`` atomically, the old file (and companions) kept as ``.bdr-old``.

    Idempotent (run again after a crash it does what is left); True when an old file is kept.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(target.name + OLD_SUFFIX)
    new = target.with_name(target.name + NEW_SUFFIX)
    shutil.copyfile(source, new)
    with open(new, "rb") as handle:
        os.fsync(handle.fileno())
    if target.exists() and not old.exists():
        _same_owner_and_mode(new, target)
        os.replace(target, old)
        for suffix in COMPANIONS:
            companion = target.with_name(target.name + suffix)
            if companion.exists():
                os.replace(companion, old.with_name(old.name + suffix))
    elif old.exists():
        _same_owner_and_mode(new, old)
    else:  # nothing there any more (a lost volume): the directory's owner, Grafana's user, gets it
        os.chmod(new, mode)
        if os.geteuid() == 0:
            info = target.parent.stat()
            os.chown(new, info.st_uid, info.st_gid)
    for suffix in COMPANIONS:  # a companion of a database the crashed restore had already put in place
        stale = target.with_name(target.name + suffix)
        if stale.exists():
            stale.unlink()
    os.replace(new, target)
    fsync_dir(target.parent)
    return old.exists()


def swap_back(target: Path) -> str:
    """Undo :func:`swap_in`: the ``.bdr-old`` file (and companions) back at ``target``, else ``target`` removed."""
    old = target.with_name(target.name + OLD_SUFFIX)
    target.with_name(target.name + NEW_SUFFIX).unlink(missing_ok=True)
    for suffix in COMPANIONS:
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    if old.exists():
        os.replace(old, target)
        for suffix in COMPANIONS:
            kept = old.with_name(old.name + suffix)
            if kept.exists():
                os.replace(kept, target.with_name(target.name + suffix))
        fsync_dir(target.parent)
        return "put back"
    if target.exists():
        target.unlink()
        fsync_dir(target.parent)
        return "removed"
    return "absent"


def set_aside_earlier(target: Path) -> Path | None:
    """An earlier restore's kept ``.bdr-old`` file renamed ``.bdr-old-<its mtime>``, so that this restore's swap
    keeps (and a rollback puts back) the file live now, never that older one. Nothing is deleted."""
    old = target.with_name(target.name + OLD_SUFFIX)
    if not old.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(old.stat().st_mtime))
    aside = old.with_name(f"{old.name}-{stamp}")
    for path in (old, *(old.with_name(old.name + s) for s in COMPANIONS)):
        if path.exists():
            os.replace(path, aside.with_name(aside.name + path.name[len(old.name):]))
    return aside


def drop_old(target: Path) -> None:
    old = target.with_name(target.name + OLD_SUFFIX)
    for path in (old, *(old.with_name(old.name + s) for s in COMPANIONS)):
        path.unlink(missing_ok=True)


def inventory_checks(config: Config, instance: GrafanaInstance, facts: dict[str, Any]) -> list[Check]:
    """The live database against the manifest (and the health endpoint with ``url``)."""
    db = config.resolve(instance.db_path)
    problems = database.integrity_problems(db)
    checks = [Check("integrity_check", not problems, "; ".join(problems) or f"live {db.name} passes integrity_check")]
    if not problems:
        differences = database.read_inventory(db).differences(facts)
        checks.append(Check("inventory", not differences, "; ".join(differences) or
                            f"{facts.get('dashboard_count', 0)} dashboard(s) with the backup's uids, "
                            f"{facts.get('folder_count', 0)} folder(s), {facts.get('datasource_count', 0)} data "
                            f"source(s), {facts.get('alert_rule_count', 0)} alert rule(s) in the live database"))
    if instance.url:
        api = GrafanaApi.of(instance)
        health = api.health()
        uids = set(api.dashboard_uids())
        want = {str(d["uid"]) for d in facts.get("dashboards") or ()}
        missing = sorted(want - uids)
        checks.append(Check("api", health.get("database") == "ok" and not missing,
                            f"Grafana {health.get('version', '?')} healthy, serves {len(want & uids)} of {len(want)} "
                            "dashboard(s)" + (f"; missing {', '.join(missing[:5])}" if missing else "")))
    else:
        checks.append(Check("api", True, f"no grafana.{instance.name}.url: Grafana's own view not checked",
                            skipped=True))
    return checks


@dataclass(slots=True)
class DatabaseRestore(StopAndSwap):
    """grafana.db (and the config files) swapped under a stopped Grafana (see the module docstring).

    Of :class:`~bdr.engines.swap.StopAndSwap` it keeps ``work`` and ``was_running`` (true until its stop
    step finds Grafana down); its files are swapped one by one (:func:`swap_in`), not by a ``DataSwap``."""

    engine: GrafanaEngine
    request: RestoreRequest
    result: RestoreResult
    grafana: GrafanaInstance
    runtime: GrafanaService
    files: dict[str, str] = field(default_factory=dict)
    """Set name -> live path of every file the restore writes."""
    kept: list[str] = field(default_factory=list)
    """Live paths whose old file is kept as ``.bdr-old`` (replace done)."""
    source: str = "grafana"

    @property
    def instance(self) -> str:
        return self.grafana.name

    @classmethod
    def new(cls, engine: GrafanaEngine, request: RestoreRequest) -> DatabaseRestore:
        grafana = request.config.grafana_instance(request.target)
        result = _result(request, grafana.name)
        here = dataclasses.replace(grafana, db_path=str(request.config.resolve(grafana.db_path)))
        return cls(engine, request, result, grafana, grafana_runtime(here), was_running=True)

    def state(self) -> dict[str, Any]:
        return {"work": str(self.work) if self.work else None, "files": dict(self.files), "kept": list(self.kept),
                "was_running": self.was_running, "selection": self.request.selection.to_state()}

    def load(self, state: dict[str, Any]) -> None:
        self.files = {str(k): str(v) for k, v in (state.get("files") or {}).items()}
        self.kept = [str(p) for p in state.get("kept") or ()]
        self.was_running = bool(state.get("was_running", True))
        work = state.get("work")
        self.work = Path(work) if work and Path(work).is_dir() else None

    def _facts(self) -> dict[str, Any]:
        assert self.request.backup is not None
        return dict(self.request.backup.manifest.facts)

    def fetch(self) -> StepOutcome:
        assert self.request.backup is not None
        if self.request.backup.manifest.method != "sqlite":
            raise UsageError(detail=f"{self.result.ref} holds dashboard JSON only, not a Grafana database: restore "
                             "one dashboard with --dashboard UID")
        self.work = Path(tempfile.mkdtemp(prefix="bdr-grafana-restore-"))
        _fetch(self.request, self.work)
        for entry in self.request.backup.manifest.files:
            target = live_path(self.request.config, self.grafana, entry.path)
            if target is not None:
                self.files[entry.path] = str(target)
        return StepOutcome(f"{len(self.files)} file(s) checked against the manifest")

    def _ready(self) -> Path:
        """After a crash the fetched files went with the killed process's temp dir: fetch again."""
        if self.work is None or not (self.work / DB_NAME).is_file():
            self.fetch()
        assert self.work is not None
        return self.work

    def check(self) -> StepOutcome:
        work = self._ready()
        fetched = work / DB_NAME
        problems = database.integrity_problems(fetched)
        if not problems:
            problems = database.read_inventory(fetched).differences(self._facts())
        if problems:
            raise GrafanaSetMismatch(ref=self.result.ref, detail="; ".join(problems))
        found = self.runtime.preflight(Needs(free_bytes=fetched.stat().st_size * 2))
        if found:
            raise PreflightFailed(what=f"grafana {self.instance}", detail="; ".join(found))
        aside = [str(a) for t in self.files.values() if (a := set_aside_earlier(Path(t))) is not None]
        facts = self._facts()
        return StepOutcome(f"{DB_NAME} passes integrity_check; {facts.get('dashboard_count', 0)} dashboard(s) as in "
                           f"the manifest; Grafana can be started again ({self.runtime.kind})"
                           + (f"; an earlier restore's kept file(s) moved to {', '.join(aside)}" if aside else ""))

    def dry_run(self) -> list[Check]:
        names = ", ".join(sorted(self.files.values()))
        return [Check("dry run", True, f"would stop Grafana {self.instance}, replace {names} from {self.result.ref} "
                      "and start it again (dry run, nothing changed)")]

    def safety_backup(self) -> tuple[str | None, StepOutcome]:
        db = self.request.config.resolve(self.grafana.db_path)
        if not db.exists():
            return None, StepOutcome(f"no {db}: nothing to protect", skipped=True)
        try:
            taken = safety_backup(self.engine, self.request, self.instance, options={"safety": True})
        except (GrafanaDbCorrupt, NothingToBackUp) as exc:
            why = exc.fields.get("detail", exc.message)
            return None, StepOutcome(f"the live database cannot be backed up ({why}): its file is kept as "
                                     f"{db.name}{OLD_SUFFIX} instead", skipped=True)
        return taken.id, StepOutcome(f"{taken.id}: the live database and config files")

    def stop(self) -> StepOutcome:
        self.was_running = self.runtime.running()
        if not self.was_running:
            return StepOutcome("Grafana was not running")
        self.runtime.stop()
        return StepOutcome(f"Grafana stopped ({self.runtime.kind})")

    def replace(self) -> StepOutcome:
        work = self._ready()
        assert self.request.backup is not None
        modes = {f.path: (f.mode or 0o600) & 0o7777 for f in self.request.backup.manifest.files}
        for name, target in sorted(self.files.items()):
            if swap_in(work / name, Path(target), modes.get(name, 0o600)) and target not in self.kept:
                self.kept.append(target)
        return StepOutcome(f"{len(self.files)} file(s) renamed into place; {len(self.kept)} old file(s) kept as "
                           f"*{OLD_SUFFIX}")

    def start(self) -> StepOutcome:
        self.runtime.start()
        return StepOutcome(f"Grafana ready ({self.runtime.kind})")

    def verify(self) -> list[Check]:
        return inventory_checks(self.request.config, self.grafana, self._facts())

    def rollback(self, safety_id: str | None) -> StepOutcome:
        if self.runtime.running():
            self.runtime.stop()
        done = [f"{Path(t).name} {swap_back(Path(t))}" for t in sorted(self.files.values())]
        if self.was_running:
            self.runtime.start()
        return StepOutcome("; ".join(done) + ("; Grafana started again" if self.was_running else ""))

    def finish(self) -> StepOutcome:
        self.discard()
        if self.result.safety_id is None and self.kept:
            kept = ", ".join(k + OLD_SUFFIX for k in self.kept)
            return StepOutcome(f"no safety set: the old files are kept as {kept}")
        for target in self.kept:
            drop_old(Path(target))
        return StepOutcome(f"work directory removed; {len(self.kept)} old file(s) removed (in {self.result.safety_id})"
                           if self.kept else "work directory removed")

    def discard(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)


@dataclass(slots=True)
class DashboardRestore:
    """One dashboard imported through the HTTP API; the database is left alone."""

    engine: GrafanaEngine
    request: RestoreRequest
    result: RestoreResult
    grafana: GrafanaInstance
    uid: str
    exported: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None
    folder_created: bool = False
    work: Path | None = None
    source: str = "grafana"
    stops_service: bool = False

    @property
    def instance(self) -> str:
        return self.grafana.name

    @classmethod
    def new(cls, engine: GrafanaEngine, request: RestoreRequest, uid: str) -> DashboardRestore:
        """The import of dashboard ``uid`` (``--dashboard UID``)."""
        grafana = request.config.grafana_instance(request.target)
        if not grafana.url:
            raise UsageError(detail=f"--dashboard {uid} imports through Grafana's HTTP API: set grafana.{grafana.name}"
                             f".url (and token_file or token_env) in bdr.yaml; bdr does not write into the database "
                             f"under Grafana; without the API, restore the whole database: bdr restore grafana SET")
        return cls(engine, request, _result(request, grafana.name), grafana, uid)

    def api(self) -> GrafanaApi:
        return GrafanaApi.of(self.grafana)

    def state(self) -> dict[str, Any]:
        return {"selection": self.request.selection.to_state(), "previous": self.previous,
                "folder_created": self.folder_created}

    def load(self, state: dict[str, Any]) -> None:
        self.previous = state.get("previous")
        self.folder_created = bool(state.get("folder_created"))

    def fetch(self) -> StepOutcome:
        assert self.request.backup is not None
        exports = self.request.backup.manifest.facts.get("exports")
        if exports is None:
            raise UsageError(detail=f"{self.result.ref} holds no dashboard export (grafana.{self.instance}.url was not "
                             "set, or the API failed, when it was taken); restore the whole database instead")
        if self.uid not in exports:
            shown = ", ".join(list(exports)[:10]) or "none"
            raise UsageError(detail=f"no dashboard {self.uid} in {self.result.ref} (it has: {shown})")
        self.work = Path(tempfile.mkdtemp(prefix="bdr-grafana-dashboard-"))
        _fetch(self.request, self.work)
        self.exported = json.loads((self.work / f"{EXPORT_PREFIX}{self.uid}.json").read_text())
        title = self.exported.get("dashboard", {}).get("title")
        return StepOutcome(f"dashboard {self.uid} ({title}) checked against the manifest")

    def _ready(self) -> dict[str, Any]:
        if self.exported is None:
            self.fetch()
        assert self.exported is not None
        return self.exported

    def check(self) -> StepOutcome:
        self._ready()
        health = self.api().health()
        if health.get("database", "ok") != "ok":
            raise PreflightFailed(what=f"dashboard {self.uid}", detail=f"Grafana reports its database {health}")
        return StepOutcome(f"Grafana {health.get('version', '?')} answers; the token is accepted")

    def dry_run(self) -> list[Check]:
        return [Check("dry run", True, f"would import dashboard {self.uid} from {self.result.ref} into Grafana "
                      f"{self.instance} (dry run, nothing changed)")]

    def safety_backup(self) -> tuple[str | None, StepOutcome]:
        self.previous = self.api().dashboard(self.uid)
        if self.previous is None:
            return None, StepOutcome(f"dashboard {self.uid} does not exist now: a rollback deletes it", skipped=True)
        taken = safety_backup(self.engine, self.request, self.instance, options={"dashboards": [self.uid]})
        return taken.id, StepOutcome(f"{taken.id}: the current version of dashboard {self.uid}")

    def stop(self) -> StepOutcome:
        return StepOutcome(skipped=True)

    start = stop

    def replace(self) -> StepOutcome:
        exported = self._ready()
        api = self.api()
        meta = exported.get("meta") or {}
        folder = str(meta.get("folderUid") or "")
        if folder and api.folder(folder) is None:
            api.create_folder(folder, str(meta.get("folderTitle") or folder))
            self.folder_created = True
        answer = api.import_dashboard(exported, f"bdr restore from {self.result.ref}")
        return StepOutcome(f"dashboard {self.uid} imported (version {answer.get('version', '?')})"
                           + (f"; folder {folder} created" if self.folder_created else ""))

    def verify(self) -> list[Check]:
        exported = self._ready()
        live = self.api().dashboard(self.uid)
        if live is None:
            return [Check("dashboard", False, f"{self.uid} is not in Grafana after the import")]
        ignored = ("id", "version")
        want = {k: v for k, v in exported["dashboard"].items() if k not in ignored}
        have = {k: v for k, v in live["dashboard"].items() if k not in ignored}
        folder_want = str((exported.get("meta") or {}).get("folderUid") or "")
        folder_have = str((live.get("meta") or {}).get("folderUid") or "")
        ok = want == have and folder_want == folder_have
        return [Check("dashboard", ok, f"{self.uid} as in the backup (content and folder {folder_want or 'General'})"
                      if ok else f"{self.uid} differs from the backup after the import")]

    def rollback(self, safety_id: str | None) -> StepOutcome:
        api = self.api()
        if self.previous is not None:
            api.import_dashboard(self.previous, "bdr rollback")
            return StepOutcome(f"dashboard {self.uid} put back as it was")
        api.delete_dashboard(self.uid)
        return StepOutcome(f"dashboard {self.uid} deleted (it did not exist before)")

    def finish(self) -> StepOutcome:
        self.discard()
        return StepOutcome("work directory removed")

    def discard(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)


__all__ = ["DashboardRestore", "DatabaseRestore", "drop_old", "inventory_checks", "set_aside_earlier", "swap_back",
           "swap_in"]
