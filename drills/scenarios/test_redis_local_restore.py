"""Runbook: "Restore from Backup" (Redis restore from local backup, RTO < 5 minutes).

Symptoms: Redis data lost or wrong (the data files deleted, a bad deploy wrote garbage).
Recovery: ``bdr restore redis latest``: safety backup, stop, replace, start, verify.
The drill proves the restore meets its RTO and that the data loss is bounded by the age
of the newest backup (the sessions RPO).
"""

from __future__ import annotations

import pytest

from bdr import api
from bdr.util.durations import format_duration
from drills.recorder import Drill
from drills.stack import Stack, wipe

pytestmark = pytest.mark.drill("redis_local_restore", title="Redis restore from the latest local backup",
                                sources=("redis",), objectives=("rto redis_local_restore", "rpo sessions", "rpo rbac"))


def test_redis_local_restore(stack: Stack, drill: Drill) -> None:
    writer = stack.start_writer()
    with drill.step("scheduled backup") as step, writer.paused():
        outcome = api.backup(stack.config, "redis")
        before = stack.fingerprint("redis")
        step.detail = outcome.manifest.id
    writer.wait_for_acks(count=len(writer.acknowledged("sessions", 1e12)) + 5)

    fault = drill.fault("redis-server killed and its data directory deleted")
    stack.redis.kill()
    writer.stop()
    wipe(stack.redis.data_path())
    with drill.step("detected") as step:
        assert not stack.redis.running()
        step.detail = "PING fails; data directory empty"
    with drill.step("restore", "bdr restore redis latest") as step:
        result = api.restore(stack.config, "redis", "latest")
        step.detail = ", ".join(f"{s.name} {format_duration(s.seconds)}" for s in result.steps)
    with drill.step("service answering"):
        assert stack.redis.client().ping()
    with drill.step("verify") as step:
        assert result.ok, result.checks
        step.detail = drill.fingerprints(before, stack.fingerprint("redis")) + "; " + "; ".join(
            f"{c.name}: {c.detail}" for c in result.checks)
    drill.verified()

    drill.rto("redis_local_restore")
    for data_type in ("sessions", "rbac"):
        drill.rpo(data_type, writer.newest_surviving(data_type, fault), note="newest backup")
    drill.evidence.update(backup_id=outcome.manifest.id, manifest_sha256=manifest_digest(outcome.manifest),
                          restore_steps=[s.to_dict() for s in result.steps], digest=outcome.manifest.facts["digest"])
    drill.assert_targets()


def manifest_digest(manifest: object) -> str:
    import hashlib

    return hashlib.sha256(manifest.to_json()).hexdigest()  # type: ignore[attr-defined]
