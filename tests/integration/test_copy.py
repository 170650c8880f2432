"""``bdr copy``: a set taken once, sent off-site (moto's S3) or to another disk, checked there, counted by 3-2-1.

A real redis-server is backed up into the local repository; the copy streams its objects
to the destination through the checked streams: a plain set is re-encrypted (and its
manifest sealed again), an encrypted one goes byte for byte without the key. The copy keeps
the set's id, so both repositories list it and ``bdr status --require-321`` passes only once
it is there. ``bdr backup --also-local`` / ``--also-remote`` take one snapshot into both.

Needs ``tests.s3_fixtures`` as a pytest plugin (top-level conftest).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from qdrant_client import QdrantClient, models

from bdr.cli.main import cli
from bdr.config import load_config
from bdr.crypto import generate_key_file
from bdr.repository import COPY_NAME, Repository
from bdr.repository.manifest import MANIFEST_NAME
from bdr.runtime.process import RedisProcess
from bdr.schedule.jobs import jobs_for
from tests.backup_sets import edit_manifest_by_hand
from tests.redis_data import load_every_type
from tests.s3_fixtures import S3Bucket

pytestmark = pytest.mark.s3


def write_config(tmp_path: Path, server: RedisProcess, bucket: S3Bucket | None, *, key: bool = True,
                 name: str = "bdr.yaml", **extra: Any) -> Path:
    """A bdr.yaml: the local repository, the redis-server, the bucket as remote, a key file (or none)."""
    instance = server.instance
    key_file = tmp_path / "backup.key"
    if key and not key_file.exists():
        generate_key_file(key_file)
    data: dict[str, Any] = {
        "repository": str(tmp_path / "local"),
        "redis": {"production": {"url": instance.url, "data_dir": instance.data_dir,
                                 "start_args": list(instance.start_args), "password_env": None}},
        "schedule": {"redis": "*/30 * * * *"},
        "encryption": {"key_file": str(key_file) if key else None, "key_env": "BDR_TEST_NO_KEY",
                       "passphrase_env": "BDR_TEST_NO_PASSPHRASE"},
        **extra,
    }
    if bucket is not None:
        data["remote"] = {"url": bucket.url("prod"), "endpoint_url": bucket.server.endpoint, "region": "us-east-1",
                          "part_size_mib": 5}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def bdr(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def ok(result: Result) -> Any:
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout) if result.stdout.lstrip().startswith(("{", "[")) else result.stdout


def error_line(result: Result) -> str:
    """The error: one line, ``bdr: error: ...`` (the step lines before it are progress)."""
    [line] = [line for line in result.stderr.splitlines() if line.startswith("bdr: error: ")]
    return line


def listed(config: Path, *where: str) -> list[str]:
    return [s["id"] for s in ok(bdr(config, "list", *where, "--json"))]


def remote_repo(config: Path) -> Repository:
    loaded = load_config(config)
    assert loaded.remote.url
    return Repository.open(loaded.remote.url, settings=loaded.remote)


def manifest_json(repo: Repository, set_id: str, source: str = "redis") -> dict[str, Any]:
    data: dict[str, Any] = json.loads(repo.storage.read_bytes(f"{source}/{set_id}/{MANIFEST_NAME}"))
    return data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- off-site: a plain set re-encrypted, an encrypted set as it is ------------------------------------


def test_a_plain_set_goes_off_site_re_encrypted_checked_listed_in_both_and_counted_by_3_2_1(
        redis_rdb: RedisProcess, s3_bucket: S3Bucket, tmp_path: Path) -> None:
    load_every_type(redis_rdb.client())
    config = write_config(tmp_path, redis_rdb, s3_bucket)
    taken = ok(bdr(config, "backup", "redis", "--json"))
    assert not taken["encrypted"]
    before = bdr(config, "status", "redis", "--require-321", "--json")
    assert before.exit_code == 1 and "3-2-1 rule broken" in before.stderr  # live + local: 2 copies, no off-site

    run = ok(bdr(config, "copy", "latest", "--source", "redis", "--remote", "--json"))

    [copied] = run["sets"]
    assert (copied["id"], copied["mode"], copied["written"], copied["encrypted"]) == (
        taken["id"], "re-encrypted", True, True)
    assert run["to"] == s3_bucket.url("prod") and run["copied"] == [taken["id"]]
    assert listed(config) == listed(config, "--remote", s3_bucket.url("prod")) == [taken["id"]]

    local = Repository.open(tmp_path / "local")
    mine, theirs = manifest_json(local, taken["id"]), manifest_json(remote_repo(config), taken["id"])
    assert theirs["files"] == mine["files"]  # the same data: same files, same sha256s
    assert (theirs["started_at"], theirs["finished_at"], theirs["facts"]) == (
        mine["started_at"], mine["finished_at"], mine["facts"])
    assert theirs["encrypted"] and theirs["key_id"] and theirs["mac"].startswith("hmac-sha256:")
    assert theirs["digest"] != mine["digest"]  # sealed again over the new objects[]
    [plain], [sealed] = mine["objects"], theirs["objects"]
    assert sealed["name"] == plain["name"] == "dump.rdb" and sealed["sha256"] != plain["sha256"]
    stored = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=f"prod/redis/{taken['id']}/dump.rdb")["Body"]
    body = stored.read()
    assert not body.startswith(b"REDIS") and body.startswith(b"BDRE")  # ciphertext off-site, never the RDB
    assert (len(body), sha256(body)) == (sealed["size"], sealed["sha256"])
    note = json.loads(s3_bucket.client.get_object(Bucket=s3_bucket.name,
                                                  Key=f"prod/redis/{taken['id']}/{COPY_NAME}")["Body"].read())
    assert note["mode"] == "re-encrypted" and note["copied_from"] == str((tmp_path / "local").resolve())

    verified = bdr(config, "verify", taken["id"], "--remote", s3_bucket.url("prod"))
    assert verified.exit_code == 0, verified.output  # decrypts, re-hashes, recomputes the content digest

    status = ok(bdr(config, "status", "redis", "--require-321", "--json"))
    [group] = status["sources"]
    assert group["rule_321"]["ok"] and (group["rule_321"]["copies"], group["rule_321"]["offsite"]) == (3, 1)
    assert sorted(group["newest"]["copies"]) == sorted([str((tmp_path / "local").resolve()), s3_bucket.url("prod")])

    keys_before = s3_bucket.keys("prod/redis/")
    again = bdr(config, "copy", taken["id"], "--remote")
    assert again.exit_code == 0, again.output
    assert "already in" in again.stdout and "nothing to copy" in again.stdout
    assert s3_bucket.keys("prod/redis/") == keys_before and s3_bucket.pending_uploads() == []


def test_an_encrypted_set_is_copied_as_it_is_without_the_key(redis_rdb: RedisProcess, s3_bucket: S3Bucket,
                                                             tmp_path: Path) -> None:
    redis_rdb.client().mset({f"user:{n}": "x" * 100 for n in range(500)})
    config = write_config(tmp_path, redis_rdb, s3_bucket)
    taken = ok(bdr(config, "backup", "redis", "--encrypt", "--compress", "--json"))
    keyless = write_config(tmp_path, redis_rdb, s3_bucket, key=False, name="no-key.yaml")

    run = ok(bdr(keyless, "copy", taken["id"], "--remote", "--json"))

    assert [(s["id"], s["mode"]) for s in run["sets"]] == [(taken["id"], "as is")]
    local = Repository.open(tmp_path / "local")
    assert manifest_json(remote_repo(config), taken["id"]) == manifest_json(local, taken["id"])  # digest, MAC too
    for obj in manifest_json(local, taken["id"])["objects"]:
        there = s3_bucket.client.get_object(Bucket=s3_bucket.name,
                                            Key=f"prod/redis/{taken['id']}/{obj['name']}")["Body"].read()
        assert there == local.storage.read_bytes(f"redis/{taken['id']}/{obj['name']}")
    assert listed(keyless, "--remote", s3_bucket.url("prod")) == [taken["id"]]
    assert bdr(config, "verify", taken["id"], "--remote", s3_bucket.url("prod")).exit_code == 0  # with the key

    back = ok(bdr(keyless, "copy", taken["id"], "--from", s3_bucket.url("prod"), "--to", str(tmp_path / "disk2"),
                  "--json"))  # and back from off-site to another disk, as it is
    assert [(s["id"], s["mode"]) for s in back["sets"]] == [(taken["id"], "as is")]
    assert manifest_json(Repository.open(tmp_path / "disk2"), taken["id"]) == manifest_json(local, taken["id"])


def test_a_plain_set_is_not_sent_off_site_without_a_key_unless_plaintext_is_allowed(
        redis_rdb: RedisProcess, s3_bucket: S3Bucket, tmp_path: Path) -> None:
    redis_rdb.client().set("session:1", "secret-ish")
    config = write_config(tmp_path, redis_rdb, s3_bucket, key=False)
    taken = ok(bdr(config, "backup", "redis", "--json"))

    refused = bdr(config, "copy", "latest", "-s", "redis", "--remote")
    assert refused.exit_code == 2 and "--allow-plaintext" in error_line(refused)
    assert s3_bucket.keys("prod/redis/") == []

    run = ok(bdr(config, "copy", "latest", "-s", "redis", "--remote", "--allow-plaintext", "--json"))
    assert [(s["id"], s["mode"], s["encrypted"]) for s in run["sets"]] == [(taken["id"], "as is", False)]

    refused = bdr(config, "backup", "redis", "--also-remote")  # refused before any snapshot is taken
    assert refused.exit_code == 2 and "--allow-plaintext" in error_line(refused)
    assert listed(config) == [taken["id"]]


# --- refusals --------------------------------------------------------------------------------------------


def test_safety_damaged_and_tampered_sets_are_refused_and_nothing_is_left_there(
        redis_rdb: RedisProcess, s3_bucket: S3Bucket, tmp_path: Path) -> None:
    redis_rdb.client().mset({f"k{n}": n for n in range(100)})
    config = write_config(tmp_path, redis_rdb, s3_bucket)
    good = ok(bdr(config, "backup", "redis", "--json"))["id"]
    safety = ok(bdr(config, "backup", "redis", "--tag", "safety", "--json"))["id"]
    local = Repository.open(tmp_path / "local")

    refused = bdr(config, "copy", safety, "--remote")
    assert refused.exit_code == 2 and f"refusing to copy backup {safety}: it is a safety backup" in error_line(refused)

    damaged = ok(bdr(config, "backup", "redis", "--json"))["id"]
    edit_manifest_by_hand(local, "redis", damaged, lambda m: m["facts"].update(edited=True))
    refused = bdr(config, "copy", damaged, "--remote")
    assert refused.exit_code == 6 and f"backup {damaged} is damaged (manifest digest mismatch" in error_line(refused)

    rdb = tmp_path / "local" / "redis" / good / "dump.rdb"
    data = bytearray(rdb.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the stored object; the manifest still reads
    rdb.write_bytes(bytes(data))
    for where in (("--remote",), ("--to", str(tmp_path / "disk2"))):
        tampered = bdr(config, "copy", good, *where)
        assert tampered.exit_code == 6, tampered.output
        assert f"checksum mismatch in dump.rdb of backup {good}" in error_line(tampered)
    assert s3_bucket.keys("prod/redis/") == [] and s3_bucket.pending_uploads() == []
    assert not list((tmp_path / "disk2" / "redis").iterdir())
    assert listed(config, "--remote", s3_bucket.url("prod")) == []


# --- another disk, every missing set --------------------------------------------------------------------


def test_every_missing_set_goes_to_a_second_disk_once(redis_rdb: RedisProcess, tmp_path: Path) -> None:
    client = redis_rdb.client()
    config = write_config(tmp_path, redis_rdb, None, key=False)
    taken = []
    for n in range(2):
        client.set(f"k{n}", n)
        taken.append(ok(bdr(config, "backup", "redis", "--json"))["id"])
    disk2 = tmp_path / "disk2"
    first = ok(bdr(config, "copy", taken[0], "--to", str(disk2), "--json"))
    assert first["copied"] == [taken[0]]

    run = ok(bdr(config, "copy", "--all-missing", "--to", str(disk2), "--json"))

    assert run["copied"] == [taken[1]]  # the first was there already
    assert listed(config, "--destination", str(disk2)) == listed(config) == taken[::-1]
    for set_id in taken:  # plain on a local disk: byte for byte
        assert (disk2 / "redis" / set_id / "dump.rdb").read_bytes() == \
            (tmp_path / "local" / "redis" / set_id / "dump.rdb").read_bytes()
    assert ok(bdr(config, "copy", "--all-missing", "--to", str(disk2), "--json"))["sets"] == []
    nothing = bdr(config, "copy", "--all-missing", "--to", str(disk2))
    assert "nothing to copy" in nothing.stdout

    edit_manifest_by_hand(Repository.open(disk2), "redis", taken[0], lambda m: m["facts"].update(edited=True))
    conflict = bdr(config, "copy", taken[0], "--to", str(disk2))
    assert conflict.exit_code == 6
    assert f"{disk2} already holds a set {taken[0]} that is damaged (manifest digest mismatch" in error_line(conflict)
    assert f"delete {disk2}/redis/{taken[0]} and run the copy again" in error_line(conflict)
    assert bdr(config, "copy", "--all-missing", "--to", str(disk2)).exit_code == 6  # reported, not skipped


# --- one snapshot, two places -------------------------------------------------------------------------


def forks(server: RedisProcess) -> int:
    return int(server.client().info("stats")["total_forks"])


@pytest.mark.parametrize("flags", [("--remote", "REMOTE", "--also-local"), ("--also-remote",)],
                         ids=["remote-also-local", "also-remote"])
def test_one_snapshot_is_written_to_both_repositories(redis_rdb: RedisProcess, s3_bucket: S3Bucket,
                                                      tmp_path: Path, flags: tuple[str, ...]) -> None:
    load_every_type(redis_rdb.client())
    config = write_config(tmp_path, redis_rdb, s3_bucket)
    argv = [s3_bucket.url("prod") if f == "REMOTE" else f for f in flags]
    snapshots = forks(redis_rdb)

    taken = ok(bdr(config, "backup", "redis", *argv, "--json"))

    assert forks(redis_rdb) == snapshots + 1  # one BGSAVE: one snapshot
    set_id = taken["id"]
    [run] = taken["copies"]
    assert run["to"] == s3_bucket.url("prod") and run["copied"] == [set_id]
    assert listed(config) == listed(config, "--remote", s3_bucket.url("prod")) == [set_id]
    mine = manifest_json(Repository.open(tmp_path / "local"), set_id)
    theirs = manifest_json(remote_repo(config), set_id)
    assert theirs["started_at"] == mine["started_at"] and theirs["finished_at"] == mine["finished_at"]
    assert theirs["facts"]["snapshot_requested_at_us"] == mine["facts"]["snapshot_requested_at_us"]
    assert theirs["facts"]["content"]["value"] == mine["facts"]["content"]["value"]  # the same content digest
    assert mine["facts"]["content"]["algorithm"] == "bdr-rdb-1"
    assert theirs["files"] == mine["files"] and theirs["encrypted"] and not mine["encrypted"]
    status = ok(bdr(config, "status", "redis", "--require-321", "--json"))
    assert status["sources"][0]["rule_321"]["ok"]


def test_a_whole_system_set_goes_with_its_members_and_its_secrets(redis_rdb: RedisProcess, s3_bucket: S3Bucket,
                                                                  tmp_path: Path) -> None:
    redis_rdb.client().set("k", "v")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "app.yml").write_text("a: 1\n")
    (conf / ".env").write_text("API_KEY=s3cr3t\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        qdrant = QdrantClient(path=str(tmp_path / "qdrant"))
        qdrant.create_collection("memories", vectors_config=models.VectorParams(
            size=4, distance=models.Distance.COSINE))
        qdrant.upsert("memories", [models.PointStruct(id=1, vector=[0.1, 0.2, 0.3, 0.4])])
        qdrant.close()
    config = write_config(tmp_path, redis_rdb, s3_bucket, qdrant={"production": {"path": str(tmp_path / "qdrant")}},
                          files={"root": str(conf), "paths": ["*.yml"], "secrets": [".env"]})

    taken = ok(bdr(config, "backup", "all", "--also-remote", "--json"))

    [run] = taken["copies"]
    [system] = run["sets"]
    members = [m["id"] for m in system["members"]]
    assert system["id"] == taken["id"] and len(members) == 3
    assert run["copied"] == [*members, taken["id"]]  # members first, the system set last
    assert sorted(listed(config, "--remote", s3_bucket.url("prod"))) == sorted(listed(config))
    config_set = next(m for m in system["members"] if m["source"] == "config")
    assert config_set["mode"] == "re-encrypted"  # its secrets went as they were: under the same key
    local = manifest_json(Repository.open(tmp_path / "local"), config_set["id"], "config")
    assert not local["encrypted"] and any(o["encrypted"] for o in local["objects"])  # secrets encrypted on their own
    verified = bdr(config, "verify", config_set["id"], "--remote", s3_bucket.url("prod"))
    assert verified.exit_code == 0, verified.output

    again = ok(bdr(config, "copy", "latest", "--source", "all", "--remote", "--json"))
    assert again["copied"] == [] and again["sets"][0]["mode"] == "already there"

    other_key = tmp_path / "other.key"
    generate_key_file(other_key)
    refused = bdr(config, "copy", config_set["id"], "--to", str(tmp_path / "disk2"), "--encrypt",
                  "--key-file", str(other_key))
    assert refused.exit_code == 2 and "its secrets are encrypted with key" in error_line(refused)


def test_the_offsite_job_copies_the_newest_local_backup_instead_of_taking_another() -> None:
    from bdr.config import parse_config

    def offsite_args(schedule: dict[str, Any]) -> list[tuple[str, ...]]:
        config = parse_config({"remote": {"url": "s3://bucket/bdr"}, "schedule": schedule,
                               "redis": {"production": {"url": "redis://127.0.0.1:6379/0"}}})
        return [j.args for j in jobs_for(config) if j.offsite]

    assert offsite_args({"redis": "*/30 * * * *", "offsite/redis": "0 3 * * *"}) == [
        ("copy", "latest", "--source", "redis", "--instance", "production", "--remote", "s3://bucket/bdr")]
    assert offsite_args({"all": "0 2 * * *", "offsite": {"cron": "0 3 * * *", "compress": True}}) == [
        ("copy", "latest", "--source", "all", "--remote", "s3://bucket/bdr")]
    assert offsite_args({"redis": "*/30 * * * *", "offsite": "0 3 * * *"}) == [  # no local system set to copy
        ("backup", "all", "--also-remote", "s3://bucket/bdr")]
