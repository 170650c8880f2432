"""bdr killed (SIGKILL) at every step of a restore, on Redis started the ordinary ways, then the
documented recovery: nothing acknowledged is lost, Redis ends up running on its own address.

For each step the test: starts Redis the operator's way (not through bdr), backs it up with the
CLI, writes more (acknowledged), starts a writer, runs ``bdr restore redis latest`` armed to
kill itself at the step; then checks what every command says about the instance (``bdr backup``
refuses, exit 13; ``bdr status`` names the interrupted restore), and recovers:

- ``--abort``: the data from before the restore is back, every acknowledged write with it;
- ``--resume``: the backup is restored and verified.

Either way Redis runs on its own port and address only (under its supervisor, when it has one),
the journal is closed and no work directory is left in the data directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.harness import KILLED, AckWriter, bdr, listening_addresses, step_started, work_dirs, write_config
from tests.operators import OperatorRedis, Operators

STEPS = ["fetch", "check", "safety-backup", "stop", "replace", "swap", "start", "verify", "finish"]
"""Failpoints ``restore.<step>`` (just before the step runs) and ``restore.swap`` (after the first entry swapped)."""
UNTOUCHED = ("fetch", "check", "safety-backup")
SHORT = ["stop", "swap", "verify"]
"""For the other ways Redis is run: the step after the stop, in the middle of the swap, the new data running."""
OTHER_WAYS = [
    ("args", "stop", "resume"), ("args", "swap", "abort"), ("args", "verify", "resume"),
    ("daemon", "stop", "abort"), ("daemon", "swap", "resume"), ("daemon", "verify", "abort"),
    ("supervisord", "stop", "abort"), ("supervisord", "swap", "resume"), ("supervisord", "verify", "resume"),
]
"""Each way killed at each of the ``SHORT`` steps once, and every way and every step recovered both ways
(pairwise: the shell case above runs every step x both recoveries; the full product, 18 cases, cost the
2-core CI about 1.5 minutes more for pairs that exercise no code these nine do not)."""
RDB_ONLY = [("stop", "abort"), ("swap", "resume"), ("verify", "abort"), ("verify", "resume")]


def failpoint(step: str) -> str:
    return f"restore.{step}:kill" if step != "swap" else "restore.swap:kill@1"


def prepare(op: OperatorRedis, tmp_path: Path) -> tuple[Path, dict[bytes, bytes]]:
    config = write_config(tmp_path / "bdr.yaml", op)
    backed_up = op.fill(300)
    made = bdr(config, "backup", "redis")
    assert made.code == 0, made.output
    op.client().set("written:after:backup", "1")
    return config, backed_up


def check_recovered(op: OperatorRedis, config: Path, backed_up: dict[bytes, bytes], writer: AckWriter,
                    restored: bool, acked_before: float | None = None) -> None:
    client = op.client()
    assert client.ping()
    assert listening_addresses(op.port) == {"127.0.0.1"}, "Redis must listen where it was configured, only there"
    assert all(client.get(k) == v for k, v in backed_up.items())
    if restored:
        assert client.get("written:after:backup") is None, "the backup (taken before that write) was restored"
    else:
        assert client.get("written:after:backup") == b"1"
        assert writer.missing(acked_before) == [], "an acknowledged write was lost"
    assert work_dirs(op.data_dir) == []
    after = bdr(config, "backup", "redis")
    assert after.code == 0, after.output  # the instance is usable again: no interrupted restore left
    if op.supervisord is not None:
        assert "RUNNING" in op.supervisord.run("status", "redis", check=False).stdout, \
            "Redis must run under its supervisor again"


def recover(config: Path, recovery: str) -> float | None:
    """Run ``bdr restore redis --RECOVERY``; returns the time after which acknowledged writes may be lost.

    An ``--abort`` refuses (exit 1) when the restored server already took writes: they were made
    to the restored data (in the instant before bdr held writes back) and a rollback would drop
    them. The operator then decides: ``--abort --force`` drops them, and only them.
    """
    recovered = bdr(config, "restore", "redis", f"--{recovery}")
    if recovery == "abort" and recovered.code == 1 and "would lose them" in recovered.stderr:
        forced = bdr(config, "restore", "redis", "--abort", "--force")
        assert forced.code == 0, forced.output
        return step_started(config.parent / "repo", "start")
    assert recovered.code == 0, recovered.output
    return None


def kill_restore_at(op: OperatorRedis, config: Path, step: str) -> AckWriter:
    writer = AckWriter(op).start()
    killed = bdr(config, "restore", "redis", "latest", "--yes", failpoints=failpoint(step))
    writer.stop()
    assert killed.code == KILLED, killed.output
    return writer


@pytest.mark.parametrize("recovery", ["abort", "resume"])
@pytest.mark.parametrize("step", STEPS)
def test_killed_at_every_step_of_a_restore_of_redis_started_from_a_shell(
        operators: Operators, tmp_path: Path, step: str, recovery: str) -> None:
    op = operators.start("shell")  # redis-server redis.conf from a shell: relative config, dir ./, AOF on
    config, backed_up = prepare(op, tmp_path)
    writer = kill_restore_at(op, config, step)

    refused = bdr(config, "backup", "redis")
    assert refused.code == 13, refused.output
    (line,) = refused.error_lines
    assert f"was interrupted at step '{step.replace('-', ' ') if step != 'swap' else 'replace'}'" in line
    assert "bdr restore redis --resume --target production" in line and "--abort" in line
    status = bdr(config, "status", "redis")
    assert status.code == 13 and "INTERRUPTED" in status.stdout, status.output

    dropped_after = recover(config, recovery)
    restored = recovery == "resume" or step == "finish"  # a restore killed after its verification stays done
    check_recovered(op, config, backed_up, writer, restored, dropped_after)


@pytest.mark.parametrize(("way", "step", "recovery"), OTHER_WAYS)
def test_killed_mid_restore_of_redis_run_other_ways(
        operators: Operators, tmp_path: Path, way: str, step: str, recovery: str) -> None:
    op = operators.start(way)
    config, backed_up = prepare(op, tmp_path)
    writer = kill_restore_at(op, config, step)
    dropped_after = recover(config, recovery)
    check_recovered(op, config, backed_up, writer, recovery == "resume", dropped_after)


@pytest.mark.parametrize(("step", "recovery"), RDB_ONLY)
def test_killed_mid_restore_of_an_rdb_only_instance(
        operators: Operators, tmp_path: Path, step: str, recovery: str) -> None:
    op = operators.start("shell", args="--appendonly no")
    config, backed_up = prepare(op, tmp_path)
    writer = kill_restore_at(op, config, step)
    dropped_after = recover(config, recovery)
    assert op.client().config_get("appendonly")["appendonly"] == "no"
    check_recovered(op, config, backed_up, writer, recovery == "resume", dropped_after)


def test_killed_during_the_rollback_of_a_failed_restore(operators: Operators, tmp_path: Path) -> None:
    op = operators.start("shell")
    config, backed_up = prepare(op, tmp_path)
    writer = AckWriter(op).start()
    killed = bdr(config, "restore", "redis", "latest", "--yes",
                 failpoints="restore.verify:error,restore.unswap:kill")
    writer.stop()
    assert killed.code == KILLED, killed.output
    status = bdr(config, "status", "redis")
    assert status.code == 13 and "rolling back" in status.stdout, status.output
    finished = bdr(config, "restore", "redis", "--resume")  # --resume of a rollback finishes the rollback
    assert finished.code == 0, finished.output
    # writes the restored server acknowledged (after its start, before its rollback) are to the restored data:
    # a rollback drops them, and says how many; none acknowledged before it started may be lost
    check_recovered(op, config, backed_up, writer, restored=False,
                    acked_before=step_started(tmp_path / "repo", "start"))


def test_abort_refuses_to_drop_writes_taken_since_the_restored_server_started(
        operators: Operators, tmp_path: Path) -> None:
    op = operators.start("shell")
    config, _ = prepare(op, tmp_path)
    kill_restore_at(op, config, "verify")  # the restored data runs; bdr died before it was verified
    op.client().execute_command("CLIENT", "UNPAUSE")  # the pause bdr held ends on its own within 30 s
    op.client().set("written:to:restored:data", "1")
    refused = bdr(config, "restore", "redis", "--abort")
    assert refused.code == 1 and "would lose them" in refused.stderr, refused.output
    assert op.client().get("written:to:restored:data") == b"1"
    kept = bdr(config, "restore", "redis", "--resume")
    assert kept.code == 0, kept.output
    assert op.client().get("written:to:restored:data") == b"1"
