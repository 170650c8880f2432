"""The drill stack's helpers that need no service: emptying a data directory the way a lost volume is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drills.stack import service_name, wipe


def test_wipe_empties_the_directory_but_keeps_it_with_its_owner_and_mode(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "appendonlydir").mkdir(parents=True)
    (data / "appendonlydir" / "appendonly.aof.1.base.rdb").write_bytes(b"REDIS0010")
    (data / "dump.rdb").write_bytes(b"REDIS0010")
    (data / "link").symlink_to(tmp_path)  # a link is removed, never followed
    data.chmod(0o750)
    if os.geteuid() == 0:
        os.chown(data, 999, 999)  # a volume's mountpoint belongs to the redis user of the container
    before = data.stat()

    wipe(data)

    assert list(data.iterdir()) == []
    after = data.stat()
    assert (after.st_ino, after.st_uid, after.st_gid, after.st_mode) == (
        before.st_ino, before.st_uid, before.st_gid, before.st_mode)
    assert tmp_path.is_dir()


def test_wipe_creates_a_missing_directory(tmp_path: Path) -> None:
    wipe(tmp_path / "gone")
    assert (tmp_path / "gone").is_dir()


@pytest.mark.parametrize(("name", "service"), [("production", "redis"), ("test", "redis-test")])
def test_service_names_follow_compose(name: str, service: str) -> None:
    assert service_name(name) == service
