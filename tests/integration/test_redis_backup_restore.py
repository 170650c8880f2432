"""Redis backup and full restore against real redis-server processes (RDB-only and AOF-on)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from bdr import api
from bdr.engines.redis.info import digest
from bdr.errors import (
    BackupNotFound,
    IntegrityError,
    RepositoryLocked,
    RestoreRolledBack,
    ServiceUnavailable,
)
from bdr.repository import Repository
from bdr.repository.manifest import MANIFEST_NAME, Manifest
from bdr.runtime.process import RedisProcess, spawn_redis
from tests.backup_sets import leave_crashed_set, rewrite_manifest
from tests.redis_data import dump_everything, load_every_type

STEPS = ["fetch", "check", "safety backup", "stop", "replace", "start", "verify", "finish"]


def destroy(server: RedisProcess) -> None:
    """The disaster: the process dies and its data files are gone."""
    server.kill()
    shutil.rmtree(server.data_path())
    server.data_path().mkdir()


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "compressed"])
def test_round_trip_keeps_every_type_and_the_digest(redis_server: RedisProcess, make_config, compress: bool) -> None:
    config = make_config(redis_server)
    client = redis_server.client()
    load_every_type(client)
    before_digest = digest(client)  # covers every value and absolute expire time, order-independent

    outcome = api.backup(config, "redis", compress=compress)
    facts = outcome.manifest.facts
    assert facts["digest"] == before_digest
    args = list(redis_server.instance.start_args)
    assert facts["aof"] is (args[args.index("--appendonly") + 1] == "yes")
    assert facts["rdb_version"] >= 10
    assert outcome.manifest.compressed is compress
    if facts["aof"]:
        assert any(f.path.startswith("appendonlydir/") and f.path.endswith(".manifest")
                   for f in outcome.manifest.files)

    destroy(redis_server)
    result = api.restore(config, "redis", "latest")

    assert [s.name for s in result.steps] == STEPS
    assert result.ok, result.checks
    assert digest(client) == before_digest
    safety = result.steps[2]
    assert (safety.status, result.safety_id) == ("skipped", None)  # the disaster left nothing to protect
    assert "holds no data files" in safety.detail


def test_rdb_backup_restored_into_an_aof_instance_is_not_shadowed_by_its_aof(
    redis_rdb: RedisProcess, redis_aof: RedisProcess, make_config
) -> None:
    test = dataclasses.replace(redis_aof.instance, name="test")
    config = make_config(redis_rdb, RedisProcess(instance=test, argv=redis_aof.argv))
    load_every_type(redis_rdb.client())
    redis_aof.client().set("only-in-test", "stale")
    expected = digest(redis_rdb.client())

    api.backup(config, "redis")
    result = api.restore(config, "redis", "latest", target="test")

    assert result.ok
    assert "safety" in Repository.open(config.repository_path()).get(str(result.safety_id)).tags
    client = redis_aof.client()
    assert digest(client) == expected
    assert client.config_get("appendonly")["appendonly"] == "yes"
    # The restored data must survive a restart that loads the (new) AOF only.
    redis_aof.stop()
    redis_aof.start()
    assert digest(client) == expected
    assert client.get("only-in-test") is None


def test_target_leaves_production_untouched(redis_rdb: RedisProcess, tmp_path: Path, make_config) -> None:
    other = spawn_redis(tmp_path / "test-instance" / "data", name="test")
    try:
        config = make_config(redis_rdb, other)
        redis_rdb.client().set("user:1", "alice")
        api.backup(config, "redis")
        redis_rdb.client().set("user:2", "bob")
        production_before = dump_everything(redis_rdb.client())

        api.restore(config, "redis", "latest", target="test")

        assert other.client().get("user:1") == b"alice"
        assert other.client().get("user:2") is None
        assert dump_everything(redis_rdb.client()) == production_before
    finally:
        other.stop()


def test_failed_verification_rolls_back_to_the_safety_backup(redis_rdb: RedisProcess, make_config) -> None:
    config = make_config(redis_rdb)
    client = redis_rdb.client()
    client.set("state", "backed-up")
    outcome = api.backup(config, "redis")
    # Make the set claim more keys than it holds: the restore's verification must fail.
    repo = Repository.open(config.repository_path())
    rewrite_manifest(repo, "redis", outcome.manifest.id,
                     lambda data: data["facts"].update(keyspace={"0": {"keys": 999, "expires": 0}}))
    client.set("state", "live")

    with pytest.raises(RestoreRolledBack) as raised:
        api.restore(config, "redis", outcome.manifest.id)

    assert "verify" in raised.value.message and "safety backup" in raised.value.message
    assert client.get("state") == b"live"
    assert len(repo.sets("redis")) == 2


def test_second_backup_while_locked_names_the_holder(redis_rdb: RedisProcess, make_config) -> None:
    config = make_config(redis_rdb)
    repo = Repository.open(config.repository_path())
    with repo.lock("backup redis"), pytest.raises(RepositoryLocked) as raised:
        api.backup(config, "redis")
    assert "locked by pid" in raised.value.message and "since" in raised.value.message
    assert repo.sets() == []


def test_interrupted_backup_leaves_no_set(redis_rdb: RedisProcess, make_config, monkeypatch) -> None:
    config = make_config(redis_rdb)
    redis_rdb.client().set("k", "v")
    from bdr.repository import SetWriter

    def fail(self: SetWriter, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(SetWriter, "commit", fail)
    with pytest.raises(KeyboardInterrupt):
        api.backup(config, "redis")
    repo = Repository.open(config.repository_path())
    assert repo.sets() == [] and repo.incomplete() == []


def test_killed_backup_is_never_listed_and_is_swept(redis_rdb: RedisProcess, make_config) -> None:
    config = make_config(redis_rdb)
    repo = Repository.open(config.repository_path())
    leftover = Path(config.repository_path()) / "redis" / "redis-20260101T000000Z-dead00"
    leave_crashed_set(repo, "redis", leftover.name, {"dump.rdb": b"REDIS0010 partial"})  # a marker of a dead pid
    assert repo.sets() == [] and repo.incomplete() == ["redis-20260101T000000Z-dead00"]

    api.backup(config, "redis")

    assert not leftover.exists()
    assert len(repo.sets()) == 1


def test_restore_of_a_corrupt_set_changes_nothing(redis_rdb: RedisProcess, make_config) -> None:
    config = make_config(redis_rdb)
    client = redis_rdb.client()
    client.set("k", "v1")
    outcome = api.backup(config, "redis")
    rdb = Path(config.repository_path()) / "redis" / outcome.manifest.id / "dump.rdb"
    raw = bytearray(rdb.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    rdb.write_bytes(bytes(raw))
    client.set("k", "live")

    with pytest.raises(IntegrityError):
        api.restore(config, "redis", outcome.manifest.id)

    assert client.get("k") == b"live"
    assert len(Repository.open(config.repository_path()).sets()) == 1  # no safety backup was needed


def test_unknown_backup_and_redis_down(redis_rdb: RedisProcess, make_config) -> None:
    config = make_config(redis_rdb)
    with pytest.raises(BackupNotFound):
        api.restore(config, "redis", "redis-20990101T000000Z-abcdef")
    redis_rdb.stop()
    with pytest.raises(ServiceUnavailable):
        api.backup(config, "redis")


def test_replication_method_round_trip(redis_rdb: RedisProcess, make_config) -> None:
    config = make_config(redis_rdb)
    client = redis_rdb.client()
    load_every_type(client)
    expected = digest(client)

    outcome = api.backup(config, "redis", method="replication")
    assert outcome.manifest.method == "replication"
    assert outcome.manifest.facts["digest"] == expected

    destroy(redis_rdb)
    api.restore(config, "redis", outcome.manifest.id)
    assert digest(client) == expected


def test_restores_backups_of_the_old_shell_scripts(redis_aof: RedisProcess, tmp_path: Path, make_config) -> None:
    """redis_backup_YYYYMMDD_HHMMSS/ and its .tar.gz, as scripts/backup-redis.sh made them."""
    config = make_config(redis_aof)
    client = redis_aof.client()
    load_every_type(client)
    expected = digest(client)
    client.bgsave()
    import time

    while client.info("persistence")["rdb_bgsave_in_progress"]:
        time.sleep(0.05)
    old = tmp_path / "backups" / "redis" / "redis_backup_20250124_020000"
    old.mkdir(parents=True)
    shutil.copy2(redis_aof.data_path() / "dump.rdb", old / "dump.rdb")
    shutil.copytree(redis_aof.data_path() / "appendonlydir", old / "appendonlydir")
    import tarfile

    archive = old.parent / "redis_backup_20250124_020000.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(old, arcname=old.name)

    for legacy in (old, archive):
        client.flushall()
        result = api.restore(config, "redis", str(legacy))
        assert result.ok
        assert digest(client) == expected


def test_manifest_lists_every_file_with_sha256(redis_aof: RedisProcess, make_config) -> None:
    config = make_config(redis_aof)
    redis_aof.client().set("a", "b")
    manifest = api.backup(config, "redis").manifest
    set_dir = Path(config.repository_path()) / "redis" / manifest.id
    stored = Manifest.from_json((set_dir / MANIFEST_NAME).read_bytes())
    assert stored == manifest
    import hashlib

    for entry in manifest.files:
        assert hashlib.sha256((set_dir / entry.path).read_bytes()).hexdigest() == entry.sha256
    assert {"redis_version", "rdb_version", "aof", "keyspace", "digest"} <= set(manifest.facts)


def test_safety_backup_of_a_stopped_aof_instance_keeps_its_newest_writes(redis_aof: RedisProcess,
                                                                        make_config) -> None:
    """The files of a Redis that is down: its AOF is newer than its last dump.rdb and must win."""
    config = make_config(redis_aof)
    client = redis_aof.client()
    client.set("a", "1")
    backup = api.backup(config, "redis")
    client.set("b", "2")  # only in the AOF: dump.rdb was written by the backup's BGSAVE, before this
    redis_aof.kill()

    result = api.restore(config, "redis", backup.manifest.id)
    assert client.get("b") is None and result.safety_id is not None

    api.restore(config, "redis", result.safety_id)
    assert (client.get("a"), client.get("b")) == (b"1", b"2")
