"""Runbook: "Scenario 1: Redis Data Corruption".

Symptoms: Redis will not start; its log complains about a corrupted AOF/RDB.
Recovery: ``bdr repair redis`` checks a *copy* of the files (redis-check-aof/-rdb) and, when
the damage is a torn AOF tail, truncates it (``--yes``, originals kept); when the damage is
beyond repair it says so and the restore of the latest backup follows
(``bdr restore redis latest``). Each case first proves the fault is real: Redis refuses
to start.
"""

from __future__ import annotations

import pytest

from bdr import api
from bdr.errors import BdrError
from bdr.util.durations import format_duration
from drills.recorder import Drill
from drills.stack import Stack

pytestmark = pytest.mark.drill("redis_corruption", title="Redis data corruption: repair, or restore",
                                sources=("redis",), objectives=("rto redis_local_restore", "rpo sessions", "rpo rbac"))


def _incr_file(stack: Stack):  # type: ignore[no-untyped-def]
    return sorted((stack.redis.data_path() / "appendonlydir").glob("*.incr.aof"))[-1]


def _refuses_to_start(stack: Stack, drill: Drill) -> str:
    with drill.step("Redis refuses to start", "proof that the fault is real") as step:
        with pytest.raises(BdrError) as refused:
            stack.redis.start(timeout=20)
        step.detail = refused.value.message[-200:]
    return refused.value.message


@pytest.mark.drill("redis_corruption", title="Redis corruption (a): torn AOF tail, repaired", case="torn_aof_tail",
                   sources=("redis",),
                   objectives=("rto redis_local_restore", "rpo sessions", "rpo rbac"))
def test_torn_aof_tail_is_repaired(stack: Stack, drill: Drill) -> None:
    writer = stack.start_writer()
    fault = drill.fault("kill -9 in the middle of an AOF write: the last command is torn")
    stack.redis.kill()
    writer.stop()
    with _incr_file(stack).open("ab") as aof:
        aof.write(b"*3\r\n$3\r\nSET\r\n$14\r\nsession:t")  # a command cut off mid-write
    _refuses_to_start(stack, drill)

    with drill.step("bdr repair redis", "redis-check-aof on a copy") as step:
        report = api.repair(stack.config, "redis")
        step.detail = report.advice()
        assert report.verdict is api.RepairVerdict.FIXABLE, report.advice()
    with drill.step("bdr repair redis --yes") as step:
        applied = api.repair(stack.config, "redis", apply=True)
        step.detail = applied.advice()
        assert applied.applied
    with drill.step("service answering"):
        if not stack.redis.running():
            stack.redis.start()
        assert stack.redis.client().ping()
    with drill.step("verify") as step:
        step.detail = f"{stack.redis.client().dbsize()} keys loaded"
    drill.verified()

    drill.rto("redis_local_restore", note="repair path")
    for data_type in ("sessions", "rbac"):
        drill.rpo(data_type, writer.newest_surviving(data_type, fault), note="torn tail truncated")
    drill.evidence.update(repair=applied.to_dict())
    drill.assert_targets()


@pytest.mark.drill("redis_corruption", title="Redis corruption (b): beyond repair, restored from backup",
                   case="beyond_repair",
                   sources=("redis",), objectives=("rto redis_local_restore", "rpo sessions", "rpo rbac"))
def test_damage_beyond_repair_is_restored_from_the_latest_backup(stack: Stack, drill: Drill) -> None:
    writer = stack.start_writer()
    with drill.step("scheduled backup") as step, writer.paused():
        outcome = api.backup(stack.config, "redis")
        before = stack.fingerprint("redis")
        step.detail = outcome.manifest.id
    fault = drill.fault("the AOF base file is overwritten with garbage in its middle")
    stack.redis.kill()
    writer.stop()
    base = sorted((stack.redis.data_path() / "appendonlydir").glob("*.base.rdb"))[-1]
    raw = bytearray(base.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 64] = b"\xde\xad\xbe\xef" * 16
    base.write_bytes(bytes(raw))
    _refuses_to_start(stack, drill)

    with drill.step("bdr repair redis", "redis-check-aof/-rdb on a copy") as step:
        report = api.repair(stack.config, "redis")
        step.detail = report.advice()
        assert report.verdict is api.RepairVerdict.IMPOSSIBLE, report.advice()
        assert "bdr restore redis latest" in report.advice()
    with drill.step("restore", "bdr restore redis latest") as step:
        result = api.restore(stack.config, "redis", "latest")
        step.detail = ", ".join(f"{s.name} {format_duration(s.seconds)}" for s in result.steps)
    with drill.step("verify") as step:
        assert result.ok, result.checks
        step.detail = drill.fingerprints(before, stack.fingerprint("redis")) + "; " + "; ".join(
            f"{c.name}: {c.detail}" for c in result.checks)
    drill.verified()

    drill.rto("redis_local_restore", note="restore path")
    for data_type in ("sessions", "rbac"):
        drill.rpo(data_type, writer.newest_surviving(data_type, fault), note="newest backup")
    drill.evidence.update(backup_id=outcome.manifest.id, safety_backup=result.safety_id,
                          repair_verdict=report.advice())
    drill.assert_targets()
