"""``bdr schedule``: units systemd accepts, that fire when cron would, that run bdr as written, and that
``bdr lint`` holds to the RPO once installed."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bdr.lint.schedule import parse_cron
from bdr.monitoring.metrics import read_state
from bdr.repository import Repository
from bdr.runtime.process import RedisProcess

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed "
                                           "(apt-get install systemd)")


def bdr(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bdr.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def policy(tmp_path: Path, server: RedisProcess | None = None, **changes: Any) -> Path:
    redis: dict[str, Any] = {"production": {"url": server.instance.url if server else "redis://127.0.0.1:6379/0",
                                            "password_env": None},
                             "test": {"url": "redis://127.0.0.1:6380/0", "backup": False}}
    if server is not None:
        redis["production"].update(data_dir=server.instance.data_dir, start_args=list(server.instance.start_args))
    data: dict[str, Any] = {
        "repository": str(tmp_path / "repo"),
        "redis": redis,
        "qdrant": {"production": {"path": str(tmp_path / "qdrant")}},
        "files": {"root": str(tmp_path / "conf"), "paths": ["*.yml"], "secrets": []},
        "remote": {"url": "s3://bucket/bdr"},
        "metrics_textfile": str(tmp_path / "metrics" / "bdr.prom"),
        "schedule": {"redis": "*/30 * * * *", "qdrant": "0 */12 * * *", "config": "0 2 * * *",
                     "offsite": "0 3 * * *", "prune": "30 4 * * *",
                     "verify": {"cron": "0 5 * * *", "restore_test": True}, "drill": "0 6 1 * *"},
        **changes,
    }
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def unit_setting(path: Path, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in path.read_text().splitlines() if line.startswith(f"{key}=")]


@needs_systemd_analyze
def test_the_units_pass_systemd_analyze_verify_and_reinstall_cleanly(tmp_path: Path) -> None:
    config = policy(tmp_path)
    units = tmp_path / "units"
    installed = bdr("--config", str(config), "schedule", "--install", "--dir", str(units))
    assert installed.returncode == 0, installed.stderr
    names = sorted(p.name for p in units.iterdir())
    assert names == sorted(f"bdr-{job}.{kind}" for kind in ("service", "timer") for job in (
        "backup-redis-production", "backup-qdrant-production", "backup-config", "offsite-all", "prune",
        "drill", "verify-redis-production", "verify-qdrant-production", "verify-config", "verify-all"))
    assert "bdr-backup-redis-test" not in " ".join(names)  # backup: false, a restore target
    assert "not enabled yet: systemctl daemon-reload && systemctl enable --now" in installed.stdout

    assert SYSTEMD_ANALYZE is not None
    verified = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", *sorted(str(p) for p in units.iterdir())],
                              capture_output=True, text=True, timeout=120, check=False)
    assert verified.returncode == 0 and verified.stdout + verified.stderr == "", verified.stderr

    service = units / "bdr-backup-redis-production.service"
    [start] = unit_setting(service, "ExecStart")
    assert start.endswith(f"--config {config} --wait-lock 30m backup redis --instance production")
    assert unit_setting(service, "ExecStopPost")[0].endswith(f"--config {config} metrics write")
    assert unit_setting(units / "bdr-backup-redis-production.timer", "Persistent") == ["true"]
    assert unit_setting(units / "bdr-drill.service", "ExecStart")[0].endswith("drill --live")

    again = bdr("--config", str(config), "--json", "schedule", "--install", "--dir", str(units))
    assert json.loads(again.stdout)["written"] == [] and len(json.loads(again.stdout)["unchanged"]) == 20

    foreign = units / "bdr-something-else.service"
    foreign.write_text("[Service]\nExecStart=/bin/true\n")
    data = yaml.safe_load(config.read_text())
    del data["schedule"]["prune"], data["schedule"]["drill"]
    config.write_text(yaml.safe_dump(data))
    smaller = json.loads(bdr("--config", str(config), "--json", "schedule", "--install", "--dir", str(units)).stdout)
    assert sorted(Path(p).name for p in smaller["removed"]) == [
        "bdr-drill.service", "bdr-drill.timer", "bdr-prune.service", "bdr-prune.timer"]
    assert foreign.exists()  # not written by bdr: never touched


def test_enable_reloads_systemd_and_starts_the_timers(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "calls"
    (fake / "systemctl").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    (fake / "systemctl").chmod(0o755)
    config = policy(tmp_path, schedule={"redis": "*/30 * * * *", "prune": "30 4 * * *"})
    env = {"PATH": f"{fake}:{os.environ['PATH']}"}
    units = tmp_path / "units"
    done = bdr("--config", str(config), "schedule", "--install", "--enable", "--dir", str(units), env=env)
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == [
        "daemon-reload", "enable --now bdr-backup-redis-production.timer bdr-prune.timer"]
    config.write_text(config.read_text().replace("  prune: 30 4 * * *\n", ""))
    calls.unlink()
    assert bdr("--config", str(config), "schedule", "--install", "--enable", "--dir", str(units),
               env=env).returncode == 0
    assert calls.read_text().splitlines() == [
        "disable --now bdr-prune.timer", "daemon-reload", "enable --now bdr-backup-redis-production.timer"]
    refused = bdr("--config", str(config), "schedule", "--enable")
    assert refused.returncode == 2 and "--enable needs --install" in refused.stderr


def next_runs(cron: str, after: datetime, count: int) -> list[datetime]:
    return list(itertools.islice(parse_cron(cron).next_runs(after), count))


@needs_systemd_analyze
@pytest.mark.parametrize("cron", ["*/30 * * * *", "0 2 * * 1-5", "0 2 1,15 * 5", "5-59/10 1-5 * * *", "0 0 29 2 *"])
def test_systemd_fires_the_timer_when_cron_would(cron: str) -> None:
    from bdr.schedule.calendar import on_calendar

    assert SYSTEMD_ANALYZE is not None
    before = datetime.now()
    fired: set[datetime] = set()
    for spec in on_calendar(cron):
        shown = subprocess.run([SYSTEMD_ANALYZE, "calendar", "--iterations=8", spec], capture_output=True, text=True,
                               timeout=60, check=True, env={**os.environ, "TZ": "UTC"}).stdout
        times = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", shown)
        assert len(times) == 8, shown
        fired |= {datetime.fromisoformat(t) for t in times}
    expected = next_runs(cron, datetime.utcnow() - timedelta(minutes=2), 8)
    first = sorted(fired)[:8]
    assert first == [t for t in expected if t >= first[0]][:8], (cron, before)


def test_a_generated_job_waits_for_the_lock_then_backs_up_and_writes_the_metrics(
        redis_rdb: RedisProcess, tmp_path: Path) -> None:
    redis_rdb.client().set("user:1", "alice")
    config = policy(tmp_path, redis_rdb, schedule={"redis": {"cron": "*/30 * * * *", "wait_lock": "1m"}})
    units = tmp_path / "units"
    assert bdr("--config", str(config), "schedule", "--install", "--dir", str(units)).returncode == 0
    service = units / "bdr-backup-redis-production.service"
    [workdir] = unit_setting(service, "WorkingDirectory")
    [start] = unit_setting(service, "ExecStart")
    [after] = unit_setting(service, "ExecStopPost")
    assert "--wait-lock 1m" in start
    repo = Repository.open(tmp_path / "repo")
    held = threading.Event()

    def hold() -> None:  # another bdr run holds the lock for 3 seconds
        with repo.lock("backup qdrant"):
            held.set()
            time.sleep(3)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    begun = time.monotonic()
    ran = subprocess.run(shlex.split(start), cwd=workdir, capture_output=True, text=True, timeout=120, check=False,
                         stdin=subprocess.DEVNULL)
    waited = time.monotonic() - begun
    holder.join()
    assert ran.returncode == 0, ran.stderr
    assert "is locked by pid" in ran.stderr and "waiting for it" in ran.stderr
    assert waited >= 2.0
    written = subprocess.run(shlex.split(after), cwd=workdir, capture_output=True, text=True, timeout=120,
                             check=False, stdin=subprocess.DEVNULL)
    assert written.returncode == 0, written.stderr
    [made] = repo.sets("redis")
    text = (tmp_path / "metrics" / "bdr.prom").read_text()
    assert re.search(r'backup_last_success_timestamp\{instance="production",source="redis"\} [1-9]', text)
    assert read_state(tmp_path / "metrics" / "bdr.state.json").runs["redis/production"]["id"] == made.id


def test_lint_holds_the_installed_timers_and_crontab_to_the_rpo(tmp_path: Path) -> None:
    config = policy(tmp_path, schedule={"redis": "*/30 * * * *", "qdrant": "0 */12 * * *"},
                    max_backup_age={"redis": "1h"})
    units, cron = tmp_path / "units", tmp_path / "cron"
    assert bdr("--config", str(config), "schedule", "--install", "--dir", str(units)).returncode == 0
    assert bdr("--config", str(config), "schedule", "--cron", "--install", "--dir", str(cron)).returncode == 0

    def findings(*args: str) -> list[dict[str, Any]]:
        result = bdr("--config", str(config), "lint", str(config), "--json", *args)
        assert result.returncode in (0, 1), result.stderr
        found: list[dict[str, Any]] = json.loads(result.stdout)["findings"]
        return [f for f in found if f["id"].startswith("BDR-B")]

    assert findings("--systemd", str(units)) == []
    assert findings("--crontab", str(cron / "bdr")) == []
    assert "*/30 * * * * root cd " in (cron / "bdr").read_text()

    timer = units / "bdr-backup-redis-production.timer"
    timer.write_text(timer.read_text().replace("OnCalendar=*-*-* *:00,30:00", "OnCalendar=daily")
                     .replace("Persistent=true\n", ""))
    found = {f["id"]: f for f in findings("--systemd", str(units))}
    assert set(found) == {"BDR-B001", "BDR-B004", "BDR-B007"}
    assert found["BDR-B001"]["path"].endswith("bdr-backup-redis-production.timer")
    assert "`OnCalendar=daily`: a total loss loses up to 1d" in found["BDR-B001"]["message"]

    for path in units.glob("bdr-backup-qdrant-*"):
        path.unlink()
    missing = [f for f in findings("--systemd", str(units)) if f["id"] == "BDR-B008"]
    assert [f["facts"]["source"] for f in missing] == ["qdrant"]
