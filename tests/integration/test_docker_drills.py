"""The drill suite on real containers: ``bdr drill --runtime docker``, as an operator runs it.

The drills run in a subprocess (``python -m bdr.cli.main drill``), so what is checked is
what the operator gets: the exit code, the JSON compliance report (runtime, image id,
container ids in the evidence) and a Docker engine with nothing of the drill left on it.
The first test needs a Docker engine (skips without one); the second proves the drill
skips, with the reason, when there is none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.docker_fixtures import DockerScope

REPO = Path(__file__).resolve().parents[2]


def run_drill(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bdr.cli.main", "drill", *args], cwd=cwd, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=240, check=False,
    )


def only_report(reports: Path) -> dict[str, Any]:
    found = sorted(reports.glob("drill-*.json"))
    assert len(found) == 1, found
    report: dict[str, Any] = json.loads(found[0].read_text())
    return report


@pytest.mark.docker
def test_a_drill_on_containers_records_the_runtime_and_the_image(docker_scope: DockerScope, redis_image: str,
                                                                  tmp_path: Path) -> None:
    """The torn-AOF drill on containers: docker kill, a torn write in the volume, bdr repair, restart."""
    reports = tmp_path / "reports"

    proc = run_drill(tmp_path, "-s", "redis_corruption", "--runtime", "docker", "--reports", str(reports),
                     "-k", "torn_aof")

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = only_report(reports)
    environment = report["environment"]
    assert environment["runtime"] == "docker"
    image = docker_scope.client.images.get(environment["redis_image"])
    assert environment["redis_image_id"] == image.id
    [result] = report["results"]
    assert (result["scenario"], result["runtime"], result["outcome"]) == ("redis_corruption", "docker", "passed")
    assert result["targets_met"]
    evidence = result["evidence"]
    assert evidence["runtime"] == "docker"
    assert evidence["image_id"] == image.id and evidence["image"] == environment["redis_image"]
    production = evidence["services"]["redis/production"]
    assert production["runtime"] == "docker" and production["image_id"] == image.id
    assert production["network"] == "host"
    assert production["volume"] == f"{evidence['project']}_redis_data"
    assert len(production["container_id"]) == 12
    assert evidence["services"]["qdrant/production"]["runtime"] == "embedded"
    assert evidence["repair"]["applied"]
    steps = {step["name"]: step for step in result["steps"]}
    assert "redis-check-aof --fix" in steps["Redis refuses to start"]["detail"]  # the container's own log
    assert steps["bdr repair redis --yes"]["ok"]
    # Stack.stop removed the drill's containers and volumes, and bdr left no helper behind.
    client = docker_scope.client
    assert client.containers.list(all=True, filters={"label": f"bdr.drill.project={evidence['project']}"}) == []
    assert client.volumes.list(filters={"label": f"bdr.drill.project={evidence['project']}"}) == []
    assert docker_scope.leftovers() == ([], [])


def test_without_an_engine_the_drill_is_skipped_with_the_reason(tmp_path: Path) -> None:
    reports = tmp_path / "reports"

    proc = run_drill(tmp_path, "-s", "redis_restart", "--runtime", "docker", "--reports", str(reports),
                     env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = only_report(reports)
    assert report["environment"]["runtime"] == "docker"
    assert report["environment"]["docker_engine"].startswith("unavailable")
    [result] = report["results"]
    assert result["outcome"] == "skipped"
    assert "needs a Docker engine" in result["failure"] and "no-engine.sock" in result["failure"]
