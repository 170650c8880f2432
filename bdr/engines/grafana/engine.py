"""The Grafana engine: back up grafana.db, provisioning and grafana.ini (and dashboard JSON), verify, restore."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bdr.config import Config, GrafanaInstance
from bdr.crypto import Cipher
from bdr.engines.base import BackupRequest, Check, RestoreRequest, RestoreResult
from bdr.engines.files.engine import pinned_secrets, secrets_cipher
from bdr.engines.files.incoming import SECRETS_OBJECT
from bdr.engines.grafana import database
from bdr.engines.grafana.api import GrafanaApi
from bdr.engines.grafana.layout import CONF_PREFIX, DB_NAME, EXPORT_PREFIX, conf_files, db_path_of
from bdr.engines.runbook import Restorer, run_restore
from bdr.engines.selection import GrafanaSelection
from bdr.errors import BdrError, NothingToBackUp
from bdr.repository import SetWriter
from bdr.repository.archive import ArchiveMember
from bdr.repository.manifest import Manifest
from bdr.safety.journal import JournalEntry

logger = logging.getLogger(__name__)

METHOD = "sqlite"
DASHBOARD_METHOD = "dashboard"
"""A safety set holding one dashboard's JSON only (taken before ``--dashboard UID`` overwrites it)."""


class GrafanaEngine:
    """Backs up and restores one Grafana of ``grafana:`` in bdr.yaml."""

    source = "grafana"
    selection_type = GrafanaSelection

    # --- backup -------------------------------------------------------------------------------

    def backup(self, request: BackupRequest, writer: SetWriter) -> None:
        """grafana.db (online backup API, integrity-checked) and the config files, encrypted; dashboard JSON.

        ``request.options``: ``safety`` (a restore's safety backup: a corrupt live database is
        refused all the same, the restore then keeps the file aside), ``dashboards`` (only
        these dashboards' JSON through the API, no database: the safety set of ``--dashboard``).
        """
        config = request.config
        instance = config.grafana_instance(request.instance)
        only = list(request.options.get("dashboards") or ())
        scratch = Path(tempfile.mkdtemp(prefix="bdr-grafana-"))
        try:
            if only:
                self._dashboards_only(instance, only, scratch, writer)
                return
            self._full(request, instance, scratch, writer)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _full(self, request: BackupRequest, instance: GrafanaInstance, scratch: Path, writer: SetWriter) -> None:
        config = request.config
        db = db_path_of(config, instance)
        if not db.is_file():
            raise NothingToBackUp(detail=f"no Grafana database at {db}: check grafana.{instance.name}.db_path in "
                                  "bdr.yaml")
        copy = scratch / DB_NAME
        database.online_copy(db, copy, timeout=instance.timeout)
        database.check_copy(copy, db)
        inventory = database.read_inventory(copy)
        exports, export_facts = self._export(instance, scratch)
        conf = conf_files(config, instance)
        cipher = secrets_cipher(request)
        digests: dict[str, str] = {}
        with contextlib.ExitStack() as stack:
            members = [ArchiveMember(copy, DB_NAME, secret=True)]
            for root in {p.parent for p in conf.values()}:
                names = {n: p for n, p in conf.items() if p.parent == root}
                pinned = stack.enter_context(pinned_secrets(root, [p.name for p in names.values()]))
                by_file = {p.path: p for p in pinned}
                for name, path in names.items():
                    secret = by_file[path.name]
                    members.append(ArchiveMember(secret.source, name, secret=True))
                    if isinstance(cipher, Cipher):
                        digests[name] = cipher.digest(secret.data)
            writer.add_archive(sorted(members, key=lambda m: m.name), compress=True, name=SECRETS_OBJECT,
                               cipher=cipher)
        if exports:
            writer.add_archive([ArchiveMember(path, f"{EXPORT_PREFIX}{uid}.json") for uid, path in exports.items()],
                               compress=True)
        writer.facts.update(
            instance=instance.name,
            db_path=str(db),
            db_bytes=copy.stat().st_size,
            integrity="ok",
            consistency="sqlite online backup API",
            **inventory.facts(),
            conf_files=sorted(conf),
            secret_digests=digests,
            **export_facts,
        )
        writer.method = METHOD
        logger.info("grafana backup %s: %d dashboard(s), %d folder(s), %d data source(s), %d alert rule(s)",
                    writer.id, len(inventory.dashboards), len(inventory.folders), len(inventory.datasources),
                    inventory.alert_rules)

    @staticmethod
    def _export(instance: GrafanaInstance, scratch: Path, only: list[str] | None = None
                ) -> tuple[dict[str, Path], dict[str, Any]]:
        """Every dashboard's JSON through the HTTP API (when ``url`` is set): files by uid, and the facts.

        An API that fails does not fail the backup of the database (the dashboards are in it):
        the facts say why there is no export, and ``bdr verify`` shows it as not verified.
        """
        if not instance.url:
            return {}, {"grafana_version": None, "exports": None,
                        "export_note": f"no grafana.{instance.name}.url: dashboards are in grafana.db only"}
        api = GrafanaApi.of(instance)
        folder = scratch / "exports"
        folder.mkdir()
        files: dict[str, Path] = {}
        try:
            version = str(api.health().get("version") or "") or None
            uids = only if only is not None else api.dashboard_uids()
            for uid in uids:
                exported = api.dashboard(uid)
                if exported is None:
                    continue
                path = folder / f"{len(files)}.json"
                path.write_text(json.dumps(exported, sort_keys=True, indent=1))
                files[uid] = path
        except BdrError as exc:
            if only is not None:
                raise
            logger.warning("grafana %s: dashboards not exported: %s", instance.name, exc.message)
            return {}, {"grafana_version": None, "exports": None, "export_note": f"export failed: {exc.message}"}
        return files, {"grafana_version": version, "exports": sorted(files), "export_note": ""}

    def _dashboards_only(self, instance: GrafanaInstance, uids: list[str], scratch: Path, writer: SetWriter) -> None:
        exports, facts = self._export(instance, scratch, only=uids)
        if not exports:
            raise NothingToBackUp(detail=f"none of the dashboards {', '.join(uids)} exists in Grafana {instance.name}")
        writer.add_archive([ArchiveMember(path, f"{EXPORT_PREFIX}{uid}.json") for uid, path in exports.items()],
                           compress=True)
        writer.facts.update(instance=instance.name, **facts)
        writer.method = DASHBOARD_METHOD

    # --- restore: through the runbook ---------------------------------------------------------

    def instance_name(self, config: Config, target: str | None) -> str:
        return config.grafana_instance(target).name

    def restorer(self, request: RestoreRequest) -> Restorer:
        from bdr.engines.grafana.restore import restorer_for

        return restorer_for(self, request)

    def resumed(self, request: RestoreRequest, entry: JournalEntry, result: RestoreResult) -> Restorer:
        from bdr.engines.grafana.restore import resumed_restorer

        return resumed_restorer(self, request, entry, result)

    def restore(self, request: RestoreRequest) -> RestoreResult:
        return run_restore(self, request)

    # --- verify -------------------------------------------------------------------------------

    def verify(self, manifest: Manifest, files: Path, restore_test: bool = False) -> list[Check]:
        """The database's integrity and inventory against the manifest, the exports, the config files."""
        checks: list[Check] = []
        facts = manifest.facts
        if manifest.method != DASHBOARD_METHOD:
            db = files / DB_NAME
            problems = database.integrity_problems(db) if db.is_file() else [f"{DB_NAME} is missing"]
            checks.append(Check("integrity_check", not problems, "; ".join(problems) or f"{DB_NAME} passes SQLite's "
                                "PRAGMA integrity_check"))
            if not problems:
                differences = database.read_inventory(db).differences(dict(facts))
                checks.append(Check("inventory", not differences, "; ".join(differences) or
                                    f"{facts.get('dashboard_count', 0)} dashboard(s) with the manifest's uids, "
                                    f"{facts.get('folder_count', 0)} folder(s), {facts.get('datasource_count', 0)} "
                                    f"data source(s), {facts.get('alert_rule_count', 0)} alert rule(s)"))
                if restore_test:
                    checks.append(_restore_test(db))
            conf = [f.path for f in manifest.files if f.path.startswith(CONF_PREFIX)]
            missing = [p for p in conf if not (files / p).is_file()]
            checks.append(Check("config files", not missing, f"{len(conf)} file(s) (grafana.ini, provisioning) "
                                "stored encrypted" + (f"; missing: {', '.join(missing[:5])}" if missing else "")))
        checks.append(_exports_check(facts, files))
        return checks


