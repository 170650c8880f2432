"""grafana.db: a consistent copy while Grafana writes, its integrity, and what it holds.

The copy goes through SQLite's online backup API (``sqlite3.Connection.backup``), never a
file copy: the backup reads the pages under one read transaction, so the copy is the
database as of one commit, whatever Grafana writes meanwhile (in rollback-journal mode a
writer waits for the read lock to go; in WAL mode it goes on). ``PRAGMA integrity_check``
then runs on the copy: a corrupt source is refused, never stored as a backup.

:func:`read_inventory` reads what an operator checks after a restore: the dashboards
(uid, title, folder, version), the folders, the data sources (names only: their secrets
stay in the encrypted set) and the alert rule count, from Grafana's own tables, tolerating
the columns older versions lack (``folder_uid``, ``deleted``, the ``folder`` table).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdr.errors import GrafanaDbCorrupt, ServiceBusy

BUSY_TIMEOUT = 30.0
"""How long the copy waits for Grafana's write lock to go (seconds)."""


@contextlib.contextmanager
def read_only(path: Path, timeout: float = BUSY_TIMEOUT) -> Iterator[sqlite3.Connection]:
    """A read-only connection to ``path`` (never creates it), closed on exit."""
    if not path.is_file():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
    try:
        yield conn
    finally:
        conn.close()


def online_copy(source: Path, dest: Path, timeout: float = BUSY_TIMEOUT) -> None:
    """Copy ``source`` into the new file ``dest`` through the online backup API, fsynced.

    Raises :class:`GrafanaDbCorrupt` when SQLite cannot read it as a database, and
    :class:`ServiceBusy` when Grafana held its write lock past ``timeout``.
    """
    try:
        with read_only(source, timeout) as src:
            target = sqlite3.connect(dest)
            try:
                src.backup(target)
            finally:
                target.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise ServiceBusy(service="grafana.db", address=str(source),
                              detail=f"a writer held its lock for {timeout:.0f}s; run the backup again") from exc
        raise GrafanaDbCorrupt(path=str(source), detail=str(exc)) from exc
    except sqlite3.DatabaseError as exc:
        raise GrafanaDbCorrupt(path=str(source), detail=str(exc)) from exc
    with open(dest, "rb") as handle:
        os.fsync(handle.fileno())


def integrity_problems(path: Path, limit: int = 5) -> list[str]:
    """What ``PRAGMA integrity_check`` reports of ``path`` (empty: sound), and a missing dashboard table."""
    try:
        with read_only(path) as conn:
            rows = [str(r[0]) for r in conn.execute(f"PRAGMA integrity_check({int(limit)})")]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    problems = [r for r in rows if r != "ok"]
    if not problems and "dashboard" not in tables:
        problems.append("no dashboard table: not a Grafana database")
    return problems


def check_copy(path: Path, source: Path) -> None:
    """Raise :class:`GrafanaDbCorrupt` when the copy ``path`` of ``source`` fails the integrity check."""
    problems = integrity_problems(path)
    if problems:
        raise GrafanaDbCorrupt(path=str(source), detail="integrity_check: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Dashboard:
    """One dashboard as Grafana's ``dashboard`` table holds it."""

    uid: str
    title: str
    folder: str
    """The folder's uid ("" for General)."""
    version: int
    org_id: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "title": self.title, "folder": self.folder, "version": self.version,
                "org_id": self.org_id}


