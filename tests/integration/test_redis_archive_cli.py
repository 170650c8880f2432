"""``bdr archive`` and ``bdr restore --to-time`` as an operator runs them: processes, exit codes, kills, resume.

The archiver runs as ``bdr archive redis`` (a process, stopped with SIGTERM); restores are
``bdr restore redis --to-time`` subprocesses, one killed (SIGKILL, at a failpoint) in the middle and
finished with ``--resume``, one rolled back with ``--abort``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bdr.engines.redis.archive.spool import read_status
from bdr.runtime.process import RedisProcess
from bdr.util.waiting import wait_for
from tests.faults.harness import KILLED, bdr

WAIT = 60.0


def policy(tmp_path: Path, server: RedisProcess) -> Path:
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump({
        "repository": str(tmp_path / "repo"),
        "redis": {"production": {"url": server.instance.url, "password_env": None,
                                 "data_dir": server.instance.data_dir,
                                 "start_args": list(server.instance.start_args)}},
        "archive": {"redis": {"production": {"segment_seconds": "0.5s", "max_lag": "30s"}}},
    }))
    return path


def spool(tmp_path: Path) -> Path:
    return tmp_path / "repo" / "journal" / "archive" / "redis-production"


def quiet_moment() -> str:
    time.sleep(0.05)
    moment = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    time.sleep(0.05)
    return moment


def covered(tmp_path: Path) -> int:
    return int((read_status(spool(tmp_path)) or {}).get("covered_until_us") or 0)


@pytest.fixture
def archiver(tmp_path: Path, redis_rdb: RedisProcess) -> subprocess.Popen[str]:
    config = policy(tmp_path, redis_rdb)
    process = subprocess.Popen([sys.executable, "-m", "bdr.cli.main", "--config", str(config), "--json", "archive",
                                "redis"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)

    def streaming() -> bool:
        status = read_status(spool(tmp_path)) or {}
        return bool(status.get("pid") == process.pid and status.get("connected") and not status.get("catching_up")
                    and status.get("covered_until_us"))

    assert wait_for(streaming, WAIT, 0.05), "bdr archive redis did not start streaming"
    return process


def test_the_operators_commands(tmp_path: Path, redis_rdb: RedisProcess, archiver: subprocess.Popen[str]) -> None:
    config = tmp_path / "bdr.yaml"
    client = redis_rdb.client()
    for i in range(200):
        client.set(f"user:{i}", f"u{i}")
    wanted = {k: client.get(k) for k in client.scan_iter(count=1000)}
    moment = quiet_moment()
    client.delete(*[f"user:{i}" for i in range(200)])
    client.set("written:after", "1")
    now = time.time()
    assert wait_for(lambda: covered(tmp_path) >= int(now * 1e6), WAIT, 0.05)

    listed = bdr(config, "archive", "list", "--json")
    assert listed.code == 0, listed.output
    (entry,) = json.loads(listed.stdout)
    assert entry["running"] and entry["windows"] and not entry["problems"]

    dry = bdr(config, "restore", "redis", "--to-time", moment, "--dry-run", "--json")
    assert dry.code == 0, dry.output
    assert "(dry run, nothing changed)" in json.loads(dry.stdout)["facts"]["would"][0]
    future = bdr(config, "restore", "redis", "--to-time", "2099-01-01T00:00:00Z", "--yes")
    assert future.code == 4 and "reachable: the earliest" in future.stderr, future.output
    no_zone = bdr(config, "restore", "redis", "--to-time", moment.removesuffix("Z"), "--yes")
    assert no_zone.code == 2 and "time zone" in no_zone.stderr, no_zone.output
    not_redis = bdr(config, "restore", "qdrant", "--to-time", moment, "--yes")
    assert not_redis.code == 2, not_redis.output

    killed = bdr(config, "restore", "redis", "--to-time", moment, "--yes", failpoints="restore.check.after:kill")
    assert killed.code == KILLED, killed.output
    assert bdr(config, "status", "redis").code == 13
    resumed = bdr(config, "restore", "redis", "--resume", "--json")
    assert resumed.code == 0, resumed.output
    assert json.loads(resumed.stdout)["facts"]["installed_from"].startswith("base ")
    assert {k: client.get(k) for k in client.scan_iter(count=1000)} == wanted

    client = redis_rdb.client()
    client.set("after:the:restore", "kept by the abort")
    aborted_run = bdr(config, "restore", "redis", "--to-time", moment, "--yes", failpoints="restore.start:kill")
    assert aborted_run.code == KILLED, aborted_run.output
    aborted = bdr(config, "restore", "redis", "--abort")
    assert aborted.code == 0, aborted.output
    assert redis_rdb.client().get("after:the:restore") == b"kept by the abort"

    pruned = bdr(config, "archive", "prune", "--dry-run", "--json")
    assert pruned.code == 0 and json.loads(pruned.stdout)[0]["dry_run"], pruned.output

    archiver.send_signal(signal.SIGTERM)
    out, err = archiver.communicate(timeout=90)
    assert archiver.returncode == 0, err
    summary = json.loads(out)
    assert summary["segments_sealed"] >= 1 and summary["bases_taken"] >= 1
    status = read_status(spool(tmp_path))
    assert status is not None and not status["running"] and status["state"] == "stopped"
