"""Runbook: "Scenario 2: Complete Data Loss" (full system restore, RTO < 30 minutes).

Symptoms: all volumes deleted, the host rebuilt: Redis data, Qdrant storage and the
configuration files are gone.
Recovery: the services are recreated empty (``docker compose up -d`` on the rebuilt host; a
local redis-server needs nothing), then ``bdr restore all latest``: configuration first, then
Redis and Qdrant, then a verification of all three. On the docker runtime the Redis volume
itself is deleted (with its container, as ``docker compose down -v`` does).
The drill proves the services come back with the same data and configuration.
"""

from __future__ import annotations

import hashlib

import pytest

from bdr import api
from drills.recorder import Drill
from drills.stack import Stack, wipe

pytestmark = pytest.mark.drill("complete_data_loss", title="Complete data loss: Redis, Qdrant and config gone",
                                sources=("redis", "qdrant", "config"),
                                objectives=("rto full_system_restore", "rpo sessions", "rpo rbac", "rpo vectors"))


def config_fingerprint(stack: Stack) -> dict[str, str]:
    return {str(p.relative_to(stack.config_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(stack.config_dir.rglob("*")) if p.is_file()}


def test_complete_data_loss(stack: Stack, drill: Drill) -> None:
    writer = stack.start_writer(stack.all_channels())
    with drill.step("scheduled system backup", "bdr backup all") as step, writer.paused():
        outcome = api.backup(stack.config, "all")
        step.detail = f"{outcome.manifest.id} (skew {outcome.manifest.facts['skew_seconds']}s)"
        expected_digest = api.redis_fingerprint(stack.redis.client()).digest
        expected_documents = stack.qdrant_points("documents")
        expected_memories = stack.qdrant_points("memories")
        before = stack.fingerprint("redis", "qdrant", "config")
    expected_config = config_fingerprint(stack)
    writer.wait_for_acks(count=len(writer.acknowledged("vectors", 1e12)) + 2)

    fault = drill.fault("every volume deleted: Redis data, Qdrant storage, configuration files")
    writer.stop()
    stack.redis.kill()
    lost = stack.lose_redis()
    for path in (stack.qdrant_path(), stack.config_dir):
        wipe(path)
    with drill.step("detected") as step:
        assert not stack.redis.running() and not any(stack.config_dir.iterdir())
        step.detail = f"Redis down ({lost}), Qdrant storage and config directory empty"
    with drill.step("services recreated", "docker compose up -d, on a rebuilt host") as step:
        step.detail = stack.recreate_redis()
    with drill.step("restore", "bdr restore all latest") as step:
        result = api.restore(stack.config, "all", "latest")
        step.detail = "; ".join(s.detail for s in result.steps)
    with drill.step("service answering"):
        assert stack.redis.client().ping()
    with drill.step("verify") as step:
        assert result.ok, [c for c in result.checks if not c.ok]
        got_digest = api.redis_fingerprint(stack.redis.client()).digest
        redis_back = got_digest == outcome.manifest.facts["members"]["redis"].get("digest", got_digest)
        assert stack.qdrant_points("documents").keys() >= expected_documents.keys()
        assert stack.qdrant_points("memories") == expected_memories
        assert config_fingerprint(stack) == expected_config
        assert (stack.config_dir / ".env").stat().st_mode & 0o777 == 0o600
        step.detail = drill.fingerprints(before, stack.fingerprint("redis", "qdrant", "config")) + \
            "; .env back at 0600"
    drill.verified()

    drill.rto("full_system_restore")
    for data_type in ("sessions", "rbac", "vectors"):
        drill.rpo(data_type, writer.newest_surviving(data_type, fault), note="newest system backup")
    drill.evidence.update(
        backup_id=outcome.manifest.id, members=outcome.manifest.facts["members"],
        skew_seconds=outcome.manifest.facts["skew_seconds"], redis_digest_before=expected_digest,
        redis_digest_after=got_digest, redis_equal=redis_back, config_files=expected_config,
    )
    drill.assert_targets()
