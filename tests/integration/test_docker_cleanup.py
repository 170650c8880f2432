"""Nothing is left on the Docker engine: not by a failing test, not by a run that was killed.

Needs a Docker engine (skips without one) and ``tests.docker_fixtures`` as a pytest plugin.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bdr.errors import ServiceError
from bdr.runtime.docker import spawn_redis_container
from bdr.runtime.docker_engine import Role, labels_for
from tests.docker_fixtures import PID_LABEL, RUN_LABEL, DockerScope, remove_leftovers

pytest_plugins = ("pytester",)
pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]

FAILING_TEST = '''
import json, os
from bdr.runtime.docker import spawn_redis_container, volume_backup

def test_fails_half_way(docker_scope, redis_image, tmp_path):
    server = spawn_redis_container(image=redis_image, network="host", appendonly=True)
    server.client_for().set("k", "v")
    volume_backup(server.volume, tmp_path / "v.tar")  # helper containers come and go too
    with open(os.environ["BDR_PROBE_OUT"], "w") as out:
        json.dump({"labels": os.environ["BDR_DOCKER_LABELS"], "container": server.container_name,
                   "volume": server.volume, "running": server.running()}, out)
    assert server.client_for().get("k") == b"not what it is"
'''


def test_a_failing_test_leaves_nothing_behind(docker_scope: DockerScope, pytester: pytest.Pytester,
                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    probe = tmp_path / "probe.json"
    monkeypatch.setenv("BDR_PROBE_OUT", str(probe))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv("BDR_DOCKER_LABELS", raising=False)
    pytester.makepyfile(test_inner=FAILING_TEST)

    result = pytester.runpytest_subprocess("-p", "tests.docker_fixtures", "-p", "no:cacheprovider", "-q")

    result.assert_outcomes(failed=1)
    seen = json.loads(probe.read_text())
    assert seen["running"]  # the inner test did create a live container before it failed
    label = dict(item.split("=", 1) for item in seen["labels"].split(","))[RUN_LABEL]
    client = docker_scope.client
    assert client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={label}"}) == []
    assert client.volumes.list(filters={"label": f"{RUN_LABEL}={label}"}) == []
    assert client.containers.list(all=True, filters={"name": seen["container"]}) == []


def dead_pid() -> int:
    """The pid of a process that has exited: what a killed test run leaves in its labels."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_leftovers_of_a_killed_run_are_removed(docker_scope: DockerScope, redis_image: str) -> None:
    """What a run killed with SIGKILL leaves (no finalizer ran) goes at the next session's start."""
    client = docker_scope.client
    killed_run = {"bdr.test": "1", PID_LABEL: str(dead_pid())}
    volume = client.volumes.create(name=f"bdr-test-leftover-{docker_scope.label}", labels=killed_run)
    container = client.containers.create(redis_image, command=["redis-server", "--port", "0"], network_mode="none",
                                         labels=labels_for(Role.SERVICE, killed_run),
                                         volumes={volume.name: {"bind": "/data", "mode": "rw"}})
    container.start()

    alive = client.containers.create(redis_image, command=["redis-server", "--port", "0"], network_mode="none",
                                     labels=labels_for(Role.SERVICE))  # this run's own: docker_scope's labels

    removed = remove_leftovers(client)

    assert removed["containers"] >= 1 and removed["volumes"] >= 1
    assert client.containers.list(all=True, filters={"id": alive.id})  # a live run keeps its objects
    assert client.containers.list(all=True, filters={"id": container.id}) == []
    assert client.volumes.list(filters={"name": volume.name}) == []


def test_a_container_that_does_not_start_goes_with_its_volume(docker_scope: DockerScope, redis_image: str) -> None:
    with pytest.raises(ServiceError, match=r"exited with code 1 at start: .*Bad directive"):
        spawn_redis_container(image=redis_image, network="host", extra=["--no-such-directive", "x"])
    assert docker_scope.leftovers() == ([], [])
