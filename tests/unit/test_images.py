"""The offline Redis image's root file system, planned from the host's binaries (no Docker needed)."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from bdr.errors import ImageBuildFailed
from bdr.runtime.images import (
    REDIS_UID,
    EntryKind,
    host_redis_version,
    redis_rootfs,
    service_of_tags,
    shared_libraries,
    write_rootfs,
)

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


def test_plan_holds_the_binaries_their_libraries_and_a_redis_user() -> None:
    version = host_redis_version()
    plan = {entry.path: entry for entry in redis_rootfs(version)}

    for name in ("redis-server", "redis-cli", "redis-check-aof", "redis-check-rdb"):
        assert f"usr/local/bin/{name}" in plan
    server = plan["usr/local/bin/redis-server"]
    assert server.kind == EntryKind.FILE or plan[f"usr/local/bin/{server.target}"].kind == EntryKind.FILE
    for library in shared_libraries([Path(shutil.which("redis-server") or "")]):
        assert library.lstrip("/") in plan, library
    assert any(path.endswith("libc.so.6") for path in plan)
    assert plan["data"].kind == EntryKind.DIR and (plan["data"].uid, plan["data"].gid) == (REDIS_UID, REDIS_UID)
    passwd = (plan["etc/passwd"].content or b"").decode()
    assert f"redis:x:{REDIS_UID}:{REDIS_UID}:" in passwd
    for entry in plan.values():  # every parent directory is there, so tar extraction needs nothing implicit
        parent = entry.path.rsplit("/", 1)[0] if "/" in entry.path else None
        assert parent is None or plan[parent].kind == EntryKind.DIR


def test_identical_binaries_are_stored_once(tmp_path: Path) -> None:
    plan = redis_rootfs(host_redis_version())
    files = [e for e in plan if e.path.startswith("usr/local/bin/") and e.kind == EntryKind.FILE]
    links = [e for e in plan if e.path.startswith("usr/local/bin/") and e.kind == EntryKind.SYMLINK]
    sources = [e.source.resolve() for e in files if e.source]
    assert len(sources) == len(set(sources))
    assert all("/" not in link.target for link in links)  # relative links inside /usr/local/bin

    out = tmp_path / "rootfs.tar"
    count, size = write_rootfs(plan, out)
    with tarfile.open(out) as tar:
        members = tar.getmembers()
    assert count == len(members) == len(plan)
    assert size == sum(m.size for m in members if m.isfile())


def test_a_missing_library_stops_the_build(tmp_path: Path) -> None:
    fake = tmp_path / "needs-a-missing-lib"
    shutil.copy(shutil.which("redis-cli") or "", fake)
    data = fake.read_bytes().replace(b"libjemalloc.so.2", b"libnothere0.so.2")
    fake.write_bytes(data)
    fake.chmod(0o755)
    with pytest.raises(ImageBuildFailed, match=r"libnothere0\.so\.2, which is not installed"):
        shared_libraries([fake])


def test_tags_say_which_service_an_image_runs() -> None:
    assert service_of_tags(["redis:7-alpine"]) == "redis"
    assert service_of_tags(["bdr/redis:7.0.15"]) == "redis"
    assert service_of_tags(["qdrant/qdrant:v1.12.0"]) == "qdrant"
    assert service_of_tags(["nginx:latest"]) is None
