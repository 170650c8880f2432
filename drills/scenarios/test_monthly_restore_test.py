"""Runbook: "Monthly Restore Test".

Restore the latest backups into a separate test environment (the ``test`` target of
bdr.yaml), verify their integrity there, and leave production untouched. This is the
exercise the team runs every month; run with ``--dr-scale large`` for the real size.
"""

from __future__ import annotations

import pytest

from bdr import api
from bdr.util.durations import format_duration
from drills.recorder import Drill
from drills.stack import Stack

pytestmark = pytest.mark.drill("monthly_restore_test", title="Monthly restore test into the test environment",
                                sources=("redis",), objectives=("rto redis_local_restore",))


def test_monthly_restore_test(stack: Stack, drill: Drill) -> None:
    production = stack.redis.client()
    with drill.step("latest backup") as step:
        outcome = api.backup(stack.config, "redis", compress=True)
        step.detail = outcome.manifest.id
    production_digest = api.redis_fingerprint(production).digest
    production_dump = stack.redis_dump()
    before = stack.fingerprint("redis")

    drill.start("monthly test begins: nothing is broken; the latest backup is restored into the test target")
    with drill.step("backup check", "bdr verify latest --restore-test") as step:
        report = api.verify(stack.config, outcome.manifest.id, restore_test=True)
        step.detail = "; ".join(f"{c.name}: {c.detail}" for c in report.checks)
        assert report.ok, report.checks
    with drill.step("restore into test", "bdr restore redis latest --target test") as step:
        result = api.restore(stack.config, "redis", "latest", target="test")
        step.detail = ", ".join(f"{s.name} {format_duration(s.seconds)}" for s in result.steps)
    with drill.step("verify test target") as step:
        test_digest = api.redis_fingerprint(stack.redis_test.client()).digest
        assert result.ok, result.checks
        recorded = outcome.manifest.facts["digest"]
        if recorded != api.DIGEST_UNAVAILABLE:
            assert test_digest == recorded
            step.detail = f"digest {test_digest[:16]} equals the manifest"
        else:  # above digest_max_keys the backup records key counts only: the restore compared them
            assert test_digest == production_digest
            step.detail = (f"digest {test_digest[:16]} equals production's; "
                              + "; ".join(f"{c.name}: {c.detail}" for c in result.checks))
    with drill.step("production untouched") as step:
        assert api.redis_fingerprint(production).digest == production_digest
        assert stack.redis_dump() == production_dump
        step.detail = drill.fingerprints(before, stack.fingerprint("redis")) + "; every key equal by DUMP"
    drill.verified()

    drill.rto("redis_local_restore", note="restore into the test target")
    drill.evidence.update(backup_id=outcome.manifest.id, backup_digest=outcome.manifest.facts["digest"],
                          verify=[{"check": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks],
                          production_digest=production_digest, test_digest=test_digest)
    drill.assert_targets()
