"""Redis in a live drill: INFO before and after, the restored server's full content digest, a test instance.

Production is read with ``INFO server`` (``process_id``, ``run_id``, which changes at every
start, ``uptime_in_seconds``), ``INFO keyspace`` and ``INFO stats`` (``expired_keys``,
``evicted_keys``): untouched is the same process, not restarted, with no fewer keys than
Redis itself expired or evicted meanwhile. The proof on the restored target: it saves its
memory (``BGSAVE``, on the test target only) and bdr's content digest of that RDB
(``bdr-rdb-1``) must equal the manifest's, every key, value and expiry. Redis does not load
keys whose TTL passed since the snapshot, so when the restored server holds fewer keys than
the set, no more than the set's keys with a TTL, the proof is *not verified* (the runbook's
key sample stands); any other difference fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from bdr.config import Config
from bdr.drill.production import ProductionState, grown, now
from bdr.drill.profiles import Findings, Profile
from bdr.drill.settings import SourceDrill
from bdr.drill.targets import TEMPORARY, RestoreTarget, named_target
from bdr.report.records import Verification, VerificationKind
from bdr.repository.manifest import Manifest

SAVE_TIMEOUT = 600.0


def probe(config: Config, name: str) -> ProductionState:
    from bdr.runtime import redis_runtime

    instance = config.redis_instance(name)
    client = redis_runtime(instance).client(timeout=10.0, retries=1)
    server = client.info("server")
    keyspace = client.info("keyspace")
    stats = client.info("stats")
    counts = {db: int(facts.get("keys", 0)) for db, facts in keyspace.items() if isinstance(facts, dict)}
    return ProductionState(
        "redis", name, instance.url, now(), pid=int(server.get("process_id", 0)) or None,
        run_id=str(server.get("run_id", "")), uptime_seconds=int(server.get("uptime_in_seconds", 0)),
        version=str(server.get("redis_version", "")), counts=counts, expired=int(stats.get("expired_keys", 0)),
        evicted=int(stats.get("evicted_keys", 0)),
    )


def compare(before: ProductionState, after: ProductionState) -> Findings:
    problems: list[str] = []
    facts: list[str] = []
    if before.pid != after.pid or before.run_id != after.run_id:
        problems.append(f"Redis is another process now (pid {before.pid} → {after.pid}, run id "
                        f"{before.run_id[:8]} → {after.run_id[:8]}): it was restarted")
    elif (after.uptime_seconds or 0) < (before.uptime_seconds or 0):
        problems.append("its uptime went down: it was restarted")
    else:
        facts.append(f"same process (pid {after.pid}, run id {after.run_id[:8]}), not restarted "
                     f"(uptime {before.uptime_seconds}s → {after.uptime_seconds}s)")
    expired = (after.expired - before.expired) + (after.evicted - before.evicted)
    fell = before.total - after.total
    if fell > max(0, expired):
        problems.append(f"{fell} fewer keys ({before.total} → {after.total}), more than the {expired} Redis "
                        "expired or evicted meanwhile")
    elif fell > 0:
        facts.append(f"keys {before.total} → {after.total}: {fell} expired by their TTL (expired/evicted "
                     f"counters +{expired})")
    else:
        facts.append(grown("keys", before.total, after.total))
    return problems, facts


def state_text(state: ProductionState) -> str:
    return f"pid {state.pid}, run id {state.run_id[:8]}, {state.total} keys, up {state.uptime_seconds}s"


def volume(manifest: Manifest) -> str | None:
    content = manifest.facts.get("content")
    keys = content.get("keys") if isinstance(content, dict) else None
    return f"{sum(int(n) for n in dict(keys).values())} keys" if keys else None


def fingerprint(manifest: Manifest) -> dict[str, object]:
    content = manifest.facts.get("content")
    if not isinstance(content, dict):
        return {}
    return {"algorithm": content.get("algorithm"), "digest": content.get("value"), "keys": content.get("keys")}


@contextlib.contextmanager
def target(config: Config, drill: SourceDrill, scratch: Path) -> Iterator[RestoreTarget]:
    """``drill.redis.target``, else ``test``, else a temporary redis-server on a free loopback port."""
    named = named_target(config, "redis", drill, lambda a, b: a.url == b.url, lambda i: str(i.url))
    if named is not None:
        yield named
        return
    from bdr.runtime.process import spawn_redis

    data = scratch / "redis" / "data"
    process = spawn_redis(data, name=TEMPORARY)
    changed = dataclasses.replace(config, redis={**config.redis, TEMPORARY: process.instance})
    try:
        yield RestoreTarget("redis", TEMPORARY, changed, True,
                            f"temporary redis-server at {process.instance.url} (data in {data}), stopped and removed "
                            "afterwards")
    finally:
        try:
            process.stop()
        finally:
            shutil.rmtree(scratch / "redis", ignore_errors=True)


def digest_proof(config: Config, manifest: Manifest, restored: RestoreTarget) -> list[Verification]:
    """The restored server's full content digest against the manifest's (see the module docstring)."""
    from bdr.engines.redis.rdb import digest_file
    from bdr.runtime import redis_runtime

    name = "full content digest (bdr-rdb-1) of the restored server"
    content = manifest.facts.get("content")
    if not isinstance(content, dict) or "value" not in content:
        why = manifest.facts.get("content_unavailable", "the manifest records no content digest")
        return [Verification(VerificationKind.CONTENT, name, False, f"not verified: {why}", skipped=True)]
    runtime = redis_runtime(config.redis_instance(restored.name))
    client = runtime.client(timeout=30.0, retries=1)
    saves = int(client.info("persistence").get("rdb_saves", 0))
    client.bgsave(schedule=True)
    deadline = time.monotonic() + SAVE_TIMEOUT
    while True:
        info = client.info("persistence")
        if int(info.get("rdb_saves", 0)) > saves and not int(info.get("rdb_bgsave_in_progress", 0)):
            break
        if time.monotonic() > deadline:
            return [Verification(VerificationKind.CONTENT, name, False, "not verified: the restored server's BGSAVE "
                                 f"did not finish within {SAVE_TIMEOUT:g}s", skipped=True)]
        time.sleep(0.02)
    if info.get("rdb_last_bgsave_status") != "ok":
        return [Verification(VerificationKind.CONTENT, name, False, "not verified: the restored server's BGSAVE "
                             "failed (see its log)", skipped=True)]
    filename = str(client.config_get("dbfilename").get("dbfilename", "dump.rdb"))
    digest = digest_file(runtime.data_path() / filename)
    want = str(content["value"])
    if digest.value == want:
        return [Verification(VerificationKind.CONTENT, name, True,
                             f"equal to the manifest's ({want[:16]}…): all {digest.total_keys} keys, values and "
                             "expiry times")]
    backup_keys = sum(int(n) for n in dict(content.get("keys", {})).values())
    with_ttl = sum(int(n) for n in dict(content.get("expires", {})).values())
    missing = backup_keys - digest.total_keys
    if 0 < missing <= with_ttl:
        return [Verification(VerificationKind.CONTENT, name, False,
                             f"not verified: the restored server holds {digest.total_keys} keys, the set "
                             f"{backup_keys}; the {missing} missing are at most its {with_ttl} keys with a TTL, which "
                             "Redis does not load once expired, so the digests cannot match", skipped=True)]
    return [Verification(VerificationKind.CONTENT, name, False,
                         f"the restored server's digest {digest.value[:16]}… differs from the manifest's {want[:16]}… "
                         f"({digest.total_keys} keys restored, {backup_keys} in the set)")]


def stand_ins(config: Config, production: str, temporary: bool) -> list[tuple[str, str]]:
    return [("a Redis test instance", "a temporary redis-server bdr started for the test (no test instance in "
             "bdr.yaml)")] if temporary else []


PROFILE = Profile(probe=probe, compare=compare, state_text=state_text, example_check="key_exists: test_key",
                  volume=volume, fingerprint=fingerprint, target=target, proofs=digest_proof, stand_ins=stand_ins,
                  state_fields=frozenset({"run_id", "uptime_seconds", "expired", "evicted"}))
