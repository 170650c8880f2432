"""Docker volumes: the runbook's volume backup and restore, tools run on a volume, a volume deleted.

Needs a Docker engine (skips without one) and ``tests.docker_fixtures`` as a pytest plugin.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from bdr.errors import UnsafeArchive, VolumeInUse, VolumeNotFound
from bdr.runtime.docker import (
    RedisContainer,
    remove_volume,
    run_in_volume,
    spawn_redis_container,
    volume_backup,
    volume_restore,
)
from bdr.runtime.docker_volumes import create_volume, volume_exists
from bdr.util.waiting import wait_for
from tests.docker_fixtures import DockerScope

pytestmark = pytest.mark.docker


def fill(server: RedisContainer, keys: int = 3000) -> bytes:
    client = server.client()
    pipe = client.pipeline()
    for i in range(keys):
        pipe.set(f"user:{i}", f"value-{i}" * 4)
        pipe.zadd("leaderboard", {f"user:{i}": i})
        pipe.rpush(f"conversation:{i % 50}", f"message {i}")
    pipe.execute()
    return bytes(client.execute_command("DEBUG", "DIGEST"))


def test_volume_round_trip_after_all_volumes_are_deleted(
    docker_scope: DockerScope, redis_image: str, tmp_path: Path
) -> None:
    """Volume backup (service stopped and started again), the volume deleted, restored into a fresh one."""
    server = spawn_redis_container(name="production", image=redis_image, network="host", appendonly=True)
    before = fill(server)
    archive = tmp_path / "backups" / "redis_volume.tar.zst"

    copy = volume_backup(server.volume or "", archive, image=redis_image)

    assert copy.stopped == (server.container_name,)
    assert server.running() and wait_for(server.ready, 30)  # started again after the copy
    assert server.client().execute_command("DEBUG", "DIGEST") == before
    assert archive.is_file() and archive.stat().st_size == copy.archive_bytes
    assert copy.members == 4  # appendonlydir and its base, incr and manifest files
    assert not list(archive.parent.glob(".*part*"))  # written under a temporary name, then renamed

    removed = remove_volume(server.volume or "", with_containers=True)  # the disaster: `docker compose down -v`
    assert removed == [server.container_name]
    assert not volume_exists(docker_scope.client, server.volume or "")

    fresh = "bdr-test-restored-" + docker_scope.label
    restored = volume_restore(fresh, archive, image=redis_image)
    assert restored.members == copy.members and restored.data_bytes == copy.data_bytes
    again = spawn_redis_container(fresh, name="production", image=redis_image, network="host", appendonly=True)
    assert again.client().execute_command("DEBUG", "DIGEST") == before
    assert again.client().save()  # the volume's root is Redis's again: it can write its next snapshot


def test_restore_a_runbook_tarball_into_a_used_volume(
    docker_scope: DockerScope, redis_image: str, tmp_path: Path
) -> None:
    """``tar czf redis.tar.gz /data`` stores data/...: strip_components=1 puts it at the volume's root."""
    source = spawn_redis_container(name="source", image=redis_image, network="host")
    before = fill(source, 500)
    source.client().save()
    source.export_data(tmp_path / "data", ["dump.rdb"])
    legacy = tmp_path / "redis_volume_20250124.tar.gz"
    with tarfile.open(legacy, "w:gz") as tar:
        tar.add(tmp_path / "data", arcname="data")

    target = spawn_redis_container(name="target", image=redis_image, network="host")
    target.client().set("stale", "1")
    target.client().save()
    with pytest.raises(VolumeInUse, match=target.container_name):
        volume_restore(target.volume or "", legacy, strip_components=1, stop_containers=False)
    result = volume_restore(target.volume or "", legacy, strip_components=1)

    assert result.stopped == (target.container_name,)
    assert wait_for(target.ready, 30)
    assert target.client().execute_command("DEBUG", "DIGEST") == before
    assert target.client().get("stale") is None


def test_unsafe_archive_changes_nothing(docker_scope: DockerScope, redis_image: str, tmp_path: Path) -> None:
    server = spawn_redis_container(image=redis_image, network="host")
    server.client().set("kept", "1")
    server.client().save()
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        good = tarfile.TarInfo("dump.rdb")
        good.size = 4
        tar.addfile(good, io.BytesIO(b"junk"))
        bad = tarfile.TarInfo("../../etc/cron.d/evil")
        bad.size = 4
        tar.addfile(bad, io.BytesIO(b"boom"))

    with pytest.raises(UnsafeArchive, match="escapes"):
        volume_restore(server.volume or "", evil)

    assert server.running()  # never stopped: the archive was refused before anything happened
    server.stop()
    server.start()
    assert server.client().get("kept") == b"1"


def test_missing_volume_is_a_clear_error(docker_scope: DockerScope, tmp_path: Path) -> None:
    with pytest.raises(VolumeNotFound, match="bdr-test-no-such-volume") as info:
        volume_backup("bdr-test-no-such-volume", tmp_path / "x.tar")
    assert info.value.exit_code == 4
    with pytest.raises(VolumeNotFound):
        volume_restore("bdr-test-no-such-volume", Path(__file__), create=False)


def test_check_the_aof_inside_a_container(docker_scope: DockerScope, redis_image: str, tmp_path: Path) -> None:
    """The runbook's `docker run --rm -v redis_data:/data redis:7-alpine redis-check-aof ...`."""
    server = spawn_redis_container(image=redis_image, network="host", appendonly=True)
    fill(server, 200)
    server.stop()
    volume = server.volume or ""
    manifest = "/data/appendonlydir/appendonly.aof.manifest"

    code, output = run_in_volume(redis_image, volume, ["redis-check-aof", manifest])  # it opens files read-write
    assert code == 0, output
    assert "is valid" in output

    # Tear the last command of the incr file, as a crash in the middle of a write does.
    server.export_data(tmp_path / "files", ["appendonlydir"])
    incr = next((tmp_path / "files" / "appendonlydir").glob("*.incr.aof"))
    incr.write_bytes(incr.read_bytes()[:-7])
    server.replace_data(tmp_path / "files")

    code, output = run_in_volume(redis_image, volume, ["redis-check-aof", manifest])
    assert code != 0
    assert "not valid" in output or "truncated" in output.lower()


def test_remove_volume_refuses_while_a_container_uses_it(docker_scope: DockerScope, redis_image: str) -> None:
    server = spawn_redis_container(image=redis_image, network="host")
    server.stop()
    with pytest.raises(VolumeInUse, match=server.container_name):
        remove_volume(server.volume or "")
    assert volume_exists(docker_scope.client, server.volume or "")

    lonely = create_volume(docker_scope.client, "bdr-test-lonely-" + docker_scope.label)
    assert remove_volume(lonely) == []
    assert not volume_exists(docker_scope.client, lonely)
