"""Runbook: "Prometheus metrics lost" (the metrics volume gone; RPO 7 days, RTO ``metrics_restore``).

Symptoms: Prometheus down, its TSDB directory gone (a lost volume, a bad migration).
Recovery: ``bdr restore prometheus latest``: the TSDB snapshot put back while it is stopped,
Prometheus started again exactly as it was launched, then verified (ready, a range query over
the restored time range, the newest sample, the series count). The metrics RPO achieved is the
time of the loss minus the newest restored sample.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdr import api
from bdr.config import Config
from bdr.util.durations import format_duration
from drills.policy import Policy
from drills.prometheus import MISSING, PROMETHEUS, PrometheusServer, running_prometheus
from drills.recorder import Drill

pytestmark = pytest.mark.drill("metrics_loss", title="Prometheus metrics volume lost, restored from the latest backup",
                               sources=("prometheus",), objectives=("rto metrics_restore", "rpo metrics"))


@pytest.fixture
def metrics(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PrometheusServer]:
    if PROMETHEUS is None:
        pytest.skip(MISSING)
    if request.config.getoption("--dr-runtime") != "process":
        pytest.skip("the metrics drill runs a prometheus process on 127.0.0.1 (--dr-runtime process)")
    with running_prometheus(tmp_path / "prometheus", samples=3) as server:
        yield server


def metrics_config(policy: Policy, server: PrometheusServer, tmp_path: Path) -> Config:
    return dataclasses.replace(policy.config, repository=str(tmp_path / "repo"),
                               prometheus={"production": server.instance()}, prometheus_default="production")


def test_metrics_loss(metrics: PrometheusServer, drill: Drill, dr_policy: Policy, tmp_path: Path) -> None:
    config = metrics_config(dr_policy, metrics, tmp_path)
    with drill.step("scheduled backup", "bdr backup prometheus") as step:
        outcome = api.backup(config, "prometheus", compress=True)
        facts = outcome.manifest.facts
        step.detail = (f"{outcome.manifest.id}: {facts['block_count']} block(s), {facts['samples']} samples, "
                          f"{facts['series']} series")

    drill.fault("Prometheus killed and its TSDB directory deleted (the metrics volume lost)")
    metrics.kill()
    shutil.rmtree(metrics.data_dir)
    with drill.step("detected") as step:
        assert not metrics.ready()
        step.detail = "/-/ready does not answer; the data directory is gone"
    with drill.step("restore", "bdr restore prometheus latest") as step:
        result = api.restore(config, "prometheus", "latest")
        step.detail = ", ".join(f"{s.name} {format_duration(s.seconds)}" for s in result.steps)
    with drill.step("service answering"):
        assert metrics.ready()
    with drill.step("verify") as step:
        assert result.ok, result.checks
        step.detail = "; ".join(f"{c.name}: {c.detail}" for c in result.checks)
    drill.verified()

    drill.rto("metrics_restore")
    newest = result.facts.get("newest_restored_sample_ms")
    drill.rpo("metrics", newest / 1000 if newest is not None else None, note="newest restored sample")
    drill.evidence.update(backup_id=outcome.manifest.id, blocks=facts["blocks"], series=facts["series"],
                          newest_restored_sample=result.facts.get("newest_restored_sample"),
                          prometheus_version=facts["prometheus_version"],
                          restore_steps=[s.to_dict() for s in result.steps])
    drill.assert_targets()
