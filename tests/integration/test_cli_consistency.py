"""One consistent CLI: JSON errors, --wait-lock, progress on a terminal only, dry runs that say so, a prompt that
names the instance, logs only with --debug, `latest` of one instance, and metrics rewritten by every command that
changes them."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from qdrant_client import QdrantClient, models

from bdr.api.inputs import resolve_input
from bdr.config import load_config
from bdr.monitoring.metrics import read_state
from bdr.repository import LOCK_KEY, Repository, Verification
from bdr.repository.manifest import to_iso
from bdr.runtime.process import RedisProcess
from tests.backup_sets import make_manifest, store_set
from tests.s3_fixtures import S3Bucket

BDR = [sys.executable, "-m", "bdr.cli.main"]
NOW = datetime.now(UTC)


def bdr(config: Path | None, *args: str, env: dict[str, str] | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    argv = [*BDR, *(["--config", str(config)] if config else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def write(tmp_path: Path, server: RedisProcess | None = None, **extra: Any) -> Path:
    data: dict[str, Any] = {"repository": str(tmp_path / "repo"), **extra}
    if server is not None:
        instance = server.instance
        data["redis"] = {"production": {"url": instance.url, "data_dir": instance.data_dir,
                                        "start_args": list(instance.start_args), "password_env": None}}
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def in_terminal(argv: list[str], answer: bytes | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """Run ``argv`` with stdin and stderr on a pseudo-terminal (stdout a pipe); type ``answer`` at the prompt."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE, stderr=slave, env={**os.environ,
                            "COLUMNS": "160", "TERM": "xterm"})
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if answer is not None and not answered and b"[y/N]" in seen:
                os.write(master, answer)
                answered = True
        elif proc.poll() is not None:
            break
    out = proc.stdout.read().decode() if proc.stdout else ""
    code = proc.wait(timeout=30)
    os.close(master)
    return code, out, seen.decode(errors="replace")


# --- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "code", "message"), [
    (("list", "nosuch"), 2, "Invalid value"),
    (("--bogus",), 2, "No such option"),
    (("verify", "redis-20990101T000000Z-abcdef"), 4, "backup 'redis-20990101T000000Z-abcdef' not found"),
    (("prune", "--wait-lock", "soon"), 2, "--wait-lock: not a duration: 'soon'"),
])
def test_with_json_an_error_is_a_json_document_on_stdout_and_one_line_on_stderr(
        tmp_path: Path, args: tuple[str, ...], code: int, message: str) -> None:
    config = write(tmp_path)
    for argv in (("--json", *args), (*args[:1], "--json", *args[1:])):
        result = bdr(config, *argv)
        assert result.returncode == code, result.stderr
        error = json.loads(result.stdout)
        assert error["exit_code"] == code and message in error["error"]
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("policy", "key"), [
    ({"max_backup_age": {"redis": [1]}}, "max_backup_age.redis"),
    ({"max_backup_age": {"redis": "1x"}}, "max_backup_age.redis"),
    ({"targets": {"rto": {"redis_restart": None}}}, "targets.rto.redis_restart"),
    ({"retention": {"daily": {"keep": {"days": 30}}}}, "retention.daily.keep"),
    ({"lint": {"backup_duration": {"redis": True}}}, "lint.backup_duration.redis"),
    ({"schedule": {"prune": {"cron": "0 4 * * *", "wait_lock": [5]}}}, "schedule.prune.wait_lock"),
])
def test_a_bad_duration_in_the_policy_is_exit_3_naming_the_key(tmp_path: Path, policy: dict[str, Any],
                                                              key: str) -> None:
    config = write(tmp_path, **policy)
    for argv in (("status",), ("--json", "status")):
        result = bdr(config, *argv)
        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stderr and "unexpected error" not in result.stderr
        line = result.stderr.strip().splitlines()[-1]
        placed = re.match(rf"bdr: error: configuration error in {re.escape(str(config))}:(\d+): {re.escape(key)}: "
                          "not a duration", line)
        assert placed is not None, line
        named = config.read_text().splitlines()[int(placed.group(1)) - 1]
        assert named.strip().startswith(f"{key.rsplit('.', 1)[-1]}:"), named  # the line of the key, in the file
    assert json.loads(bdr(config, "--json", "status").stdout)["type"] == "ConfigError"