def _restore_test(db: Path) -> Check:
    """Open a copy of the database read-write, as Grafana would, and write in a transaction rolled back."""
    import sqlite3

    with tempfile.TemporaryDirectory(prefix="bdr-grafana-test-") as scratch:
        copy = Path(scratch) / DB_NAME
        shutil.copyfile(db, copy)
        try:
            conn = sqlite3.connect(copy)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("UPDATE dashboard SET version = version WHERE 0")
                conn.execute("ROLLBACK")
                quick = conn.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            return Check("restore test", False, f"the restored database does not open for writing: {exc}")
    return Check("restore test", quick == "ok", f"a copy opened read-write and took a write transaction; quick_check "
                 f"{quick}")


def _exports_check(facts: Any, files: Path) -> Check:
    exported = facts.get("exports")
    if exported is None:
        return Check("dashboard exports", True, str(facts.get("export_note") or "none taken"), skipped=True)
    bad: list[str] = []
    for uid in exported:
        path = files / f"{EXPORT_PREFIX}{uid}.json"
        try:
            data = json.loads(path.read_text())
            if str(data["dashboard"]["uid"]) != uid:
                bad.append(f"{uid} (holds {data['dashboard']['uid']})")
        except (OSError, ValueError, KeyError, TypeError):
            bad.append(f"{uid} (missing or not a dashboard export)")
    return Check("dashboard exports", not bad, f"{len(exported) - len(bad)} of {len(exported)} dashboard JSON "
                 "export(s) read back with their uid" + (f"; bad: {', '.join(bad[:5])}" if bad else ""))


ENGINE = GrafanaEngine()
