"""A ``bdr copy`` killed mid-way (SIGKILL at the failpoint ``copy.object``) leaves an incomplete set the next run
sweeps; the copy then runs again to the end.

The copy is a real CLI subprocess, as cron or a systemd timer runs it; the failpoint kills
it after the 7th MiB of the RDB is written into the destination: off-site, the first part
of a multipart upload is on S3 (moto, on 127.0.0.1), locally a temporary file sits beside
the object. Either way there is a writing marker and no manifest: nothing is listed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bdr.repository import WRITING_MARKER
from bdr.repository.manifest import MANIFEST_NAME
from bdr.runtime.process import RedisProcess
from bdr.safety.failpoints import KNOWN
from tests.integration.test_copy import write_config
from tests.s3_fixtures import S3Bucket

pytestmark = pytest.mark.s3

BDR = [sys.executable, "-m", "bdr.cli.main"]
KILL = "copy.object:kill@7"


def bdr(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BDR, "--config", str(config), *args], capture_output=True, text=True, timeout=300,
                          check=False, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def big_backup(server: RedisProcess, config: Path) -> str:
    """A local set whose dump.rdb is ~12 MiB of incompressible values (more than two 5 MiB parts)."""
    client = server.client()
    for n in range(12):
        client.set(f"blob:{n}", os.urandom(1 << 20))
    return str(ok(bdr(config, "backup", "redis", "--json"))["id"])


def test_the_failpoint_exists() -> None:
    assert KILL.split(":")[0] in KNOWN


def test_a_copy_killed_mid_upload_is_swept_by_the_next_run_which_copies_it(
        redis_rdb: RedisProcess, s3_bucket: S3Bucket, tmp_path: Path) -> None:
    config = write_config(tmp_path, redis_rdb, s3_bucket)
    set_id = big_backup(redis_rdb, config)
    remote = s3_bucket.url("prod")

    killed = bdr(config, "copy", set_id, "--remote", env={"BDR_FAILPOINTS": KILL})

    assert killed.returncode == -9, killed.stderr
    prefix = f"prod/redis/{set_id}/"
    assert s3_bucket.keys(prefix) == [prefix + WRITING_MARKER]  # the marker, no object, no manifest
    assert s3_bucket.pending_uploads() == [prefix + "dump.rdb"]  # its first part is up
    assert ok(bdr(config, "list", "--remote", remote, "--json")) == []

    again = ok(bdr(config, "copy", set_id, "--remote", "--json"))  # takes the lock: sweeps first

    assert again["copied"] == [set_id] and again["sets"][0]["mode"] == "re-encrypted"
    assert s3_bucket.pending_uploads() == []
    assert s3_bucket.keys(prefix) == sorted(prefix + name for name in ("copy.json", "dump.rdb", MANIFEST_NAME))
    assert [s["id"] for s in ok(bdr(config, "list", "--remote", remote, "--json"))] == [set_id]
    verified = bdr(config, "verify", set_id, "--remote", remote)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_copy_to_another_disk_killed_mid_object_is_swept_too(redis_rdb: RedisProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path, redis_rdb, None, key=False)
    set_id = big_backup(redis_rdb, config)
    disk2 = tmp_path / "disk2"

    killed = bdr(config, "copy", "latest", "-s", "redis", "--to", str(disk2), env={"BDR_FAILPOINTS": KILL})

    assert killed.returncode == -9, killed.stderr
    left = sorted(p.name for p in (disk2 / "redis" / set_id).iterdir())
    assert WRITING_MARKER in left and MANIFEST_NAME not in left and "dump.rdb" not in left
    assert any(name != WRITING_MARKER for name in left)  # the half-written temporary file
    assert ok(bdr(config, "list", "--destination", str(disk2), "--json")) == []

    again = ok(bdr(config, "copy", "latest", "-s", "redis", "--to", str(disk2), "--json"))

    assert again["copied"] == [set_id] and again["sets"][0]["mode"] == "as is"
    assert sorted(p.name for p in (disk2 / "redis" / set_id).iterdir()) == ["copy.json", "dump.rdb", MANIFEST_NAME]
    assert (disk2 / "redis" / set_id / "dump.rdb").read_bytes() == \
        (tmp_path / "local" / "redis" / set_id / "dump.rdb").read_bytes()
