"""A real grafana.db for the tests: Grafana's own tables (as its migrations create them), with some content.

No Grafana server can be installed here, so the tests build the database Grafana would have
written: the ``dashboard`` table (folders as ``is_folder`` rows, as Grafana keeps them beside
the newer ``folder`` table), ``folder``, ``data_source`` (with secrets in ``secure_json_data``
and ``basic_auth_password``), ``alert_rule``, ``kv_store`` and ``migration_log``, columns as
in Grafana 10/11's SQLite schema. :data:`STANDIN` is a small long-running process that holds
the database open and writes to it (a heartbeat, or new dashboards), started and stopped by
``start``/``stop``/``status`` commands as supervisord would: the ``command`` runtime drives it
for real. It is not Grafana.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import sys
from pathlib import Path

from bdr.config import Config, EncryptionSettings, GrafanaInstance

SCHEMA = """
CREATE TABLE migration_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, migration_id TEXT NOT NULL, sql TEXT NOT NULL,
  success INTEGER NOT NULL, error TEXT NOT NULL, timestamp DATETIME NOT NULL);
CREATE TABLE dashboard (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, version INTEGER NOT NULL, slug TEXT NOT NULL,
  title TEXT NOT NULL, data TEXT NOT NULL, org_id INTEGER NOT NULL, created DATETIME NOT NULL,
  updated DATETIME NOT NULL, updated_by INTEGER NULL, created_by INTEGER NULL, gnet_id INTEGER NULL,
  plugin_id TEXT NULL, folder_id INTEGER NOT NULL DEFAULT 0, is_folder INTEGER NOT NULL DEFAULT 0,
  has_acl INTEGER NOT NULL DEFAULT 0, uid TEXT NULL, is_public INTEGER NOT NULL DEFAULT 0,
  folder_uid TEXT NULL, deleted DATETIME NULL, api_version TEXT NULL);
CREATE UNIQUE INDEX UQE_dashboard_org_id_uid ON dashboard (org_id, uid);
CREATE INDEX IDX_dashboard_org_id ON dashboard (org_id);
CREATE TABLE folder (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, uid TEXT NOT NULL, org_id INTEGER NOT NULL,
  title TEXT NOT NULL, description TEXT NULL, parent_uid TEXT NULL, created DATETIME NOT NULL,
  updated DATETIME NOT NULL);
CREATE UNIQUE INDEX UQE_folder_uid_org_id ON folder (uid, org_id);
CREATE TABLE data_source (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, org_id INTEGER NOT NULL, version INTEGER NOT NULL,
  type TEXT NOT NULL, name TEXT NOT NULL, access TEXT NOT NULL, url TEXT NOT NULL, password TEXT NULL,
  user TEXT NULL, database TEXT NULL, basic_auth INTEGER NOT NULL, basic_auth_user TEXT NULL,
  basic_auth_password TEXT NULL, is_default INTEGER NOT NULL, json_data TEXT NULL, created DATETIME NOT NULL,
  updated DATETIME NOT NULL, with_credentials INTEGER NOT NULL DEFAULT 0, secure_json_data TEXT NULL,
  read_only INTEGER NULL, uid TEXT NOT NULL DEFAULT 0, is_prunable INTEGER NULL DEFAULT 0, api_version TEXT NULL);
CREATE UNIQUE INDEX UQE_data_source_org_id_name ON data_source (org_id, name);
CREATE TABLE alert_rule (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, org_id INTEGER NOT NULL, title TEXT NOT NULL,
  condition TEXT NOT NULL, data TEXT NOT NULL, updated DATETIME NOT NULL,
  interval_seconds INTEGER NOT NULL DEFAULT 60, version INTEGER NOT NULL DEFAULT 0, uid TEXT NOT NULL DEFAULT 0,
  namespace_uid TEXT NOT NULL, rule_group TEXT NOT NULL, no_data_state TEXT NOT NULL DEFAULT 'NoData',
  exec_err_state TEXT NOT NULL DEFAULT 'Alerting', "for" INTEGER NOT NULL DEFAULT 0, annotations TEXT NULL,
  labels TEXT NULL, dashboard_uid TEXT NULL, panel_id INTEGER NULL, rule_group_idx INTEGER NOT NULL DEFAULT 1,
  is_paused INTEGER NOT NULL DEFAULT 0);
CREATE TABLE kv_store (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, org_id INTEGER NOT NULL, namespace TEXT NOT NULL,
  "key" TEXT NOT NULL, value TEXT NOT NULL, created DATETIME NOT NULL, updated DATETIME NOT NULL);
