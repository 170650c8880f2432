"""Qdrant in a container: life cycle and the runbook's volume backup of /qdrant/storage.

Needs a Docker engine and a local Qdrant image (``qdrant/qdrant``, or ``$BDR_QDRANT_IMAGE``);
skips with the reason when either is missing: no registry is reachable here, and bdr
cannot build a Qdrant image offline. Needs ``tests.docker_fixtures`` as a pytest plugin.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from qdrant_client import QdrantClient, models

from bdr.runtime.docker import QdrantContainer, remove_volume, spawn_qdrant_container, volume_backup, volume_restore
from bdr.util.waiting import wait_for
from tests.docker_fixtures import DockerScope

pytestmark = pytest.mark.docker


def client_for(server: QdrantContainer) -> QdrantClient:
    return QdrantClient(url=server.url(), prefer_grpc=False, timeout=30, check_compatibility=False)


def test_qdrant_volume_round_trip(docker_scope: DockerScope, qdrant_image: str, tmp_path: Path) -> None:
    server = spawn_qdrant_container(name="production", image=qdrant_image, network="host")
    client = client_for(server)
    client.create_collection("memories", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
    client.upsert("memories", points=[
        models.PointStruct(id=i, vector=[float(i), 1.0, 0.5, 0.25], payload={"user": f"u{i % 7}"}) for i in range(200)
    ], wait=True)

    server.kill()
    server.start()
    assert client_for(server).count("memories").count == 200

    archive = tmp_path / "qdrant_volume.tar.gz"
    copy = volume_backup(server.volume or "", archive, image=qdrant_image)
    assert copy.stopped == (server.container_name,)
    assert wait_for(server.ready, 60)

    remove_volume(server.volume or "", with_containers=True)
    volume_restore(f"bdr-test-qdrant-{docker_scope.label}", archive, image=qdrant_image)
    again = spawn_qdrant_container(f"bdr-test-qdrant-{docker_scope.label}", image=qdrant_image, network="host")
    restored = client_for(again)
    assert restored.count("memories").count == 200
    assert restored.retrieve("memories", ids=[42])[0].payload == {"user": "u0"}
