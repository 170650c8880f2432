"""Check before touching: a set whose manifest or stored objects do not match is refused before anything live.

Real redis-server processes and the ``bdr`` command as an operator runs it (a subprocess:
its exit code, its stderr with the restore's steps). "Nothing live touched" is checked on
the server itself: the same data, the same process (``run_id``: it was never stopped), and
no safety backup taken. The repository-level checks (streamed object hashes, the manifest
MAC) also run against an S3 bucket.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bdr.crypto import Cipher
from bdr.errors import ChecksumMismatch, DamagedBackup
from bdr.repository import Repository, extract_set
from bdr.repository.archive import ArchiveMember
from bdr.repository.manifest import MANIFEST_NAME, digest_of
from bdr.runtime.process import RedisProcess
from tests.backup_sets import edit_manifest_by_hand, rewrite_manifest
from tests.s3_fixtures import S3Bucket

DIGEST_MISMATCH = "manifest digest mismatch: edited or corrupt"


def bdr(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bdr.cli.main", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL,
                          env={**os.environ, "COLUMNS": "250"})


def write_config(tmp_path: Path, server: RedisProcess, **extra: Any) -> Path:
    instance = server.instance
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump({
        "repository": str(tmp_path / "repo"),
        "redis": {"production": {"url": instance.url, "data_dir": instance.data_dir,
                                 "start_args": list(instance.start_args), "password_env": None}},
        **extra,
    }))
    return path


def backup(config: Path, *args: str) -> str:
    made = bdr(config, "backup", "redis", "--json", *args)
    assert made.returncode == 0, made.stderr
    return str(json.loads(made.stdout)["id"])


def server_identity(server: RedisProcess) -> tuple[str, int]:
    info = server.client().info("server")
    return str(info["run_id"]), int(info["process_id"])


def assert_refused_before_anything_live(result: subprocess.CompletedProcess[str], server: RedisProcess,
                                        before: tuple[str, int], repo: Repository, sets: int) -> None:
    """Exit 6 (integrity), the live data and process as they were, no safety backup, no stop."""
    assert result.returncode == 6, result.stdout + result.stderr
    assert server.client().get("state") == b"live"
    assert server_identity(server) == before  # the same process: never stopped
    assert len(repo.sets()) == sets  # no safety backup was taken
    for step in ("safety backup", "stop", "replace", "start"):
        assert f" {step} " not in result.stderr, result.stderr


# --- bdr verify ----------------------------------------------------------------------------------------


def test_edited_key_counts_fail_verify_on_the_manifest_digest(redis_rdb: RedisProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path, redis_rdb)
    redis_rdb.client().set("state", "backed-up")
    set_id = backup(config)
    good = bdr(config, "verify", set_id)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "✔ manifest digest: sha256:" in good.stdout

    repo = Repository.open(tmp_path / "repo")
    edit_manifest_by_hand(repo, "redis", set_id, lambda d: d["facts"].update(keyspace={"0": {"keys": 999,
                                                                                           "expires": 0}}))
    edited = bdr(config, "verify", set_id)
    assert edited.returncode == 1
    assert f"✘ manifest digest: {DIGEST_MISMATCH}" in edited.stdout
    assert f"{set_id} FAILED" in edited.stdout
    listed = json.loads(bdr(config, "list", "--json").stdout)
    assert listed[0]["id"] == set_id and listed[0]["damaged"] == DIGEST_MISMATCH


# --- bdr restore ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "compressed"])
def test_an_edited_object_checksum_stops_the_restore_before_the_live_redis(
        redis_rdb: RedisProcess, tmp_path: Path, compress: bool) -> None:
    """The manifest says the stored object has another sha256 (re-sealed, so its own digest matches)."""
    config = write_config(tmp_path, redis_rdb)
    client = redis_rdb.client()
    client.set("state", "backed-up")
    set_id = backup(config, *(["--compress"] if compress else []))
    repo = Repository.open(tmp_path / "repo")
    rewrite_manifest(repo, "redis", set_id, lambda d: d["objects"][0].update(sha256="0" * 64))
    client.set("state", "live")
    before = server_identity(redis_rdb)

    refused = bdr(config, "restore", "redis", set_id, "--yes")

    assert_refused_before_anything_live(refused, redis_rdb, before, repo, 1)
    stored = "data.tar.zst" if compress else "dump.rdb"
    assert f"checksum mismatch in {stored} of backup {set_id}: expected sha256 0000000000000000" in refused.stderr
    assert "✘ fetch" in refused.stderr


def test_an_edited_manifest_stops_the_restore_before_the_live_redis(redis_rdb: RedisProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path, redis_rdb)
    client = redis_rdb.client()
    client.set("state", "backed-up")
    set_id = backup(config)
    repo = Repository.open(tmp_path / "repo")
    edit_manifest_by_hand(repo, "redis", set_id, lambda d: d["objects"][0].update(sha256="0" * 64))
    client.set("state", "live")
    before = server_identity(redis_rdb)

    refused = bdr(config, "restore", "redis", set_id, "--yes")

    assert_refused_before_anything_live(refused, redis_rdb, before, repo, 0)
    assert f"backup {set_id} is damaged ({DIGEST_MISMATCH}); bdr will not use it: run `bdr verify {set_id}`" \
        in refused.stderr


def test_an_encrypted_set_edited_with_a_recomputed_digest_is_refused_by_its_mac(
        redis_rdb: RedisProcess, tmp_path: Path) -> None:
    key = tmp_path / "backup.key"
    config = write_config(tmp_path, redis_rdb, encryption={"key_file": str(key)})
    assert bdr(config, "key", "generate", str(key)).returncode == 0
    client = redis_rdb.client()
    client.set("state", "backed-up")
    set_id = backup(config, "--encrypt")
    repo = Repository.open(tmp_path / "repo")

    def forge(data: dict[str, Any]) -> None:  # what someone without the key can do: edit, recompute the digest
        data["facts"]["keyspace"] = {"0": {"keys": 999, "expires": 0}}
        data["digest"] = digest_of(data)

    edit_manifest_by_hand(repo, "redis", set_id, forge)
    assert [s.id for s in repo.sets()] == [set_id]  # without the key the forgery cannot be told
    client.set("state", "live")
    before = server_identity(redis_rdb)

    refused = bdr(config, "restore", "redis", set_id, "--yes")

    assert_refused_before_anything_live(refused, redis_rdb, before, repo, 1)
    assert "manifest MAC mismatch: edited after bdr wrote it" in refused.stderr
    verified = bdr(config, "verify", set_id)
    assert verified.returncode == 1 and "✘ manifest MAC: manifest MAC mismatch" in verified.stdout


def test_restore_latest_skips_a_truncated_newest_set_and_says_so(redis_rdb: RedisProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path, redis_rdb)
    client = redis_rdb.client()
    client.set("state", "older")
    older = backup(config)
    client.set("state", "newer")
    newest = backup(config)
    manifest = tmp_path / "repo" / "redis" / newest / MANIFEST_NAME
    manifest.write_bytes(manifest.read_bytes()[:200])
    client.set("state", "live")

    restored = bdr(config, "restore", "redis", "latest", "--yes")

    assert restored.returncode == 0, restored.stderr
    assert f"skipped {newest} (damaged: unreadable manifest (truncated or not JSON)" in restored.stderr
    assert client.get("state") == b"older"
    assert older in restored.stdout + restored.stderr


def test_the_next_backup_leaves_a_set_whose_manifest_was_deleted_by_hand(redis_rdb: RedisProcess,
                                                                          tmp_path: Path) -> None:
    config = write_config(tmp_path, redis_rdb)
    redis_rdb.client().set("state", "backed-up")
    by_hand = backup(config)
    set_dir = tmp_path / "repo" / "redis" / by_hand
    (set_dir / MANIFEST_NAME).unlink()

    newer = backup(config)

    assert (set_dir / "dump.rdb").is_file()
    rows = {r["id"]: r for r in json.loads(bdr(config, "list", "--json").stdout)}
    assert rows[newer]["damaged"] is None
    assert rows[by_hand]["damaged"] == (f"no manifest: not left by a crashed bdr run; bdr leaves it alone; delete "
                                        f"{set_dir} yourself if it is not needed")
    shown = bdr(config, "list")
    assert "DAMAGED" in next(line for line in shown.stdout.splitlines() if by_hand in line)
    refused = bdr(config, "restore", "redis", by_hand, "--yes")
    assert refused.returncode == 6 and "no manifest: not left by a crashed bdr run" in refused.stderr


# --- the repository's checked reading, on disk and on S3 ------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Repository]:
    if request.param == "local":
        yield Repository.open(tmp_path / "repo")
        return
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    yield Repository.open(bucket.url(), settings=bucket.settings())


def write_set(repo: Repository, tmp_path: Path, cipher: Cipher | None = None) -> str:
    """A set with a plain file, an archive and a side object."""
    (tmp_path / "src").mkdir(exist_ok=True)
    dump = tmp_path / "src" / "dump.rdb"
    dump.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    conf = tmp_path / "src" / "redis.conf"
    conf.write_text("appendonly yes\n")
    with repo.lock("backup"), repo.new_set("redis", "production", "rdb", cipher=cipher) as writer:
        writer.add_file(dump, "dump.rdb")
        writer.add_archive([ArchiveMember(conf, "conf/redis.conf")], compress=True, name="conf.tar.zst")
        writer.add_bytes("facts.json", b'{"keys": 3}')
        writer.commit()
    return writer.id


@pytest.mark.parametrize("name", ["dump.rdb", "conf.tar.zst", "facts.json"])
def test_every_stored_object_is_checked_as_it_streams(repo: Repository, tmp_path: Path, name: str) -> None:
    set_id = write_set(repo, tmp_path)
    extract_set(repo, repo.get(set_id), tmp_path / "good")
    rewrite_manifest(repo, "redis", set_id,
                     lambda d: next(o for o in d["objects"] if o["name"] == name).update(sha256="0" * 64))
    with pytest.raises(ChecksumMismatch, match=f"checksum mismatch in {name} of backup {set_id}"):
        extract_set(repo, repo.get(set_id), tmp_path / "out")


def test_open_object_checks_at_the_end_and_on_a_clean_exit(repo: Repository, tmp_path: Path) -> None:
    set_id = write_set(repo, tmp_path)
    rewrite_manifest(repo, "redis", set_id,
                     lambda d: next(o for o in d["objects"] if o["name"] == "dump.rdb").update(sha256="0" * 64))
    backup = repo.get(set_id)
    with pytest.raises(ChecksumMismatch), repo.open_object(backup, "dump.rdb") as stream:
        while stream.read(1 << 20):
            pass
        raise AssertionError("the end of the object was reached without a check")
    with pytest.raises(ChecksumMismatch), repo.open_object(backup, "dump.rdb") as stream:
        stream.read(10)  # the caller stops early: leaving the block reads the rest and checks it
    with pytest.raises(KeyError), repo.open_object(backup, "dump.rdb") as stream:
        raise KeyError("the caller's own error is not hidden by the check")


def test_a_truncated_stored_object_is_a_checksum_mismatch(repo: Repository, tmp_path: Path) -> None:
    set_id = write_set(repo, tmp_path)
    key = f"redis/{set_id}/dump.rdb"
    repo.storage.put_bytes(key, repo.storage.read_bytes(key)[:1024 * 1024])
    with pytest.raises(ChecksumMismatch, match="truncated"):
        extract_set(repo, repo.get(set_id), tmp_path / "out")


def test_an_encrypted_set_checks_its_ciphertext_and_its_mac(repo: Repository, tmp_path: Path) -> None:
    key = Cipher.from_key(os.urandom(32), origin="test key")
    set_id = write_set(repo, tmp_path, cipher=key)
    backup = repo.get(set_id)
    assert backup.manifest.mac.startswith(f"hmac-sha256:{key.key_id}:")
    files = extract_set(repo, backup, tmp_path / "good", key)
    assert {f.path for f in files} == {"dump.rdb", "conf/redis.conf"}
    assert hashlib.sha256((tmp_path / "good" / "dump.rdb").read_bytes()).hexdigest() == \
        backup.manifest.files[0].sha256

    rewrite_manifest(repo, "redis", set_id, lambda d: d["objects"][0].update(sha256="0" * 64), key=key)
    with pytest.raises(ChecksumMismatch):  # the ciphertext authenticates, its recorded hash does not
        extract_set(repo, repo.get(set_id), tmp_path / "out", key)

    rewrite_manifest(repo, "redis", set_id, lambda d: d["facts"].update(edited=True))  # digest fine, no MAC
    with pytest.raises(DamagedBackup, match="manifest MAC missing from a set written with key"):
        repo.get(set_id)
    rewrite_manifest(repo, "redis", set_id, lambda d: d["facts"].update(edited=True), key=key)
    edit_manifest_by_hand(repo, "redis", set_id, lambda d: d.update(mac=key.digest(b"something else")))
    assert repo.damaged() == []  # the MAC is under the right key id: only the key can tell
    with_key = Repository(repo.storage, key)
    assert [d.reason for d in with_key.damaged()] == ["manifest MAC mismatch: edited after bdr wrote it (the key "
                                                      "proves it)"]
    with pytest.raises(DamagedBackup, match="manifest MAC mismatch"):
        extract_set(repo, repo.get(set_id), tmp_path / "forged", key)
