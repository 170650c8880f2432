"""The same runbook for every engine: Qdrant, configuration and selective Redis restores killed and
recovered, and the same exit codes (10 rolled back, 12 rollback failed) with the failed step named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bdr.crypto import generate_key_file
from tests.faults.harness import KILLED, bdr, work_dirs, write_config
from tests.operators import Operators
from tests.qdrant_data import dump_embedded, embedded_config, load_every_kind, open_embedded


def qdrant_setup(tmp_path: Path) -> tuple[Path, Any]:
    config = embedded_config(tmp_path)
    client = open_embedded(config)
    load_every_kind(client, docs=40)
    client.close()
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump({
        "repository": str(tmp_path / "repo"),
        "qdrant": {"production": {"path": str(tmp_path / "qdrant")}},
        "redis": {"production": {"url": "redis://127.0.0.1:1/0", "password_env": None}},
    }))
    made = bdr(path, "backup", "qdrant")
    assert made.code == 0, made.output
    return path, config


def test_a_qdrant_restore_whose_rollback_fails_exits_12_and_abort_finishes_it(tmp_path: Path) -> None:
    path, config = qdrant_setup(tmp_path)
    client = open_embedded(config)
    client.delete_collection("docs")
    client.close()
    before = dump_embedded(config)

    failed = bdr(path, "restore", "qdrant", "latest", "--yes",
                 failpoints="restore.verify:error,restore.rollback:error")
    assert failed.code == 12, failed.output
    (line,) = failed.error_lines
    assert "failed at step 'verify'" in line and "so did the rollback" in line and "--abort" in line
    status = bdr(path, "status", "qdrant")
    assert status.code == 13 and "rollback failed" in status.stdout, status.output

    aborted = bdr(path, "restore", "qdrant", "--abort")
    assert aborted.code == 0, aborted.output
    assert dump_embedded(config) == before  # the collections from before the restore, as they were


def test_a_qdrant_restore_that_fails_verification_rolls_back_with_exit_10(tmp_path: Path) -> None:
    path, config = qdrant_setup(tmp_path)
    before = dump_embedded(config)
    failed = bdr(path, "restore", "qdrant", "latest", "--yes", failpoints="restore.verify:error")
    assert failed.code == 10, failed.output
    assert "failed at step 'verify'" in failed.error_lines[0] and "rolled back" in failed.error_lines[0]
    assert dump_embedded(config) == before


@pytest.mark.parametrize("recovery", ["resume", "abort"])
def test_a_qdrant_restore_killed_mid_replace(tmp_path: Path, recovery: str) -> None:
    path, config = qdrant_setup(tmp_path)
    backed_up = dump_embedded(config)
    client = open_embedded(config)
    client.delete_collection("docs")
    client.close()
    before = dump_embedded(config)
    killed = bdr(path, "restore", "qdrant", "latest", "--yes", failpoints="restore.replace.after:kill")
    assert killed.code == KILLED, killed.output
    assert bdr(path, "backup", "qdrant").code == 13
    recovered = bdr(path, "restore", "qdrant", f"--{recovery}")
    assert recovered.code == 0, recovered.output
    assert dump_embedded(config) == (backed_up if recovery == "resume" else before)


def config_setup(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "backend"
    root.mkdir()
    (root / "redis.conf").write_text("appendonly yes\n")
    (root / "nginx.conf").write_text("events {}\n")
    (root / ".env").write_text("OPENAI_API_KEY=sk-not-a-real-key\n")
    (root / ".env").chmod(0o600)
    key = tmp_path / "backup.key"
    generate_key_file(key)
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump({
        "repository": str(tmp_path / "repo"),
        "files": {"root": str(root), "paths": ["redis.conf", "nginx.conf"]},
        "encryption": {"key_file": str(key), "key_env": None, "passphrase_env": None},
        "redis": {"production": {"url": "redis://127.0.0.1:1/0", "password_env": None}},
    }))
    made = bdr(path, "backup", "config")
    assert made.code == 0, made.output
    return path, root


@pytest.mark.parametrize("recovery", ["resume", "abort"])
def test_a_config_restore_killed_mid_replace(tmp_path: Path, recovery: str) -> None:
    path, root = config_setup(tmp_path)
    (root / "redis.conf").write_text("appendonly no\n")
    (root / ".env").write_text("OPENAI_API_KEY=rotated\n")
    killed = bdr(path, "restore", "config", "latest", "--yes", failpoints="restore.verify:kill")
    assert killed.code == KILLED, killed.output
    refused = bdr(path, "restore", "config", "latest", "--yes")
    assert refused.code == 13 and "was interrupted at step 'verify'" in refused.error_lines[0]
    recovered = bdr(path, "restore", "config", f"--{recovery}")
    assert recovered.code == 0, recovered.output
    if recovery == "resume":
        assert (root / "redis.conf").read_text() == "appendonly yes\n"
        assert (root / ".env").read_text() == "OPENAI_API_KEY=sk-not-a-real-key\n"
    else:
        assert (root / "redis.conf").read_text() == "appendonly no\n"
        assert (root / ".env").read_text() == "OPENAI_API_KEY=rotated\n"
    assert (root / ".env").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("recovery", ["resume", "abort"])
def test_a_selective_redis_restore_killed_mid_copy(operators: Operators, tmp_path: Path, recovery: str) -> None:
    op = operators.start("shell")
    config = write_config(tmp_path / "bdr.yaml", op)
    backed_up = op.fill(400)
    assert bdr(config, "backup", "redis").code == 0
    client = op.client()
    client.delete(*backed_up)
    client.set("other", "kept")
    killed = bdr(config, "restore", "redis", "latest", "--keys", "user:*", "--yes",
                 failpoints="restore.verify:kill")
    assert killed.code == KILLED, killed.output
    assert bdr(config, "backup", "redis").code == 13
    recovered = bdr(config, "restore", "redis", f"--{recovery}")
    assert recovered.code == 0, recovered.output
    assert client.get("other") == b"kept"
    # the copy ran before the kill: its keys are there either way (a rollback never deletes keys that were
    # missing before: the application may have written them since)
    assert all(client.get(k) == v for k, v in backed_up.items())
    assert work_dirs(op.data_dir) == []