# --- the lock -----------------------------------------------------------------------------------------------


def test_wait_lock_waits_for_another_run_instead_of_failing(tmp_path: Path) -> None:
    config = write(tmp_path, retention={"last": {"count": 5, "locations": ["local"]}})
    repo = Repository.open(tmp_path / "repo")
    store_set(repo, make_manifest(NOW - timedelta(hours=1)))
    release = threading.Event()
    held = threading.Event()

    def hold() -> None:
        with repo.lock("backup redis"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    try:
        at_once = bdr(config, "prune")
        assert at_once.returncode == 5 and f"is locked by pid {os.getpid()}" in at_once.stderr
        gave_up = bdr(config, "prune", "--wait-lock", "2s")
        assert gave_up.returncode == 5
        assert "is still locked by pid" in gave_up.stderr and "after waiting 2.0s (--wait-lock)" in gave_up.stderr
        threading.Timer(2.0, release.set).start()
        begun = time.monotonic()
        waited = bdr(config, "--wait-lock", "1m", "prune")  # the global form works for every command
        assert waited.returncode == 0, waited.stderr
        assert time.monotonic() - begun >= 1.5 and "waiting for it" in waited.stderr
    finally:
        release.set()
        holder.join()
    assert not (tmp_path / "repo" / LOCK_KEY).exists()
    for command in ("backup", "prune", "restore", "repair", "drill"):
        assert "--wait-lock DURATION" in bdr(None, command, "--help").stdout, command


# --- output -------------------------------------------------------------------------------------------------


def test_progress_shows_bytes_rate_and_time_on_a_terminal_and_nothing_with_json(redis_rdb: RedisProcess,
                                                                                tmp_path: Path) -> None:
    client = redis_rdb.client()
    pipe = client.pipeline(transaction=False)
    for i in range(60_000):
        pipe.set(f"k:{i}", os.urandom(150))
    pipe.execute()
    config = write(tmp_path, redis_rdb)
    code, out, terminal = in_terminal([*BDR, "--config", str(config), "backup", "redis"])
    assert code == 0, terminal
    assert re.search(r"write dump\.rdb .*B / \d+\.\d MiB", terminal), terminal
    assert "backup redis-" in out
    code, out, terminal = in_terminal([*BDR, "--config", str(config), "verify", "latest", "--json"])
    assert code == 0
    assert json.loads(out)["ok"] is True
    assert "MiB" not in terminal and "━" not in terminal  # quiet with --json
    code, out, terminal = in_terminal([*BDR, "--config", str(config), "-q", "verify", "latest"])
    assert code == 0 and "━" not in terminal and out == ""


def test_the_restore_prompt_names_the_set_the_instance_and_its_address(redis_rdb: RedisProcess,
                                                                       tmp_path: Path) -> None:
    redis_rdb.client().set("k", "v")
    config = write(tmp_path, redis_rdb)
    made = json.loads(bdr(config, "--json", "backup", "redis").stdout)["id"]
    code, _out, terminal = in_terminal([*BDR, "--config", str(config), "restore", "redis", "latest"], answer=b"n\n")
    assert code == 1, terminal
    assert (f"Restore latest ({made}) over ALL data of redis production at {redis_rdb.instance.url}? A safety "
            "backup is taken first") in terminal
    assert redis_rdb.client().get("k") == b"v"


def test_dry_runs_say_what_they_would_change_in_text_and_json(tmp_path: Path) -> None:
    config = write(tmp_path, retention={"last": {"count": 1, "locations": ["local"]}})
    repo = Repository.open(tmp_path / "repo")
    ids = [store_set(repo, make_manifest(NOW - timedelta(hours=h))).id for h in (1, 2)]
    text = bdr(config, "prune", "--dry-run")
    assert f"would keep 1 set(s) and delete 1: {ids[1]} (dry run, nothing changed)" in text.stdout
    data = json.loads(bdr(config, "prune", "--dry-run", "--json").stdout)
    assert data["would_delete"] == [ids[1]] and data["summary"].endswith("(dry run, nothing changed)")
    assert len(repo.sets()) == 2


@pytest.mark.s3
def test_botocore_logs_only_with_debug_and_a_remote_backup_rewrites_the_metrics(
        redis_rdb: RedisProcess, s3_bucket: S3Bucket, tmp_path: Path) -> None:
    redis_rdb.client().set("k", "v")
    textfile = tmp_path / "metrics" / "bdr.prom"
    config = write(tmp_path, redis_rdb, metrics_textfile=str(textfile),
                   remote={"endpoint_url": s3_bucket.server.endpoint, "region": "us-east-1", "part_size_mib": 5})
    url = s3_bucket.url("offsite")
    quiet = bdr(config, "backup", "redis", "--remote", url, "--allow-plaintext")
    assert quiet.returncode == 0, quiet.stderr
    assert " INFO " not in quiet.stderr and "credentials" not in quiet.stderr.lower()
    text = textfile.read_text()
    assert f'backup_repository_up{{location="s3",repository="{url}"}} 1' in text  # remembered from now on
    assert re.search(r'backup_sets\{instance="production",location="s3",source="redis"\} 1', text)
    loud = bdr(config, "--debug", "list", "--remote", url)
    assert loud.returncode == 0 and " INFO botocore" in loud.stderr
    assert "Authorization" not in loud.stderr  # botocore's request logging stays off even with --debug


def test_every_command_that_changes_the_metrics_rewrites_the_textfile(redis_rdb: RedisProcess,
                                                                      tmp_path: Path) -> None:
    redis_rdb.client().set("k", "v")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "app.yml").write_text("a: 1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        qdrant = QdrantClient(path=str(tmp_path / "qdrant"))
        qdrant.create_collection("memories", vectors_config=models.VectorParams(size=4,
                                                                                distance=models.Distance.COSINE))
        qdrant.upsert("memories", [models.PointStruct(id=1, vector=[0.1, 0.2, 0.3, 0.4])])
        qdrant.close()
    textfile = tmp_path / "bdr.prom"
    config = write(tmp_path, redis_rdb, metrics_textfile=str(textfile),
                   qdrant={"production": {"path": str(tmp_path / "qdrant")}},
                   files={"root": str(conf), "paths": ["*.yml"], "secrets": []},
                   retention={"last": {"count": 1, "locations": ["local"]}})

    def success(source: str) -> float:
        found = re.search(rf'backup_last_success_timestamp\{{instance="[^"]+",source="{source}"\}} (\S+)',
                          textfile.read_text())
        return float(found.group(1)) if found else 0.0

    assert bdr(config, "backup", "all").returncode == 0
    assert all(success(s) > 0 for s in ("redis", "qdrant", "config"))  # each member of the whole-system set
    assert set(read_state(tmp_path / "bdr.state.json").runs) == {"all/system", "redis/production",
                                                                 "qdrant/production", "config/config"}
    for _ in range(2):
        assert bdr(config, "backup", "redis").returncode == 0
    assert 'backup_sets{instance="production",location="local",source="redis"} 3' in textfile.read_text()
    pruned = json.loads(bdr(config, "prune", "--source", "redis", "--json").stdout)
    assert len(pruned["deleted"]) == 1  # the newest stays, and the member of the kept whole-system set
    assert 'backup_sets{instance="production",location="local",source="redis"} 2' in textfile.read_text()
    assert bdr(config, "verify", "latest", "--source", "redis").returncode == 0
    assert re.search(r'backup_last_verify_timestamp\{instance="production",source="redis"\} [1-9]',
                     textfile.read_text())


# --- latest ---------------------------------------------------------------------------------------------


def test_latest_is_the_newest_good_set_of_one_instance_and_says_what_it_skipped(tmp_path: Path) -> None:
    config_path = write(tmp_path, redis={"production": {}, "cache": {"url": "redis://127.0.0.1:6390/0"},
                                         "test": {"url": "redis://127.0.0.1:6380/0", "backup": False}})
    config = load_config(config_path)
    repo = Repository.open(tmp_path / "repo")
    good = store_set(repo, make_manifest(NOW - timedelta(hours=3)))
    failed = store_set(repo, make_manifest(NOW - timedelta(hours=2)),
                       Verification(at=to_iso(NOW - timedelta(hours=1)), ok=False, detail="files: checksum mismatch"))
    cache = store_set(repo, make_manifest(NOW - timedelta(hours=1), instance="cache"))
    store_set(repo, make_manifest(NOW - timedelta(minutes=30), tags=("safety",)))

    found = resolve_input(config, "latest", "redis")
    assert found.backup is not None and found.backup.id == good.id  # not cache's, newer; not the failed one
    assert [s.describe() for s in found.skipped] == [
        f"{failed.id} (its last verify failed at {to_iso(NOW - timedelta(hours=1))}: files: checksum mismatch)"]
    assert resolve_input(config, "latest", "redis", instance="cache").backup.id == cache.id  # type: ignore[union-attr]
    assert resolve_input(config, "latest", "redis", target="cache").backup.id == cache.id  # type: ignore[union-attr]
    into_test = resolve_input(config, "latest", "redis", target="test")
    assert into_test.backup is not None and into_test.backup.id == good.id  # test has none of its own
    assert into_test.note is not None and "redis test has no backup set of its own" in into_test.note

    shown = bdr(config_path, "--json", "verify", "latest", "--source", "redis")
    assert json.loads(shown.stdout)["id"] == good.id
    assert f"latest skipped {failed.id} (its last verify failed" in shown.stderr
    refused = bdr(config_path, "verify", "latest", "--instance", "cache")
    assert refused.returncode == 2 and "--instance needs --source" in refused.stderr


def test_drill_json_lists_and_reports_errors_as_json(tmp_path: Path) -> None:
    config = write(tmp_path)
    listed = bdr(config, "drill", "--list", "--json")
    assert listed.returncode == 0
    assert "redis_restart" in [s["name"] for s in json.loads(listed.stdout)]
    unknown = bdr(config, "--json", "drill", "-s", "nosuch")
    assert unknown.returncode == 2 and "unknown scenario(s) nosuch" in json.loads(unknown.stdout)["error"]


def test_a_long_step_shows_done_total_rate_and_time_left() -> None:
    import io

    from rich.console import Console
    from rich.progress import Progress

    from bdr.cli.app import _Done, _Eta, _Rate

    clock = [0.0]
    bar = Progress(_Done(), _Rate(), _Eta(), console=Console(file=io.StringIO(), force_terminal=True, width=120),
                   get_time=lambda: clock[0])
    upload = bar.add_task("upload dump.rdb", total=100 * 1024 * 1024, unit="B")
    points = bar.add_task("import memories", total=None, unit="points")
    for _ in range(4):  # 10 MiB per second, 1,000 points per second
        clock[0] += 1.0
        bar.advance(upload, 10 * 1024 * 1024)
        bar.advance(points, 1000)
    byte_task, point_task = bar.tasks
    assert [str(c.render(byte_task)) for c in bar.columns] == ["40.0 MiB / 100.0 MiB", "10.0 MiB/s", "ETA 6.0s"]
    assert [str(c.render(point_task)) for c in bar.columns] == ["4,000 points", "1,000 points/s", "4.0s"]
