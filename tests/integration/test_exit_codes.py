"""Every exit code of the README's table, triggered the way an operator meets it, and the table itself checked.

Each case runs the real ``bdr`` command line (a subprocess) against real services: redis-server processes on
127.0.0.1, a repository on disk, failpoints (``BDR_FAILPOINTS``) for the restore that fails, the rollback that
fails and the restore that is killed. The test fails if the README lists a code nothing here triggers, or if a
case exits with a code the README does not list.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from bdr.errors import BdrError
from bdr.repository import Repository
from bdr.runtime.process import RedisProcess, spawn_redis
from bdr.util.host import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
TRIGGERED: dict[int, str] = {}


def bdr(config: Path, *args: str, failpoints: str | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    extra = {"BDR_FAILPOINTS": failpoints} if failpoints else {}
    return subprocess.run([sys.executable, "-m", "bdr.cli.main", "--config", str(config), *args], capture_output=True,
                          text=True, timeout=300, check=False, stdin=subprocess.DEVNULL,
                          env={**os.environ, **extra, **(env or {})})


def expect(code: int, result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == code, f"expected exit {code}, got {result.returncode}: {result.stderr}"
    last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    if code:
        assert message in last, last
        assert "Traceback" not in result.stderr
    TRIGGERED[code] = last


def policy(tmp_path: Path, server: RedisProcess | None = None, **extra: Any) -> Path:
    data: dict[str, Any] = {"repository": str(tmp_path / "repo"), **extra}
    if server is not None:
        i = server.instance
        data["redis"] = {"production": {"url": i.url, "data_dir": i.data_dir, "start_args": list(i.start_args),
                                        "password_env": None}}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def readme_codes() -> set[int]:
    text = README.read_text()
    section = text[text.index("## Exit codes"):]
    section = section[:section.index("\n## ", 5)]
    return {int(m) for m in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)}


def test_codes_without_a_live_service(tmp_path: Path) -> None:
    config = policy(tmp_path)
    expect(0, bdr(config, "list"), "")
    expect(1, bdr(config, "status"), "no good backup in any repository")
    expect(2, bdr(config, "backup", "nosuch"), "'nosuch' is not one of 'redis', 'qdrant', 'config', ")
    bad = policy(tmp_path / "bad", max_backup_age={"redis": "soon"})
    expect(3, bdr(bad, "status"), "max_backup_age.redis: not a duration: 'soon'")
    expect(4, bdr(config, "verify", "redis-20990101T000000Z-abcdef"), "not found")
    expect(8, bdr(config, "key", "id", "--key-file", str(tmp_path / "no.key")), "does not exist")
    (tmp_path / "a-file").write_text("")
    expect(9, bdr(config, "backup", "redis", "--destination", str(tmp_path / "a-file" / "repo")),
           "Not a directory")
    closed = policy(tmp_path / "s3", remote={"endpoint_url": f"http://127.0.0.1:{free_port()}", "max_attempts": 1,
                                            "region": "us-east-1"})
    fake_aws = {"AWS_ACCESS_KEY_ID": "AKIABDRTESTKEY000000", "AWS_SECRET_ACCESS_KEY": "x",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    expect(7, bdr(closed, "list", "--remote", "s3://bucket/bdr", env=fake_aws), "127.0.0.1")

    repo = Repository.open(tmp_path / "repo")
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        with repo.lock("backup redis"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        expect(5, bdr(config, "prune"), f"is locked by pid {os.getpid()}")
    finally:
        release.set()
        holder.join()


def test_integrity_and_service_codes(redis_rdb: RedisProcess, tmp_path: Path) -> None:
    redis_rdb.client().set("user:1", "alice")
    config = policy(tmp_path, redis_rdb)
    made = json.loads(bdr(config, "--json", "backup", "redis").stdout)["id"]
    rdb = tmp_path / "repo" / "redis" / made / "dump.rdb"
    data = bytearray(rdb.read_bytes())
    data[len(data) // 2] ^= 0xFF
    rdb.write_bytes(bytes(data))
    expect(6, bdr(config, "show", made), f"checksum mismatch in dump.rdb of backup {made}")
    good = json.loads(bdr(config, "--json", "backup", "redis").stdout)["id"]
    redis_rdb.stop()
    host, port = redis_rdb.address()
    expect(7, bdr(config, "diff", good, "live"), f"cannot reach Redis at {host}:{port}: connection refused")


def test_restore_codes(redis_rdb: RedisProcess, tmp_path: Path) -> None:
    client = redis_rdb.client()
    client.set("user:1", "alice")
    config = policy(tmp_path, redis_rdb)
    assert bdr(config, "backup", "redis").returncode == 0
    client.set("user:2", "bob")
    expect(10, bdr(config, "restore", "redis", "latest", "--yes", failpoints="restore.verify:error"),
           "failed at step 'verify'")
    assert client.get("user:2") == b"bob"  # rolled back
    killed = bdr(config, "restore", "redis", "latest", "--yes", failpoints="restore.replace:kill")
    assert killed.returncode == -signal.SIGKILL
    expect(13, bdr(config, "status", "redis"), "was interrupted at step 'replace'")
    expect(13, bdr(config, "backup", "redis"), "run `bdr restore redis --resume --target production`")
    assert bdr(config, "restore", "redis", "--abort", "--force").returncode == 0


def test_rollback_failed_and_repair_impossible(tmp_path: Path) -> None:
    server = spawn_redis(tmp_path / "redis" / "data", name="production")
    try:
        server.client().set("user:1", "alice")
        config = policy(tmp_path, server)
        assert bdr(config, "backup", "redis").returncode == 0
        expect(12, bdr(config, "restore", "redis", "latest", "--yes",
                       failpoints="restore.verify:error,restore.rollback:error"), "and so did the rollback")
    finally:
        server.stop()
    broken = spawn_redis(tmp_path / "broken" / "data", name="production")
    try:
        broken.client().set("k", "v")
        broken.client().save()
        broken.stop()
        rdb = broken.data_path() / "dump.rdb"
        data = bytearray(rdb.read_bytes())
        data[len(data) // 2] ^= 0xFF
        rdb.write_bytes(bytes(data))
        config = policy(tmp_path / "repair", broken)
        expect(11, bdr(config, "repair", "redis", "--yes"), "cannot be repaired")
    finally:
        broken.stop()


def test_the_readme_table_is_exactly_the_codes_bdr_exits_with() -> None:
    if len(TRIGGERED) < 14:
        pytest.skip("run with the other tests of this module (they trigger the codes)")
    assert set(TRIGGERED) == readme_codes() == set(range(14))
    declared = {cls.exit_code for cls in _subclasses(BdrError)}
    assert declared <= readme_codes(), declared - readme_codes()


def _subclasses(cls: type) -> list[type]:
    out = [cls]
    for sub in cls.__subclasses__():
        out += _subclasses(sub)
    return out
