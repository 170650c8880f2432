"""Runbook: "Grafana dashboards lost" (the volume of grafana.db gone; RPO dashboards 1 day, RTO ``dashboards_restore``).

Symptoms: Grafana's dashboards, folders and data sources gone (a lost volume, a bad upgrade).
Recovery: ``bdr restore grafana latest``: Grafana stopped, the database of the newest set renamed
into place (with grafana.ini and the provisioning files), Grafana started, the restored database's
dashboards, folders, data sources and alert rules checked against the manifest. The dashboards
RPO achieved is the time of the loss minus the newest write the restored database holds.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from bdr import api
from bdr.crypto import generate_key_file
from bdr.util.durations import format_duration
from drills.grafana import STANDIN_NOTE, running_grafana
from drills.policy import Policy
from drills.recorder import Drill
from tests.grafana_fixtures import heartbeats, standin_pid

pytestmark = pytest.mark.drill("dashboards_loss", title="Grafana dashboards lost, restored from the latest backup",
                               sources=("grafana",), objectives=("rto dashboards_restore", "rpo dashboards"))


def test_dashboards_loss(drill: Drill, dr_policy: Policy, tmp_path: Path) -> None:
    key = tmp_path / "backup.key"
    generate_key_file(key)
    base = dataclasses.replace(dr_policy.config, repository=str(tmp_path / "repo"),
                               encryption=dataclasses.replace(dr_policy.config.encryption, key_file=str(key)))
    with running_grafana(tmp_path / "grafana", base) as (config, paths):
        drill.evidence["service"] = STANDIN_NOTE
        with drill.step("scheduled backup", "bdr backup grafana") as step:
            outcome = api.backup(config, "grafana")
            facts = outcome.manifest.facts
            step.detail = (f"{outcome.manifest.id}: {facts['dashboard_count']} dashboard(s), "
                              f"{facts['folder_count']} folder(s), {facts['datasource_count']} data source(s)")

        before = standin_pid(tmp_path / "grafana")
        drill.fault("Grafana's volume lost: grafana.db deleted under the running service")
        db = paths["db"]
        for suffix in ("", "-journal", "-wal", "-shm"):
            # the service writes on: a rollback journal can come and go between two calls
            db.with_name(db.name + suffix).unlink(missing_ok=True)
        with drill.step("detected") as step:
            assert not db.exists()
            step.detail = f"{db} is gone"
        with drill.step("restore", "bdr restore grafana latest") as step:
            result = api.restore(config, "grafana", "latest")
            step.detail = ", ".join(f"{s.name} {format_duration(s.seconds)}" for s in result.steps)
        with drill.step("service answering") as step:
            status = subprocess.run(config.grafana_instance().commands["status"], check=False, timeout=30)
            assert status.returncode == 0
            step.detail = "the service runs over the restored grafana.db"
        with drill.step("verify") as step:
            assert result.ok, result.checks
            assert api.grafana_dashboard_uids(db) == sorted(d["uid"] for d in facts["dashboards"])
            step.detail = "; ".join(f"{c.name}: {c.detail}" for c in result.checks)
        drill.verified()
        newest = heartbeats(db).get(before)  # the newest write of the service from before the loss that survived

    drill.rto("dashboards_restore")
    drill.rpo("dashboards", newest or None, note="newest write in the restored grafana.db")
    drill.evidence.update(backup_id=outcome.manifest.id, dashboards=facts["dashboards"],
                          restore_steps=[s.to_dict() for s in result.steps])
    drill.assert_targets()