CREATE UNIQUE INDEX UQE_kv_store_org_id_namespace_key ON kv_store (org_id, namespace, "key");
"""

NOW = "2026-12-01 10:00:00"
DS_PASSWORD = "ds-password-7f3a9c"
DS_SECURE = "secure-json-token-41bd"
INI_SECRET = "ini-secret-key-90aa1"
PROVISIONED_SECRET = "provisioned-ds-pass-55e2"
FOLDERS = (("ops", "Operations"), ("agents", "Agents"))
DASHBOARDS = (("agents-overview", "Agents overview", "agents"), ("redis-health", "Redis health", "ops"),
              ("qdrant-latency", "Qdrant latency", "ops"), ("home", "Home", ""))


def dashboard_json(uid: str, title: str, panels: int = 2) -> str:
    return json.dumps({"uid": uid, "title": title, "schemaVersion": 39, "version": 1,
                       "panels": [{"id": i, "type": "timeseries", "title": f"{title} {i}"} for i in range(panels)]})


def add_dashboard(conn: sqlite3.Connection, uid: str, title: str, folder: str = "") -> None:
    folder_id = 0
    if folder:
        row = conn.execute("SELECT id FROM dashboard WHERE is_folder = 1 AND uid = ?", (folder,)).fetchone()
        folder_id = int(row[0]) if row else 0
    conn.execute("INSERT INTO dashboard (version, slug, title, data, org_id, created, updated, updated_by, created_by,"
                 " folder_id, is_folder, uid, folder_uid) VALUES (1, ?, ?, ?, 1, ?, ?, 1, 1, ?, 0, ?, ?)",
                 (uid, title, dashboard_json(uid, title), NOW, NOW, folder_id, uid, folder or None))


def build_grafana_db(path: Path, dashboards: tuple[tuple[str, str, str], ...] = DASHBOARDS) -> Path:
    """A grafana.db at ``path`` with Grafana's tables, two folders, ``dashboards``, two data sources, alert rules."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SCHEMA)
        for i, migration in enumerate(("create migration_log table", "create dashboard table",
                                       "Add folder_uid for dashboard", "add unique index datasource_org_id_uid",
                                       "add is_paused column to alert_rule table")):
            conn.execute("INSERT INTO migration_log (migration_id, sql, success, error, timestamp) "
                         "VALUES (?, '', 1, '', ?)", (migration, f"2026-01-0{i + 1} 00:00:00"))
        for uid, title in FOLDERS:
            conn.execute("INSERT INTO dashboard (version, slug, title, data, org_id, created, updated, folder_id, "
                         "is_folder, uid) VALUES (1, ?, ?, '{}', 1, ?, ?, 0, 1, ?)", (uid, title, NOW, NOW, uid))
            conn.execute("INSERT INTO folder (uid, org_id, title, created, updated) VALUES (?, 1, ?, ?, ?)",
                         (uid, title, NOW, NOW))
        for uid, title, folder in dashboards:
            add_dashboard(conn, uid, title, folder)
        conn.execute("INSERT INTO data_source (org_id, version, type, name, access, url, basic_auth, "
                     "basic_auth_user, basic_auth_password, is_default, json_data, created, updated, "
                     "secure_json_data, uid) VALUES (1, 1, 'prometheus', 'Prometheus', 'proxy', "
                     "'http://127.0.0.1:9090', 1, 'grafana', ?, 1, '{}', ?, ?, ?, 'prom')",
                     (DS_PASSWORD, NOW, NOW, json.dumps({"httpHeaderValue1": DS_SECURE})))
        conn.execute("INSERT INTO data_source (org_id, version, type, name, access, url, basic_auth, is_default, "
                     "created, updated, uid) VALUES (1, 1, 'redis-datasource', 'Redis sessions', 'proxy', "
                     "'redis://127.0.0.1:6379', 0, 0, ?, ?, 'redis')", (NOW, NOW))
        for i in range(3):
            conn.execute("INSERT INTO alert_rule (org_id, title, condition, data, updated, uid, namespace_uid, "
                         "rule_group) VALUES (1, ?, 'A', '[]', ?, ?, 'ops', 'backups')",
                         (f"Backup too old {i}", NOW, f"rule-{i}"))
        conn.commit()
    finally:
        conn.close()
    return path


def grafana_tree(root: Path) -> dict[str, Path]:
    """grafana.db, grafana.ini and a provisioning directory under ``root`` (paths by role)."""
    db = build_grafana_db(root / "var" / "grafana.db")
    ini = root / "etc" / "grafana.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text(f"[security]\nsecret_key = {INI_SECRET}\nadmin_user = admin\n")
    provisioning = root / "etc" / "provisioning"
    (provisioning / "datasources").mkdir(parents=True)
    (provisioning / "dashboards").mkdir()
    (provisioning / "datasources" / "prometheus.yaml").write_text(
        "apiVersion: 1\ndatasources:\n  - name: Prometheus\n    secureJsonData:\n"
        f"      password: {PROVISIONED_SECRET}\n")
    (provisioning / "dashboards" / "bdr.yaml").write_text("apiVersion: 1\nproviders: []\n")
    return {"db": db, "ini": ini, "provisioning": provisioning}


