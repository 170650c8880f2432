"""Continuous archiving and point-in-time restore: the runbook's "bad DEL at 14:05" and its neighbours.

Production Redis is archived continuously by ``bdr archive redis`` (a process of its own, as
the systemd unit ``bdr schedule`` writes runs it) while the application writes acknowledged,
timestamped sessions and RBAC grants. Then:

- **accidental deletion**: ``DEL`` of every ``user:*`` key; ``bdr restore redis --to-time`` the
  second before it. Every user key is back, every write acknowledged before that moment is there,
  none written after it (the ``DEL`` included) comes back;
- **total loss**: the data directory is gone; ``bdr restore redis --to-time latest``. The data lost
  is measured from the writer's acknowledgements: seconds (the archive lag), not the 30 minutes
  between two scheduled backups;
- **archiver killed**: ``kill -9`` of the archiver while the application writes, then a restart: it
  resumes with ``PSYNC`` (or takes a new base and says so), the archive has no missing segment, the
  moments it was away are reported as a blind span (writes happened then) and nothing else, and a
  restore into the ``test`` instance to a moment after the restart has every write up to it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bdr import api
from bdr.util.durations import format_duration
from drills.archiver import ArchiverProcess, midpoint_between_acks
from drills.recorder import Drill
from drills.stack import Stack
from drills.writer import AckWriter

pytestmark = pytest.mark.drill("pitr_restore", title="Point-in-time restore from the continuous archive",
                               sources=("redis",))


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def archiver(stack: Stack) -> Iterator[ArchiverProcess]:
    process = ArchiverProcess(stack.config, stack.root / "archiver").start()
    try:
        process.wait_streaming()
        yield process
    finally:
        process.stop()


def all_acks(writer: AckWriter) -> list[tuple[int, float]]:
    return sorted((a for c in writer.channels.values() for a in c.acks), key=lambda a: a[1])


def split_by(writer: AckWriter, data_type: str, moment: float) -> tuple[list[int], list[int]]:
    """The writes of ``data_type`` acknowledged before ``moment`` and those after it, by whether they exist."""
    channel = writer.channels[data_type]
    before = [seq for seq, at in channel.acks if at <= moment]
    after = [seq for seq, at in channel.acks if at > moment]
    present_before = [s for s, there in zip(before, channel.exists(before), strict=True) if there]
    present_after = [s for s, there in zip(after, channel.exists(after), strict=True) if there]
    return [s for s in before if s not in set(present_before)], present_after


@pytest.mark.drill("pitr_restore", title="Point-in-time restore: a bad DEL undone to the second before it",
                   case="accidental_deletion", sources=("redis",),
                   objectives=("rto redis_local_restore", "rpo sessions", "rpo rbac"))
def test_accidental_deletion_is_undone_to_the_second_before_it(stack: Stack, drill: Drill,
                                                               archiver: ArchiverProcess) -> None:
    config = archiver.config
    writer = stack.start_writer()
    time.sleep(1.5)
    users = stack.redis_dump("user:*")
    fault = drill.fault(f"DEL of {len(users)} user:* keys by mistake, while the application writes")
    stack.redis.client().delete(*users)
    time.sleep(1.0)  # the application goes on writing after the mistake: none of it may come back
    with drill.step("detected") as step:
        assert not list(stack.redis.client().scan_iter(match="user:*", count=1000))
        writer.stop()
        moment = midpoint_between_acks(all_acks(writer), fault - 1.0)
        step.detail = f"user:* gone; restore point {iso(moment)}, the second before the DEL at {iso(fault)}"
    with drill.step("archived", "bdr archive list") as step:
        archiver.wait_archived(time.time())
        status = api.archive_status(config, "production")
        step.detail = f"window {status.windows[-1].describe()}, lag {format_duration(status.lag_seconds or 0)}"
    with drill.step("dry run", f"bdr restore redis --to-time {iso(moment)} --dry-run") as step:
        dry = api.restore(config, "redis", None, to_time=iso(moment), dry_run=True)
        step.detail = dry.facts["would"][0][:400]
    with drill.step("restore", f"bdr restore redis --to-time {iso(moment)}") as step:
        result = api.restore(config, "redis", None, to_time=iso(moment))
        facts = result.facts["point_in_time"]
        step.detail = (f"base {facts['base']} + {len(facts['segments'])} segment(s) up to the command received at "
                          f"{facts['last_command_at']} (precision {facts['precision_seconds']}s); safety backup "
                          f"{result.safety_id}")
    with drill.step("verify") as step:
        assert result.ok, [c for c in result.checks if not c.ok]
        assert stack.redis_dump("user:*") == users, "the deleted keys are not all back as they were"
        lost = {}
        for data_type in ("sessions", "rbac"):
            missing, resurrected = split_by(writer, data_type, moment)
            assert not missing, f"{len(missing)} {data_type} write(s) acknowledged before {iso(moment)} are missing"
            assert not resurrected, f"{len(resurrected)} {data_type} write(s) made after {iso(moment)} came back"
            lost[data_type] = len([a for a in writer.channels[data_type].acks if a[1] > moment])
        step.detail = (f"{len(users)} user keys back; every write acknowledged before {iso(moment)} is there, "
                          f"none after ({lost['sessions']} sessions, {lost['rbac']} grants and the DEL undone)")
    drill.verified()
    drill.rto("redis_local_restore", note="point-in-time restore, the archiver's replay included")
    for data_type in ("sessions", "rbac"):
        newest = writer.newest_surviving(data_type, moment)
        drill.check("rpo", data_type, drill.policy.rpo(data_type),
                    None if newest is None else max(0.0, moment - newest),
                    note="from the restore point: the newest write before it that came back")
    drill.evidence.update(point_in_time=facts, deleted_keys=len(users), restore_point=iso(moment),
                          delete_at=iso(fault), safety_id=result.safety_id)
    drill.assert_targets()


@pytest.mark.drill("pitr_restore", title="Point-in-time restore: total loss, RPO in seconds",
                   case="total_loss", sources=("redis",),
                   objectives=("rto redis_local_restore", "rpo sessions", "rpo rbac"))
def test_total_loss_restores_to_the_latest_archived_second(stack: Stack, drill: Drill,
                                                           archiver: ArchiverProcess) -> None:
    config = archiver.config
    writer = stack.start_writer()
    time.sleep(2.0)
    fault = drill.fault("production Redis lost with its data directory while the application writes")
    stack.redis.kill()
    writer.stop()
    lost = stack.lose_redis()
    with drill.step("detected") as step:
        assert not stack.redis.running()
        step.detail = f"Redis down ({lost})"
    with drill.step("archive sealed", "bdr archive list") as step:
        status = archiver.wait(lambda s: not s.get("connected") and not s.get("segments_pending"),
                               "seal what it had")
        step.detail = f"the archiver sealed and delivered up to {status.get('covered_until')}"
    with drill.step("services recreated", "docker compose up -d, on a rebuilt host") as step:
        step.detail = stack.recreate_redis()
    with drill.step("restore", "bdr restore redis --to-time latest") as step:
        result = api.restore(config, "redis", None, to_time="latest")
        facts = result.facts["point_in_time"]
        step.detail = f"base {facts['base']} + {len(facts['segments'])} segment(s) up to {facts['last_command_at']}"
    with drill.step("verify") as step:
        assert result.ok, [c for c in result.checks if not c.ok]
        assert stack.redis.client().ping()
        survived = {t: writer.newest_surviving(t, fault) for t in ("sessions", "rbac")}
        assert all(v is not None for v in survived.values())
        step.detail = ", ".join(f"{t}: newest write back from {format_duration(fault - v)} before the loss"
                                   for t, v in survived.items() if v is not None)
    drill.verified()
    drill.rto("redis_local_restore", note="point-in-time restore to the latest archived moment")
    for data_type in ("sessions", "rbac"):
        drill.rpo(data_type, survived[data_type], note="continuous archive (segments every "
                  f"{format_duration(archiver.settings.segment_seconds)})")
    drill.evidence.update(point_in_time=facts, archiver=archiver.status())
    drill.assert_targets()


@pytest.mark.drill("pitr_restore", title="Point-in-time restore: the archiver killed and restarted",
                   case="archiver_killed", sources=("redis",), objectives=("rpo sessions", "rpo rbac"))
def test_an_archiver_killed_mid_stream_resumes_without_a_gap(stack: Stack, drill: Drill,
                                                             archiver: ArchiverProcess) -> None:
    config = archiver.config
    writer = stack.start_writer()
    time.sleep(1.0)
    fault = drill.fault("the archiver killed (SIGKILL) while the application writes")
    archiver.kill()
    time.sleep(1.0)  # writes go on while it is down
    with drill.step("restarted", "systemctl restart bdr-archive-redis-production") as step:
        archiver.start()
        status = archiver.wait_streaming()
        resumed = "a new base" if status.get("new_bases") else "PSYNC (the master's backlog held the offset)"
        step.detail = f"resumed by {resumed}" + (f": {status['last_new_base']['reason']}"
                                                    if status.get("last_new_base") else "")
    time.sleep(1.0)
    writer.stop()
    after = midpoint_between_acks(all_acks(writer), time.time() - 0.5)
    before = midpoint_between_acks(all_acks(writer), fault - 0.5)
    with drill.step("windows", "bdr archive list") as step:
        archiver.wait_archived(time.time())
        report = api.archive_status(config, "production")
        kinds = [w.opened_by for w in report.windows]
        if status.get("new_bases"):
            assert kinds.count("base") == 2, f"a new base must open a window of its own: {kinds}"
        else:
            assert kinds == ["base", "blind span"], f"PSYNC: one stream, one blind span while it was away: {kinds}"
        blind = (report.windows[-1].from_us - report.windows[-2].to_us) / 1e6
        assert report.windows[-2].to_us / 1e6 <= fault + 0.5 and blind < 30, "the blind span is not the downtime"
        step.detail = "; ".join(f"{w.describe()} ({w.opened_by})" for w in report.windows) + \
            f"; away {format_duration(blind)} (writes were made meanwhile: those moments are a blind span)"
    with drill.step("restore", f"bdr restore redis --to-time {iso(after)} --target test") as step:
        early = api.restore(config, "redis", None, to_time=iso(before), target="test", dry_run=True)
        result = api.restore(config, "redis", None, to_time=iso(after), target="test")
        step.detail = result.facts["point_in_time"]["last_command_at"]
    with drill.step("verify") as step:
        assert early.ok and result.ok, [c for c in result.checks if not c.ok]
        test = stack.redis_test.client()
        for data_type, prefix in (("sessions", "session:drill:"), ("rbac", "rbac:grant:drill:")):
            acks = writer.channels[data_type].acks
            wanted = [seq for seq, at in acks if at <= after]
            present = test.pipeline(transaction=False)
            for seq in wanted:
                present.exists(f"{prefix}{seq:09d}")
            assert all(present.execute()), f"{data_type}: a write before {iso(after)} is missing in test"
        step.detail = f"every write acknowledged before {iso(after)} is in test, before and after the kill"
    drill.verified()
    lag = float(archiver.status().get("lag_seconds") or 0.0)
    for data_type in ("sessions", "rbac"):
        drill.check("rpo", data_type, drill.policy.rpo(data_type), lag, note="archive lag after the restart")
    drill.evidence.update(resumed_by=resumed, windows=[w.to_dict() for w in report.windows],
                          archiver=archiver.status())
    drill.assert_targets()
