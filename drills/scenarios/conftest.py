"""Fixtures of the cluster drills: a loopback Redis Cluster with its workload (see :mod:`drills.cluster`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from drills.cluster import ClusterStack
from drills.policy import Policy
from drills.recorder import Drill
from drills.stack import SCALES


@pytest.fixture
def cluster_stack(request: pytest.FixtureRequest, tmp_path: Path, dr_policy: Policy,
                  drill: Drill) -> Iterator[ClusterStack]:
    """3 masters + 3 replicas on 127.0.0.1 with the agent workload of the chosen scale; removed afterwards."""
    if request.config.getoption("--dr-runtime") != "process":
        pytest.skip("the cluster drills run redis-server processes on 127.0.0.1 (--dr-runtime process)")
    scale = SCALES[request.config.getoption("--dr-scale")]
    stack = ClusterStack.start(tmp_path / "stack", dr_policy.config, users=scale.users)
    try:
        drill.evidence["services"] = stack.describe()
        drill.evidence["workload_keys"] = stack.loaded
        yield stack
    finally:
        stack.stop()
