"""Runbook: "Redis restart" (RTO < 1 minute).

Symptoms: the Redis process died (OOM kill, node reboot, ``kill -9``).
Recovery: start it again; it reloads its AOF. bdr is not even needed: what the drill proves
is that the persistence settings keep their promise, i.e. the restart is fast and no
acknowledged write older than the ``appendfsync everysec`` window is lost.
"""

from __future__ import annotations

import pytest

from drills.recorder import Drill
from drills.stack import Stack

pytestmark = pytest.mark.drill("redis_restart", title="Redis restart after kill -9", sources=("redis",),
                                objectives=("rto redis_restart", "rpo sessions", "rpo rbac"))

EVERYSEC_WINDOW = 2.0
"""appendfsync everysec: Redis fsyncs once a second, so a crash may lose up to ~1-2 s of writes."""


def test_redis_restart(stack: Stack, drill: Drill) -> None:
    writer = stack.start_writer()
    keys_before = stack.redis.client().dbsize()

    fault = drill.fault("kill -9 redis-server while the application writes")
    stack.redis.kill()
    writer.stop()
    with drill.step("detected") as step:
        assert not stack.redis.running()
        step.detail = "PING fails"
    with drill.step("restart", "redis-server started with its own configuration"):
        stack.redis.start()
    with drill.step("service answering") as step:
        assert stack.redis.client().ping()
        step.detail = "PING answered, loading finished"
    with drill.step("verify") as step:
        keys_after = stack.redis.client().dbsize()
        step.detail = f"{keys_after} keys after, {keys_before} before the writer's last writes"
        assert keys_after >= keys_before
    drill.verified()

    drill.rto("redis_restart")
    for data_type in ("sessions", "rbac"):
        newest = writer.newest_surviving(data_type, fault)
        drill.rpo(data_type, newest, note="AOF everysec")
        drill.check("loss window", f"{data_type} (appendfsync everysec)", EVERYSEC_WINDOW,
                    None if newest is None else fault - newest,
                    note="no acknowledged write lost beyond the persistence setting")
    drill.evidence.update(keys_before=keys_before, keys_after=keys_after,
                          acknowledged_writes={t: len(writer.acknowledged(t, fault)) for t in ("sessions", "rbac")},
                          redis=stack.redis.describe())
    drill.assert_targets()
