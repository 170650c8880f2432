"""Configuration and secrets: back up, restore, and never let a secret out in plaintext."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from bdr import api
from bdr.config import Config, EncryptionSettings, FilesSource
from bdr.crypto import generate_key_file
from bdr.errors import MissingKey, UnsafeArchive, WrongKey

SECRET = "OPENAI_API_KEY=sk-live-0123456789abcdef"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    root = tmp_path / "agentic-backend"
    (root / "monitoring" / "rules").mkdir(parents=True)
    (root / "docker-compose.yml").write_text("services:\n  redis:\n    image: redis:7-alpine\n")
    (root / "docker-compose.prod.yml").write_text("services: {}\n")
    (root / "redis.conf").write_text("appendonly yes\nappendfsync everysec\n")
    (root / "nginx.conf").write_text("events {}\n")
    (root / "monitoring" / "prometheus.yml").write_text("scrape_configs: []\n")
    (root / "monitoring" / "rules" / "backup.yml").write_text("groups: []\n")
    (root / "deploy.sh").write_text("#!/bin/sh\n")
    (root / "deploy.sh").chmod(0o750)
    (root / ".env").write_text(SECRET + "\nREDIS_PASSWORD=hunter2\n")
    (root / ".env").chmod(0o600)
    return root


def make_config(tmp_path: Path, root: Path, key: Path | None = None) -> Config:
    if key is None:
        key = tmp_path / "backup.key"
        if not key.exists():
            generate_key_file(key)
    return dataclasses.replace(
        Config(), repository=str(tmp_path / "repo"),
        files=FilesSource(root=str(root), paths=("docker-compose*.yml", "nginx.conf", "redis.conf", "monitoring/",
                                                 "deploy.sh")),
        encryption=EncryptionSettings(key_file=str(key), key_env=None, passphrase_env=None),
    )


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mode & 0o777)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_round_trip_keeps_content_and_modes_and_secrets_stay_encrypted(tmp_path: Path, config_dir: Path) -> None:
    config = make_config(tmp_path, config_dir)
    before = tree(config_dir)
    outcome = api.backup(config, "config")

    stored = b"".join(p.read_bytes() for p in (tmp_path / "repo").rglob("*") if p.is_file())
    assert b"sk-live" not in stored and b"hunter2" not in stored  # no plaintext secret anywhere, manifest included
    env = next(f for f in outcome.manifest.files if f.path == ".env")
    assert env.secret and env.sha256 == ""
    assert outcome.manifest.key_id and not outcome.manifest.encrypted  # only the secrets object is

    for path in config_dir.rglob("*"):
        if path.is_file():
            path.unlink()
    result = api.restore(config, "config", "latest")
    assert result.ok and result.counts["new"] == len(before)
    assert tree(config_dir) == before
    assert (config_dir / ".env").stat().st_mode & 0o777 == 0o600


def test_dry_run_shows_what_would_change_and_changes_nothing(tmp_path: Path, config_dir: Path) -> None:
    config = make_config(tmp_path, config_dir)
    api.backup(config, "config")
    (config_dir / "redis.conf").write_text("appendonly no\n")
    (config_dir / ".env").write_text("OPENAI_API_KEY=rotated\n")
    (config_dir / "nginx.conf").unlink()
    (config_dir / "local-only.txt").write_text("not in any backup\n")
    before = tree(config_dir)

    result = api.restore(config, "config", "latest", dry_run=True)

    assert tree(config_dir) == before
    assert result.counts == {"new": 1, "changed": 2, "unchanged": 5, "left_alone": 0}
    changes = {c["path"]: c for c in result.facts["changes"]}
    assert changes["redis.conf"] == {"path": "redis.conf", "status": "changed", "secret": False,
                                     "lines_added": 2, "lines_removed": 1}
    assert changes[".env"] == {"path": ".env", "status": "changed", "secret": True}  # no diff of secrets
    assert "rotated" not in str(result.to_dict())
    assert changes["nginx.conf"]["status"] == "new"

    real = api.restore(config, "config", "latest")
    assert real.safety_id is not None and (config_dir / "local-only.txt").exists()
    assert (config_dir / "redis.conf").read_text() == "appendonly yes\nappendfsync everysec\n"


def test_a_path_outside_the_root_is_refused(tmp_path: Path, config_dir: Path) -> None:
    config = make_config(tmp_path, config_dir)
    api.backup(config, "config")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (config_dir / "monitoring" / "rules" / "backup.yml").unlink()
    (config_dir / "monitoring" / "rules").rmdir()
    (config_dir / "monitoring" / "rules").symlink_to(outside)
    with pytest.raises(UnsafeArchive, match="outside"):
        api.restore(config, "config", "latest")
    assert not any(outside.iterdir())


def test_secrets_need_a_key_and_the_right_one(tmp_path: Path, config_dir: Path) -> None:
    no_key = dataclasses.replace(make_config(tmp_path, config_dir),
                                 encryption=EncryptionSettings(key_file=None, key_env=None, passphrase_env=None))
    with pytest.raises(MissingKey, match=r"secrets need a key.*never stores secrets in plaintext"):
        api.backup(no_key, "config")
    config = make_config(tmp_path, config_dir)
    api.backup(config, "config")
    other = tmp_path / "other.key"
    generate_key_file(other)
    (config_dir / ".env").write_text("changed\n")
    with pytest.raises(WrongKey):
        api.restore(make_config(tmp_path, config_dir, key=other), "config", "latest")
    assert (config_dir / ".env").read_text() == "changed\n"  # nothing written


def test_restores_the_old_runbooks_openssl_env_file(tmp_path: Path, config_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp_path, config_dir)
    encrypted = tmp_path / "env_encrypted_20250124.enc"
    subprocess.run(["openssl", "enc", "-aes-256-cbc", "-salt", "-in", str(config_dir / ".env"), "-out",
                    str(encrypted), "-pass", "env:OLD"], env={**os.environ, "OLD": "old-pass"}, check=True)
    original = (config_dir / ".env").read_bytes()
    (config_dir / ".env").unlink()
    monkeypatch.setenv("BDR_PASSPHRASE", "old-pass")
    config = dataclasses.replace(config, encryption=dataclasses.replace(config.encryption,
                                                                        passphrase_env="BDR_PASSPHRASE"))
    result = api.restore(config, "config", str(encrypted))
    assert result.ok
    assert (config_dir / ".env").read_bytes() == original
    assert (config_dir / ".env").stat().st_mode & 0o777 == 0o600
