"""The bdr command line as an operator runs it: output, exit codes, one-line errors, no data lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bdr.engines.redis.info import digest
from bdr.runtime.process import RedisProcess
from tests.mounts import tmpfs
from tests.redis_data import load_every_type

BDR = [sys.executable, "-m", "bdr.cli.main"]


def bdr(*args: str, config: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [*BDR, *(["--config", str(config)] if config else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def write_config(tmp_path: Path, server: RedisProcess, repository: Path | None = None) -> Path:
    instance = server.instance
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump({
        "repository": str(repository or tmp_path / "repo"),
        "redis": {"production": {"url": instance.url, "data_dir": instance.data_dir,
                                 "start_args": list(instance.start_args), "password_env": None}},
    }))
    return path


def test_backup_list_verify_restore_round_trip(redis_aof: RedisProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path, redis_aof)
    client = redis_aof.client()
    load_every_type(client)
    expected = digest(client)

    backup = bdr("backup", "redis", "--compress", "--json", config=config)
    assert backup.returncode == 0, backup.stderr
    made = json.loads(backup.stdout)
    assert made["compressed"] is True and made["facts"]["digest"] == expected

    listed = json.loads(bdr("list", "--json", config=config).stdout)
    assert [s["id"] for s in listed] == [made["id"]]
    assert listed[0]["verified"] is False

    verified = bdr("verify", made["id"][:20], "--restore-test", config=config)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "is good" in verified.stdout
    assert json.loads(bdr("list", "--json", config=config).stdout)[0]["verified"] is True

    client.flushall()
    restored = bdr("restore", "redis", "latest", "--yes", config=config)
    assert restored.returncode == 0, restored.stderr
    for step in ("safety backup", "stop", "replace", "start", "verify"):
        assert step in restored.stderr
    assert "restored" in restored.stdout
    assert digest(client) == expected


def test_keep_prunes_older_sets(redis_rdb: RedisProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path, redis_rdb)
    redis_rdb.client().set("k", "v")
    ids = [json.loads(bdr("backup", "redis", "--keep", "2", "--json", config=config).stdout)["id"]
           for _ in range(3)]
    listed = [s["id"] for s in json.loads(bdr("list", "--json", config=config).stdout)]
    assert listed == [ids[2], ids[1]]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("restore", "redis", "redis-20990101T000000Z-abcdef", "--yes"), 4, "not found"),
        (("verify", "nope"), 4, "not found"),
        (("backup", "redis", "--redis-url", "redis://:hunter2@127.0.0.1:1/0"), 2, "do not put a password"),
        (("backup", "redis", "--keep", "0"), 2, "--keep"),
        (("backup", "mongo"), 2, "Invalid value"),
        (("restore", "redis", "latest", "--db", "3"), 2, "--db only applies with --keys"),
        (("restore", "qdrant", "latest", "--keys", "user:*"), 2,
         "bdr: error: bdr restore qdrant selects with --collection, --as, --filter, not --keys\n"),
        (("restore", "redis", "latest", "--as", "copy"), 2,
         "bdr: error: bdr restore redis selects with --keys, --db, --node, not --as\n"),
    ],
)
def test_bad_input_gets_one_line_and_an_exit_code(redis_rdb: RedisProcess, tmp_path: Path, args: tuple[str, ...],
                                                  code: int, message: str) -> None:
    result = bdr(*args, config=write_config(tmp_path, redis_rdb))
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_redis_down_is_a_clear_error(redis_rdb: RedisProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path, redis_rdb)
    redis_rdb.stop()
    result = bdr("backup", "redis", config=config)
    assert result.returncode == 7
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("bdr: error: cannot reach Redis at 127.0.0.1:")
    assert "connection refused; is it running?" in error
    assert "Traceback" not in result.stderr
    assert bdr("list", "--json", config=config).stdout.strip() == "[]"


def test_wrong_password_is_a_clear_error(tmp_path: Path) -> None:
    from bdr.runtime.process import spawn_redis

    server = spawn_redis(tmp_path / "auth" / "data", password="right-password")
    try:
        config = write_config(tmp_path, server)
        data = yaml.safe_load(config.read_text())
        data["redis"]["production"]["password_env"] = "BDR_TEST_REDIS_PASSWORD"
        config.write_text(yaml.safe_dump(data))
        result = bdr("backup", "redis", config=config, env={"BDR_TEST_REDIS_PASSWORD": "wrong"})
        assert result.returncode == 7
        assert "refused the credentials" in result.stderr
        assert "wrong" not in result.stderr and "right-password" not in result.stderr
        ok = bdr("backup", "redis", config=config, env={"BDR_TEST_REDIS_PASSWORD": "right-password"})
        assert ok.returncode == 0, ok.stderr
    finally:
        server.stop()


def test_disk_full_leaves_no_partial_set_and_live_data_untouched(redis_rdb: RedisProcess, tmp_path: Path) -> None:
    client = redis_rdb.client()
    client.set("big", os.urandom(3 * 1024 * 1024))  # the RDB will not fit into 1 MiB
    expected = digest(client)
    with tmpfs(tmp_path / "small-disk", size="1m") as small:
        config = write_config(tmp_path, redis_rdb, repository=small / "repo")
        result = bdr("backup", "redis", config=config)
        assert result.returncode == 9, result.stderr
        assert "no space left" in result.stderr and "Traceback" not in result.stderr
        assert not list((small / "repo" / "redis").iterdir())
    assert digest(client) == expected


def test_read_only_destination_is_a_clear_error(redis_rdb: RedisProcess, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", readonly=True) as readonly:
        config = write_config(tmp_path, redis_rdb, repository=readonly / "repo")
        result = bdr("backup", "redis", config=config)
        assert result.returncode == 9
        assert "cannot write to" in result.stderr and "Read-only file system" in result.stderr


def test_init_writes_an_example_that_the_other_commands_accept(tmp_path: Path) -> None:
    target = tmp_path / "bdr.yaml"
    assert bdr("init", str(target)).returncode == 0
    assert bdr("init", str(target)).returncode == 2  # no silent overwrite
    listed = bdr("list", config=target)
    assert listed.returncode == 0 and "no backup sets yet" in listed.stdout


def test_encrypted_backup_and_a_wrong_key(redis_rdb: RedisProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path, redis_rdb)
    key, other = tmp_path / "backup.key", tmp_path / "other.key"
    made = bdr("key", "generate", str(key))
    assert made.returncode == 0 and "key id" in made.stdout
    assert key.stat().st_mode & 0o777 == 0o600
    assert bdr("key", "generate", str(other)).returncode == 0
    client = redis_rdb.client()
    client.set("secret-session", "s3cr3t-token-value")

    backup = bdr("backup", "redis", "--encrypt", "--key-file", str(key), "--json", config=config)
    assert backup.returncode == 0, backup.stderr
    assert json.loads(backup.stdout)["encrypted"] is True
    stored = b"".join(p.read_bytes() for p in (tmp_path / "repo").rglob("*") if p.is_file())
    assert b"s3cr3t-token-value" not in stored

    client.set("secret-session", "live")
    wrong = bdr("restore", "redis", "latest", "--key-file", str(other), config=config)
    assert wrong.returncode == 8 and "wrong key" in wrong.stderr
    assert client.get("secret-session") == b"live"  # nothing was touched
    missing = bdr("verify", "latest", config=config)
    assert missing.returncode != 0 and "encrypted" in (missing.stdout + missing.stderr)
    right = bdr("restore", "redis", "latest", "--key-file", str(key), config=config)
    assert right.returncode == 0, right.stderr
    assert client.get("secret-session") == b"s3cr3t-token-value"