@dataclass(frozen=True, slots=True)
class Inventory:
    """What a grafana.db holds, as the manifest records it (no secret: data sources by name only)."""

    dashboards: tuple[Dashboard, ...]
    folders: tuple[dict[str, str], ...]
    datasources: tuple[str, ...]
    alert_rules: int
    migrations: int = 0
    last_migration: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def uids(self) -> list[str]:
        return sorted(d.uid for d in self.dashboards)

    def facts(self) -> dict[str, Any]:
        return {
            "dashboard_count": len(self.dashboards),
            "dashboards": [d.to_dict() for d in sorted(self.dashboards, key=lambda d: d.uid)],
            "folder_count": len(self.folders),
            "folders": list(self.folders),
            "datasource_count": len(self.datasources),
            "datasources": list(self.datasources),
            "alert_rule_count": self.alert_rules,
            "migrations": self.migrations,
            "last_migration": self.last_migration,
        }

    def differences(self, facts: dict[str, Any]) -> list[str]:
        """How this inventory differs from a manifest's ``facts`` (empty: the same)."""
        problems: list[str] = []
        want_uids = sorted(str(d["uid"]) for d in facts.get("dashboards") or ())
        if self.uids != want_uids:
            missing = sorted(set(want_uids) - set(self.uids))
            extra = sorted(set(self.uids) - set(want_uids))
            problems.append("dashboards differ" + (f"; missing {', '.join(missing[:5])}" if missing else "")
                            + (f"; not in the backup {', '.join(extra[:5])}" if extra else ""))
        for key, have in (("folder_count", len(self.folders)), ("datasource_count", len(self.datasources)),
                          ("alert_rule_count", self.alert_rules)):
            if key in facts and int(facts[key]) != have:
                problems.append(f"{key.replace('_count', '').replace('_', ' ')}s: {have}, the backup has {facts[key]}")
        if "datasources" in facts and sorted(facts["datasources"]) != sorted(self.datasources):
            problems.append("data source names differ")
        return problems


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _folders(conn: sqlite3.Connection, tables: set[str], columns: set[str]) -> tuple[list[dict[str, str]],
                                                                                      dict[int, str]]:
    """The folders (uid, title), and the folder uid of each legacy folder id (``dashboard.folder_id``)."""
    by_id: dict[int, str] = {}
    if "is_folder" in columns:
        for row_id, uid in conn.execute("SELECT id, uid FROM dashboard WHERE is_folder = 1"):
            by_id[int(row_id)] = str(uid or "")
    if "folder" in tables:
        rows = conn.execute("SELECT uid, title FROM folder ORDER BY uid").fetchall()
    elif "is_folder" in columns:
        rows = conn.execute("SELECT uid, title FROM dashboard WHERE is_folder = 1 ORDER BY uid").fetchall()
    else:
        rows = []
    return [{"uid": str(uid or ""), "title": str(title)} for uid, title in rows], by_id


def read_inventory(path: Path) -> Inventory:
    """The inventory of the grafana.db at ``path`` (opened read-only)."""
    try:
        with read_only(path) as conn:
            return _inventory(conn)
    except sqlite3.DatabaseError as exc:
        raise GrafanaDbCorrupt(path=str(path), detail=str(exc)) from exc


def _inventory(conn: sqlite3.Connection) -> Inventory:
    tables = _tables(conn)
    if "dashboard" not in tables:
        raise sqlite3.DatabaseError("no dashboard table: not a Grafana database")
    columns = _columns(conn, "dashboard")
    folders, folder_ids = _folders(conn, tables, columns)
    where = ["1 = 1"]
    if "is_folder" in columns:
        where.append("is_folder = 0")
    if "deleted" in columns:
        where.append("deleted IS NULL")
    folder_expr = "folder_uid" if "folder_uid" in columns else "''"
    org = "org_id" if "org_id" in columns else "1"
    dashboards = []
    query = f"SELECT uid, title, version, {folder_expr}, folder_id, {org} FROM dashboard WHERE {' AND '.join(where)}" \
        if "folder_id" in columns else \
        f"SELECT uid, title, version, {folder_expr}, 0, {org} FROM dashboard WHERE {' AND '.join(where)}"
    for uid, title, version, folder_uid, folder_id, org_id in conn.execute(query):
        folder = str(folder_uid or "") or folder_ids.get(int(folder_id or 0), "")
        dashboards.append(Dashboard(str(uid or ""), str(title), folder, int(version or 0), int(org_id or 1)))
    datasources: list[str] = []
    if "data_source" in tables:
        datasources = sorted(str(r[0]) for r in conn.execute("SELECT name FROM data_source"))
    alert_rules = int(conn.execute("SELECT COUNT(*) FROM alert_rule").fetchone()[0]) if "alert_rule" in tables else 0
    migrations, last = 0, ""
    if "migration_log" in tables:
        migrations = int(conn.execute("SELECT COUNT(*) FROM migration_log WHERE success = 1").fetchone()[0])
        row = conn.execute("SELECT migration_id FROM migration_log WHERE success = 1 ORDER BY id DESC LIMIT 1"
                           ).fetchone()
        last = str(row[0]) if row else ""
    return Inventory(tuple(dashboards), tuple(folders), tuple(datasources), alert_rules, migrations, last)


__all__ = ["Dashboard", "Inventory", "check_copy", "integrity_problems", "online_copy", "read_inventory",
           "read_only"]
