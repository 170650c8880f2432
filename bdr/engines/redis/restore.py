"""Restoring Redis: the runbook's five steps, timed, with automatic rollback.

1. ``safety backup`` of the current data (a set tagged ``safety``; a plain copy of the data
   files when the server is down, e.g. because it refuses to start on a corrupt AOF),
2. ``stop`` the server (``SHUTDOWN NOSAVE``: the files on disk are what we replace),
3. ``replace`` its data files with the backup's (fetched and checksum-checked *before*
   anything live is touched),
4. ``start`` it and wait until it has loaded,
5. ``verify``: loading finished, per-db key counts and the digest equal the manifest.

A failure in 3-5 puts the safety backup back, starts the server on it and raises
:class:`~bdr.errors.RestoreRolledBack` (exit 10).

AOF is handled explicitly: Redis with ``appendonly yes`` loads only its AOF and would
ignore a restored ``dump.rdb``. So when the backup is restored from its RDB into an AOF
instance, the server is started once with ``--appendonly no`` (it loads the RDB) and AOF
is then switched on live (``CONFIG SET appendonly yes``), which writes a fresh AOF from
memory; the next restart loads that.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import redis

from bdr.clients import redis_client, redis_errors
from bdr.config import RedisInstance
from bdr.engines.base import Check, Engine, RestoreRequest, RestoreResult, safety_backup
from bdr.engines.redis.info import DIGEST_UNAVAILABLE, Keyspace, PersistenceLayout, digest
from bdr.errors import (
    BdrError,
    CheckFailed,
    NothingToBackUp,
    RestoreRolledBack,
    RollbackFailed,
    ServiceError,
    ServiceTimeout,
)
from bdr.manifest import Manifest
from bdr.repository import Repository, extract_set
from bdr.runtime import redis_runtime
from bdr.runtime.base import Runtime
from bdr.waiting import wait_for

logger = logging.getLogger(__name__)


def stage_dir(near: Path) -> Path:
    """A scratch directory on the same file system as ``near`` when possible (cheap renames)."""
    for parent in (near.parent, Path(tempfile.gettempdir())):
        try:
            parent.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=".bdr-restore-", dir=parent))
        except OSError:
            continue
    return Path(tempfile.mkdtemp(prefix="bdr-restore-"))


def layout_of(instance: RedisInstance, runtime: Runtime) -> PersistenceLayout:
    """The target's persistence layout: asked from the server, or read from how it is started.

    The directory is always the one *bdr* reaches (the runtime's data path: for a container,
    the volume on the host), never the path inside a container.
    """
    if runtime.running():
        with redis_errors(instance, "describe its persistence"):
            layout = PersistenceLayout.from_server(redis_client(instance, timeout=10.0))
        remember = getattr(runtime, "remember_launch", None)
        if remember is not None:
            remember()
    else:
        argv = list(getattr(runtime, "argv", []) or instance.start_args)
        layout = PersistenceLayout.from_args(argv, instance.config_file, instance.data_dir)
    return dataclasses.replace(layout, dir=runtime.data_path())


SNAPSHOT_METHODS = ("rdb", "replication")
"""Methods whose RDB is the snapshot the manifest describes (and is newer than nothing else)."""


def plan_files(files: Path, layout: PersistenceLayout, facts: dict[str, Any], method: str | None) -> tuple[Path, str]:
    """Rename the backup's files to the target's names; returns (dir, how it must load: rdb|aof).

    A set made by BGSAVE (or replication) loads from its RDB, the snapshot its digest describes;
    its AOF copy is dropped so it can never shadow it. A copy of a stopped server's files (a
    safety backup of a Redis that was down) or an old script's backup loads from its AOF when
    it has one, as Redis itself would: that AOF may hold writes the older ``dump.rdb`` lacks.
    """
    rdb = files / facts.get("dbfilename", "dump.rdb")
    aof_dir = files / facts.get("appenddirname", "appendonlydir")
    legacy_aof = files / "appendonly.aof"
    has_aof = aof_dir.is_dir() or legacy_aof.is_file()
    if rdb.is_file() and (method in SNAPSHOT_METHODS or not has_aof):
        if rdb.name != layout.dbfilename:
            rdb.rename(files / layout.dbfilename)
        # Load from the RDB: its digest is the one in the manifest. Drop the AOF copy so a stale
        # AOF can never shadow it.
        if aof_dir.is_dir():
            shutil.rmtree(aof_dir)
        legacy_aof.unlink(missing_ok=True)
        return files, "rdb"
    if aof_dir.is_dir():
        if aof_dir.name != layout.appenddirname:
            aof_dir.rename(files / layout.appenddirname)
        return files, "aof"
    if legacy_aof.is_file():
        return files, "aof"
    raise NothingToRestore(detail="the backup holds neither an RDB file nor an AOF: nothing to restore")


class NothingToRestore(BdrError):
    """{detail}"""

    exit_code = 4


def start_loaded(runtime: Runtime, instance: RedisInstance, layout: PersistenceLayout, load_from: str,
                 timeout: float) -> None:
    """Start the server so that it loads what was restored, then bring AOF back as configured."""
    if load_from == "rdb" and layout.appendonly:
        runtime.start(timeout=timeout, overrides=["--appendonly", "no"])
        client = redis_client(instance, timeout=timeout)
        with redis_errors(instance, "switch AOF back on"):
            client.config_set("appendonly", "yes")

            def rewritten() -> bool:
                info = client.info("persistence")
                return (
                    info.get("aof_enabled") == 1
                    and not int(info["aof_rewrite_in_progress"])
                    and not int(info["aof_rewrite_scheduled"])
                )

            if not wait_for(rewritten, timeout, 0.05):
                raise ServiceTimeout(service=f"Redis {instance.name}", what="write its new AOF",
                                     seconds=timeout, detail="")
            if client.info("persistence").get("aof_last_bgrewrite_status") != "ok":
                raise ServiceError(detail="Redis failed to write the AOF after loading the RDB; see its log")
    elif load_from == "aof" and not layout.appendonly:
        runtime.start(timeout=timeout, overrides=["--appendonly", "yes"])
        with redis_errors(instance, "switch AOF back off"):
            redis_client(instance, timeout=timeout).config_set("appendonly", "no")
    else:
        runtime.start(timeout=timeout)


def verify_live(instance: RedisInstance, facts: dict[str, Any] | None) -> list[Check]:
    """Compare the running server with the manifest facts: loaded, key counts, digest."""
    client = redis_client(instance, timeout=60.0)
    checks: list[Check] = []
    with redis_errors(instance, "answer the verification"):
        info = client.info("persistence")
        checks.append(Check("loaded", int(info.get("loading", 0)) == 0, "loading finished"))
        live = Keyspace.from_info(client.info("keyspace"))
        if facts and facts.get("keyspace"):
            expected = Keyspace.from_facts(facts["keyspace"])
            # Keys with a TTL may have expired since the backup: counts may only go down by expiries.
            ok = all(
                live.dbs.get(db, (0, 0))[0] == keys
                or expected.dbs[db][0] - expected.dbs[db][1] <= live.dbs.get(db, (0, 0))[0] <= keys
                for db, (keys, _) in expected.dbs.items()
            ) and set(live.dbs) <= set(expected.dbs)
            checks.append(Check("key counts", ok, f"live {live.total_keys} keys, backup {expected.total_keys}"))
        else:
            checks.append(Check("key counts", True, f"live {live.total_keys} keys (backup recorded no counts)"))
        expected_digest = (facts or {}).get("digest", DIGEST_UNAVAILABLE)
        if expected_digest != DIGEST_UNAVAILABLE:
            checks.append(_digest_check(client, expected_digest, live, facts or {}))
    return checks


def _digest_check(client: redis.Redis, expected: str, live: Keyspace, facts: dict[str, Any]) -> Check:
    """Digests must be equal unless keys with a TTL expired since the backup (then they cannot be)."""
    live_digest = digest(client)
    if live_digest == DIGEST_UNAVAILABLE:
        return Check("digest", True, "not compared: the server refuses DEBUG DIGEST")
    if live_digest == expected:
        return Check("digest", True, f"equal ({live_digest[:16]})")
    expired = Keyspace.from_facts(facts.get("keyspace", {})).total_keys - live.total_keys
    if expired > 0:
        return Check("digest", True, f"not compared: {expired} keys with a TTL expired since the backup")
    return Check("digest", False, f"live {live_digest[:16]} != backup {expected[:16]}")


def fetch(request: RestoreRequest, scratch: Path) -> tuple[Path, Manifest | None]:
    """The backup's files in ``scratch``, checked against the manifest; legacy inputs unpacked."""
    from bdr.engines.redis.legacy import unpack_legacy

    if request.backup is not None:
        extract_set(request.repository, request.backup, scratch, request.cipher)
        return scratch, request.backup.manifest
    assert request.legacy_path is not None
    return unpack_legacy(request.legacy_path, scratch), None