STANDIN = '''
"""A stand-in for the Grafana service (not Grafana): holds grafana.db open and writes to it."""
import os, signal, sqlite3, subprocess, sys, time

def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False

def pid_of(pidfile):
    try:
        return int(open(pidfile).read().strip())
    except (OSError, ValueError):
        return None

def run(db, pidfile, mode):
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    conn = sqlite3.connect(db, timeout=30)
    with open(pidfile + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(pidfile + ".tmp", pidfile)
    beat = 0
    while not stop:
        beat += 1
        try:
            if mode == "dashboards":
                conn.execute("INSERT INTO dashboard (version, slug, title, data, org_id, created, updated, "
                             "folder_id, is_folder, uid) VALUES (1, ?, ?, '{}', 1, '2026-12-01', '2026-12-01', 0, 0, "
                             "?)", (f"w{beat}", f"written {beat}", f"w{beat}"))
            else:
                conn.execute("INSERT OR REPLACE INTO kv_store (org_id, namespace, key, value, created, updated) "
                             "VALUES (1, 'standin', ?, ?, '2026-12-01', '2026-12-01')",
                             (f"heartbeat-{os.getpid()}", f"{beat}:{time.time():.6f}"))
            conn.commit()
        except sqlite3.Error as exc:  # as Grafana does: log the failed write and go on serving
            print(f"write failed: {exc}", flush=True)
            conn.rollback()
        time.sleep(0.002 if mode == "dashboards" else 0.05)
    conn.close()
    os.unlink(pidfile)

def main():
    verb, db, pidfile = sys.argv[1], sys.argv[2], sys.argv[3]
    mode = sys.argv[4] if len(sys.argv) > 4 else "heartbeat"
    if verb == "run":
        run(db, pidfile, mode)
    elif verb == "start":
        pid = pid_of(pidfile)
        if pid and alive(pid):
            return 0
        with open(pidfile + ".log", "ab") as log:
            subprocess.Popen([sys.executable, __file__, "run", db, pidfile, mode], stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid = pid_of(pidfile)
            if pid and alive(pid):
                return 0
            time.sleep(0.02)
        return 1
    elif verb == "stop":
        pid = pid_of(pidfile)
        if not pid or not alive(pid):
            return 0
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.02)
        return 0 if not alive(pid) else 1
    elif verb == "status":
        pid = pid_of(pidfile)
        return 0 if pid and alive(pid) else 3
    return 2

sys.exit(main())
'''


def heartbeats(db: Path) -> dict[int, float]:
    """When each stand-in process (by pid) last committed its heartbeat into ``db`` (epoch seconds)."""
    with sqlite3.connect(db, timeout=10) as conn:
        rows = conn.execute("SELECT key, value FROM kv_store WHERE namespace = 'standin'").fetchall()
    return {int(str(key).rpartition("-")[2]): float(str(value).partition(":")[2]) for key, value in rows}


def standin_pid(tmp: Path) -> int:
    """The pid of the stand-in service of :func:`standin_commands` in ``tmp``."""
    return int((tmp / "grafana-standin.pid").read_text())


def standin_commands(tmp: Path, db: Path, mode: str = "heartbeat") -> dict[str, tuple[str, ...]]:
    """``commands:`` of a ``runtime: command`` Grafana that is the stand-in service over ``db``."""
    script = tmp / "grafana-standin.py"
    script.write_text(STANDIN)
    pidfile = str(tmp / "grafana-standin.pid")
    return {verb: (sys.executable, str(script), verb, str(db), pidfile, mode) for verb in ("start", "stop", "status")}


def grafana_config(tmp: Path, paths: dict[str, Path], key: Path, **settings: object) -> Config:
    """A Config with one Grafana ``production`` (runtime command: the stand-in) and an encryption key file."""
    commands = standin_commands(tmp, paths["db"])
    instance = GrafanaInstance(name="production", db_path=str(paths["db"]), config_file=str(paths["ini"]),
                               provisioning=str(paths["provisioning"]), runtime="command", commands=commands,
                               unit=None, token_env=None, timeout=20.0)
    instance = dataclasses.replace(instance, **settings)  # type: ignore[arg-type]
    return dataclasses.replace(Config(), repository=str(tmp / "repo"), grafana={"production": instance},
                               grafana_default="production",
                               encryption=EncryptionSettings(key_file=str(key), key_env=None, passphrase_env=None))
