"""``bdr images build redis``: an image made offline from the host's Redis binaries, and it runs.

Needs a Docker engine (skips without one) and ``tests.docker_fixtures`` as a pytest plugin.
"""

from __future__ import annotations

import json
import subprocess
import sys

import docker
import pytest
from click.testing import CliRunner

from bdr.cli.main import cli
from bdr.runtime.docker_engine import Role, labels_for
from bdr.runtime.images import LABEL_BUILT_BY, build_redis_image, host_redis_version, list_images
from tests.docker_fixtures import DockerScope

pytestmark = pytest.mark.docker


def run(client: docker.DockerClient, image: str, argv: list[str]) -> str:
    container = client.containers.create(image, command=argv, network_mode="none", labels=labels_for(Role.HELPER))
    try:
        container.start()
        code = container.wait(timeout=60)["StatusCode"]
        output = str(container.logs().decode())
    finally:
        container.remove(force=True, v=True)
    assert code == 0, output
    return output


def test_build_runs_the_host_redis_offline(docker_scope: DockerScope) -> None:
    client = docker_scope.client
    tag = f"bdr/redis:test-{docker_scope.label}"
    try:
        result = build_redis_image(client, tag=tag)
        assert result.built and result.tag == tag
        version = host_redis_version()
        assert result.version == version
        image = client.images.get(tag)
        assert image.labels[LABEL_BUILT_BY] == "bdr"
        assert image.attrs["Config"]["User"] == "redis"
        assert image.attrs["Size"] < 100 * 1024 * 1024  # binaries + libraries, not a distribution

        assert f"v={version}" in run(client, tag, ["redis-server", "--version"])
        assert "redis-cli" in run(client, tag, ["redis-cli", "--version"])
        checks = run(client, tag, ["sh", "-c", "redis-check-rdb /missing.rdb; redis-check-aof /missing.aof; true"])
        assert "Checking RDB file /missing.rdb" in checks  # one binary, role picked from argv[0]
        assert "Cannot open file /missing.aof" in checks
        listing = run(client, tag, ["ls", "-ln", "/"])
        assert any(line.endswith(" data") and " 999 999 " in line for line in listing.splitlines())

        again = build_redis_image(client, tag=tag)
        assert not again.built and again.image_id == result.image_id
        assert any(i.tag == tag and i.origin == "built" for i in list_images(client))
    finally:
        client.images.remove(tag, force=True)


def test_images_cli(docker_scope: DockerScope, redis_image: str) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["images", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert redis_image in [row["tag"] for row in json.loads(listed.output)]

    built = runner.invoke(cli, ["images", "build", "redis", "--json"])  # present already: not rebuilt
    assert built.exit_code == 0, built.output
    assert json.loads(built.output)["version"] == host_redis_version()

    qdrant = runner.invoke(cli, ["images", "build", "qdrant"])
    assert qdrant.exit_code == 2
    assert "cannot build a Qdrant image offline" in qdrant.output


def test_no_engine_is_one_clear_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "bdr.cli.main", "images", "list"], capture_output=True, text=True,
                          env={"DOCKER_HOST": "unix:///nonexistent/docker.sock", "PATH": "/usr/bin:/bin"},
                          check=False, timeout=60)
    assert proc.returncode == 7
    assert proc.stderr.strip().splitlines() == [
        "bdr: error: cannot reach the Docker engine (unix:///nonexistent/docker.sock): no engine socket at "
        "/nonexistent/docker.sock (is dockerd running?); start it (`sudo systemctl start docker`, or "
        "scripts/ensure-docker.sh start) or point DOCKER_HOST at it"
    ]