def restore_full(engine: Engine, request: RestoreRequest) -> RestoreResult:
    instance = request.config.redis_instance(request.target)
    runtime = redis_runtime(instance)
    log = request.log
    ref = request.backup.id if request.backup else str(request.legacy_path)
    result = RestoreResult(source="redis", ref=ref, target=instance.name, steps=log.steps, dry_run=request.dry_run)
    layout = layout_of(instance, runtime)
    scratch = stage_dir(layout.dir)
    try:
        with log.step("fetch") as step:
            files, manifest = fetch(request, scratch / "incoming")
            facts = dict(manifest.facts) if manifest else {}
            files, load_from = plan_files(files, layout, facts, manifest.method if manifest else None)
            step.detail = f"load from {load_from.upper()}"
        if request.dry_run:
            log.skipped("safety backup", "dry run")
            result.checks.append(Check("backup readable", True, f"would restore {ref} into {instance.name}"))
            return result
        if request.safety_backup:
            try:
                with log.step("safety backup") as step:
                    safety = safety_backup(engine, request, instance.name)
                    result.safety_id = safety.id
                    step.detail = safety.id
            except NothingToBackUp as exc:
                log.steps.pop()
                log.skipped("safety backup", f"nothing to protect: {exc.message}")
        with log.step("stop"):
            runtime.stop()
        clear = [layout.dbfilename, layout.appenddirname, "appendonly.aof"]
        try:
            with log.step("replace"):
                runtime.replace_data(files, clear=clear)
            with log.step("start"):
                start_loaded(runtime, instance, layout, load_from, timeout=request.config.redis_instance(
                    request.target).save_timeout)
            with log.step("verify") as step:
                checks = verify_live(instance, facts if manifest else None)
                result.checks.extend(checks)
                failed = [c for c in checks if not c.ok]
                step.detail = "; ".join(f"{c.name}: {c.detail}" for c in checks)
                if failed:
                    raise CheckFailed(detail="; ".join(f"{c.name}: {c.detail}" for c in failed))
        except (BdrError, OSError, redis.RedisError) as exc:
            if result.safety_id is None:
                raise
            try:
                rollback(request, runtime, instance, layout, result.safety_id, scratch)
            except (BdrError, OSError, redis.RedisError) as again:
                raise RollbackFailed(
                    detail=f"restore of {ref} failed ({getattr(exc, 'message', exc)}) and so did the rollback "
                    f"({getattr(again, 'message', again)}); the data from before the restore is kept in "
                    f"safety backup {result.safety_id}"
                ) from exc
            failed_step = next((s.name for s in reversed(log.steps) if s.status == "failed"), "?")
            raise RestoreRolledBack(ref=ref, step=failed_step, detail=getattr(exc, "message", str(exc)),
                                    safety=result.safety_id) from exc
        result.facts = {"load_from": load_from, "aof": layout.appendonly, **runtime.describe()}
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def rollback(request: RestoreRequest, runtime: Runtime, instance: RedisInstance, layout: PersistenceLayout,
             safety_id: str, scratch: Path) -> None:
    """Put the safety backup back and start the server on it."""
    logger.warning("restore into %s failed; rolling back to safety backup %s", instance.name, safety_id)
    with request.log.step("rollback") as step:
        repo: Repository = request.safety_repo
        safety = repo.get(safety_id)
        files = scratch / "rollback"
        extract_set(repo, safety, files, request.cipher)
        files, load_from = plan_files(files, layout, dict(safety.manifest.facts), safety.manifest.method)
        if runtime.running():
            runtime.stop()
        runtime.replace_data(files, clear=[layout.dbfilename, layout.appenddirname, "appendonly.aof"])
        start_loaded(runtime, instance, layout, load_from, timeout=instance.save_timeout)
        step.detail = f"restored {safety_id}"
