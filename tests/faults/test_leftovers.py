"""What killed or failed bdr runs leave behind, and who cleans it up.

- A restore killed after its fetch leaves its work directory (``<data dir>/.bdr-restore-*``,
  with an owner marker: pid, host, process start). If its journal is then removed by hand,
  the next restore of that instance removes the directory (the marker proves its owner
  dead); a directory without a marker, or with the marker of a live process, is left alone.
- The read marker a killed restore left (``locks/read-<set>-<pid>-*.json``) is removed by the
  next run that holds the repository lock.
- A start of Redis that fails in a restore (its config file made unreadable after the
  preflight, or a failpoint) leaves no redis-server of bdr's running, and the rollback brings
  Redis back on its data from before; when the rollback cannot start it either, nothing is
  left running and ``--abort`` brings it back once the cause is fixed.
- A restore killed while its temporary redis-server converts an old script's AOF leaves no
  redis-server running once it is aborted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from bdr.runtime import procfs
from bdr.util.host import process_start_time
from tests.faults.harness import (
    BDR,
    KILLED,
    backup_ok,
    bdr,
    bdr_acting,
    journal_files,
    listening_addresses,
    read_markers,
    redis_servers_of,
    resp,
    work_dirs,
    write_config,
)
from tests.operators import OperatorRedis, Operators


def production(operators: Operators, tmp_path: Path, way: str = "shell") -> tuple[OperatorRedis, Path, str]:
    op = operators.start(way)
    config = write_config(tmp_path / "bdr.yaml", op)
    op.fill(200)
    set_id = backup_ok(config)
    op.client().set("written:after:backup", "1")
    return op, config, set_id


def test_the_work_dir_of_a_killed_restore_is_removed_by_the_next_restore(operators: Operators,
                                                                        tmp_path: Path) -> None:
    op, config, set_id = production(operators, tmp_path)
    killed = bdr(config, "restore", "redis", set_id, "--yes", failpoints="restore.safety-backup:kill")
    assert killed.code == KILLED, killed.output
    (left,) = work_dirs(op.data_dir)
    owner = json.loads((op.data_dir / left / "owner.json").read_text())
    assert owner["host"] == socket.gethostname() and not Path(f"/proc/{owner['pid']}").exists()
    (tmp_path / "repo" / "journal" / "redis-production.json").unlink()  # the operator removed the journal by hand

    by_hand = op.data_dir / ".bdr-restore-kept-by-hand"  # no marker: nothing proves bdr left it
    by_hand.mkdir()
    (by_hand / "notes.txt").write_text("mine")
    running = op.data_dir / ".bdr-restore-running"  # the marker of a live process: a restore at work
    running.mkdir()
    (running / "owner.json").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                    "process_start": process_start_time(os.getpid())}))

    restored = bdr(config, "restore", "redis", set_id, "--yes")
    assert restored.code == 0, restored.output
    assert "removed 1 leftover work dir" in restored.output
    assert work_dirs(op.data_dir) == sorted([by_hand.name, running.name])
    assert (by_hand / "notes.txt").read_text() == "mine"
    assert op.client().get("written:after:backup") is None


def test_the_read_marker_of_a_killed_restore_is_removed_by_the_next_lock_holder(operators: Operators,
                                                                               tmp_path: Path) -> None:
    op, config, set_id = production(operators, tmp_path)
    repository = tmp_path / "repo"
    killed = bdr(config, "restore", "redis", set_id, "--yes", failpoints="restore.verify:kill")
    assert killed.code == KILLED, killed.output
    (marker,) = read_markers(repository)
    assert set_id in marker
    resumed = bdr(config, "restore", "redis", "--resume")
    assert resumed.code == 0, resumed.output
    backup_ok(config)  # takes the repository lock: sweeps what dead runs left
    assert read_markers(repository) == []

    killed = bdr(config, "restore", "redis", set_id, "--yes", failpoints="restore.check:kill")
    assert killed.code == KILLED and len(read_markers(repository)) == 1
    assert bdr(config, "restore", "redis", "--abort").code == 0
    assert bdr(config, "restore", "redis", set_id, "--yes").code == 0  # its safety backup takes the lock
    assert read_markers(repository) == [] and work_dirs(op.data_dir) == []


def assert_back_as_before(op: OperatorRedis, config: Path) -> None:
    client = op.client()
    assert client.get("written:after:backup") == b"1", "the data from before the restore is not back"
    assert redis_servers_of(op) == {op.pid()}, "a redis-server of the failed start is still running"
    assert listening_addresses(op.port) == {"127.0.0.1"}
    assert client.info("persistence")["aof_enabled"] == 1, "Redis is back without its AOF"
    assert journal_files(config.parent / "repo") == [] and work_dirs(op.data_dir) == []


def test_a_start_that_fails_is_rolled_back_with_nothing_left_running(operators: Operators, tmp_path: Path) -> None:
    op, config, set_id = production(operators, tmp_path, way="user")  # Redis as the redis user: mode bits count
    assert op.config_file is not None
    conf = op.config_file

    failed = bdr_acting(config, "restore", "redis", set_id, "--yes",
                        failpoints="restore.replace.after:sleep=0.5,restore.rollback:sleep=0.5",
                        actions={"restore.replace.after": lambda: conf.chmod(0o600),  # after the preflight
                                 "restore.rollback": lambda: conf.chmod(0o644)})
    assert failed.code == 10, failed.output
    (line,) = failed.error_lines
    assert "failed at step 'start'" in line and "rolled back" in line, line
    assert_back_as_before(op, config)


def test_a_start_failing_after_the_start_is_rolled_back(operators: Operators, tmp_path: Path) -> None:
    op, config, set_id = production(operators, tmp_path)
    failed = bdr(config, "restore", "redis", set_id, "--yes", failpoints="restore.start.after:error")
    assert failed.code == 10, failed.output
    assert "stopped the restored server" in failed.error_lines[0], failed.stderr
    assert_back_as_before(op, config)


def test_a_rollback_that_cannot_start_redis_leaves_nothing_running(operators: Operators, tmp_path: Path) -> None:
    op, config, set_id = production(operators, tmp_path, way="user")
    assert op.config_file is not None
    conf = op.config_file
    failed = bdr_acting(config, "restore", "redis", set_id, "--yes", failpoints="restore.replace.after:sleep=0.5",
                        actions={"restore.replace.after": lambda: conf.chmod(0o600)})
    assert failed.code == 12, failed.output
    assert redis_servers_of(op) == set() and op.pid() is None, "a redis-server bdr started is left running"
    status = bdr(config, "status", "redis")
    assert status.code == 13 and "rollback failed" in status.stdout, status.output
    conf.chmod(0o644)  # the operator fixes the cause
    aborted = bdr(config, "restore", "redis", "--abort")
    assert aborted.code == 0, aborted.output
    assert_back_as_before(op, config)


def temporary_server_of(op: OperatorRedis) -> int | None:
    """The pid of a temporary redis-server a restore of ``op`` runs in its work directory, if any."""
    for pid in redis_servers_of(op):
        facts = procfs.read_process(pid)
        if facts is not None and "/.bdr-restore-" in (facts.cwd or ""):
            return pid
    return None


def test_a_restore_killed_while_its_temporary_server_runs_leaves_none(operators: Operators, tmp_path: Path) -> None:
    op, config, _ = production(operators, tmp_path)
    old = tmp_path / "redis_backup_20250124_020000"
    old.mkdir()
    with (old / "appendonly.aof").open("wb") as aof:  # big enough to take a moment to load
        aof.write(resp(b"SELECT", b"0"))
        for start in range(0, 400_000, 1000):
            aof.write(b"".join(resp(b"SET", b"k%d" % i, b"v" * 20) for i in range(start, start + 1000)))
    restore = subprocess.Popen([*BDR, "--config", str(config), "restore", "redis", str(old), "--yes"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    temporary = None
    try:
        deadline = time.monotonic() + 60
        while temporary is None and restore.poll() is None and time.monotonic() < deadline:
            temporary = temporary_server_of(op)
            time.sleep(0.005)
        restore.send_signal(signal.SIGKILL)  # bdr killed while the temporary server loads the old AOF
        restore.wait()
        assert temporary is not None, "no temporary redis-server was seen: nothing was tested"
        aborted = bdr(config, "restore", "redis", "--abort")
        assert aborted.code == 0, aborted.output
        assert op.client().get("written:after:backup") == b"1"
        assert redis_servers_of(op) == {op.pid()}, f"the temporary redis-server (pid {temporary}) is still running"
    finally:
        if restore.poll() is None:
            restore.kill()
        if temporary is not None and procfs.alive(temporary):
            with contextlib.suppress(ProcessLookupError):
                os.kill(temporary, signal.SIGKILL)
