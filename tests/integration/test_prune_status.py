"""``bdr prune``, ``bdr status``, ``bdr metrics`` and ``bdr exporter`` against real repositories on disk.

Sets are written into local repositories through the storage API with the finish times a
scenario needs, then the commands run as an operator runs them (the click app in-process,
and a real ``bdr`` process where the exit code and stderr matter).
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

import pytest
import yaml
from click.testing import CliRunner, Result
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bdr.cli.main import cli
from bdr.config import load_config
from bdr.monitoring.exporter import CachedCollector, ExporterServer, make_app, make_server
from bdr.repository import Repository, Verification
from bdr.repository.manifest import to_iso
from bdr.repository.retention import keep_last
from tests.backup_sets import make_manifest, rewrite_manifest, store_set
from tests.s3_fixtures import S3Bucket

NOW = datetime.now(UTC)


def write_config(tmp_path: Path, **extra: Any) -> Path:
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump({"repository": str(tmp_path / "repo"), **extra}))
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner(env={"COLUMNS": "250"}).invoke(cli, ["--config", str(config), *args])


def hours_ago(repo: Repository, *hours: float, source: str = "redis", instance: str = "production",
              tags: tuple[str, ...] = ()) -> list[str]:
    return [store_set(repo, make_manifest(NOW - timedelta(hours=h), source, instance, tags=tags)).id for h in hours]


# --- prune -------------------------------------------------------------------------------------------

RETENTION = {"last": {"count": 3, "locations": ["local"]}, "within": {"keep": "2d", "locations": ["local"]}}


def test_dry_run_deletes_nothing_then_prune_deletes_exactly_that(tmp_path: Path) -> None:
    config = write_config(tmp_path, retention=RETENTION)
    repo = Repository.open(tmp_path / "repo")
    ids = hours_ago(repo, *range(1, 11), *(24 * d for d in range(3, 8)))  # 10 in the last 10 h, 5 older dailies
    test_ids = hours_ago(repo, 100, 200, 300, 400, instance="test")

    dry = run(config, "prune", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] is True and plan["deleted"] == []
    assert len(Repository.open(tmp_path / "repo").sets()) == 19
    doomed = sorted(d["id"] for d in plan["decisions"] if d["action"] == "delete")
    assert doomed == sorted([*ids[10:], test_ids[3]])  # the dailies older than 2 days, the 4th test set
    reasons = {d["id"]: d["reasons"] for d in plan["decisions"]}
    assert reasons[ids[0]] == ["newest good set", "keep-last 3", "within 2d"]
    assert reasons[ids[9]] == ["within 2d"]
    assert reasons[test_ids[0]] == ["newest good set", "keep-last 3"]
    assert reasons[test_ids[2]] == ["keep-last 3"]

    done = run(config, "prune", "--json")
    assert done.exit_code == 0, done.output
    assert sorted(json.loads(done.stdout)["deleted"]) == doomed
    left = {s.id for s in Repository.open(tmp_path / "repo").sets()}
    assert left == {*ids[:10], *test_ids[:3]}
    again = json.loads(run(config, "prune", "--json").stdout)
    assert again["deleted"] == []


def test_prune_table_says_why(tmp_path: Path) -> None:
    config = write_config(tmp_path, retention=RETENTION)
    repo = Repository.open(tmp_path / "repo")
    hours_ago(repo, 1, 100, 200)
    shown = run(config, "prune", "--dry-run")
    assert shown.exit_code == 0, shown.output
    assert "newest good set; keep-last 3; within 2d" in shown.stdout
    assert "would keep 3 set(s) and delete 0 (dry run, nothing changed)" in shown.stdout


def test_a_set_being_read_by_a_restore_is_not_deleted(tmp_path: Path) -> None:
    config = write_config(tmp_path, retention={"last": {"count": 1, "locations": ["local"]}})
    repo = Repository.open(tmp_path / "repo")
    newest, older, oldest = hours_ago(repo, 1, 50, 100)
    with repo.reading(oldest):
        result = run(config, "prune", "--json")
    assert result.exit_code == 0, result.output
    decisions = {d["id"]: d for d in json.loads(result.stdout)["decisions"]}
    assert decisions[oldest]["reasons"] == ["being read by a restore"]
    assert decisions[older]["action"] == "delete"
    assert {s.id for s in repo.sets()} == {newest, oldest}


def test_prune_only_touches_the_source_asked_for(tmp_path: Path) -> None:
    config = write_config(tmp_path, retention={"last": {"count": 1, "locations": ["local"]}})
    repo = Repository.open(tmp_path / "repo")
    redis = hours_ago(repo, 1, 2)
    qdrant = hours_ago(repo, 1, 2, source="qdrant")
    result = run(config, "prune", "--source", "qdrant", "--json")
    assert json.loads(result.stdout)["deleted"] == [qdrant[1]]
    assert {s.id for s in repo.sets()} == {*redis, qdrant[0]}


def test_prune_waits_for_no_one_it_refuses_while_the_lock_is_held(tmp_path: Path) -> None:
    config = write_config(tmp_path, retention=RETENTION)
    repo = Repository.open(tmp_path / "repo")
    hours_ago(repo, 1, 200, 300)
    with repo.lock("backup redis"):
        result = run(config, "prune")
    assert result.exit_code == 5
    assert "is locked by pid" in result.stderr and "(backup redis)" in result.stderr
    assert len(repo.sets()) == 3


def test_prune_refuses_when_no_rule_covers_the_repository(tmp_path: Path) -> None:
    config = write_config(tmp_path, retention={"weekly": {"keep": "90d", "locations": ["s3"]}})
    repo = Repository.open(tmp_path / "repo")
    hours_ago(repo, 1, 200, 300)
    result = run(config, "prune")
    assert result.exit_code == 2
    assert "no retention rule applies to local repositories" in result.stderr
    assert len(repo.sets()) == 3


def test_prune_applies_the_default_table_to_a_local_repository(tmp_path: Path) -> None:
    """No retention: section: the runbook's table (hourly 7 d + daily 30 d locally)."""
    config = write_config(tmp_path)
    repo = Repository.open(tmp_path / "repo")
    hours_ago(repo, *range(0, 24 * 40, 6))  # every 6 hours for 40 days: 160 sets
    result = json.loads(run(config, "prune", "--json").stdout)
    assert result["rules"] == ["hourly: newest set of each of the last 168 hours",
                               "daily: newest set of each of the last 30 days", "safety sets for 7d"]
    kept = len(repo.sets())
    assert 28 + 22 <= kept <= 29 + 24  # 4 a day for the last ~7 days, then one a day back to 30 days


def test_keep_last_after_a_backup(tmp_path: Path) -> None:
    """``bdr backup --keep N``: only older sets of the same source and instance go; invariants hold."""
    repo = Repository.open(tmp_path / "repo")
    ids = hours_ago(repo, 1, 2, 3, 4, 5, 6)
    verified = store_set(repo, make_manifest(NOW - timedelta(hours=7)),
                         Verification(at=to_iso(NOW), ok=True)).id
    member = hours_ago(repo, 8)[0]
    store_set(repo, make_manifest(NOW - timedelta(hours=8), "all", "system", children=(member,)))
    other = hours_ago(repo, 9, instance="test")
    safety = hours_ago(repo, 10, tags=("safety",))
    deleted = keep_last(repo, "redis", "production", 2)
    assert sorted(deleted) == sorted(ids[2:])
    left = {s.id for s in repo.sets()}
    assert {*ids[:2], verified, member, *other, *safety} <= left


# --- status ------------------------------------------------------------------------------------------


def bdr_process(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bdr.cli.main", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
                          env={**os.environ, "COLUMNS": "200"})


def test_status_is_ok_for_fresh_backups_and_exits_1_when_one_is_stale(tmp_path: Path) -> None:
    config = write_config(tmp_path, schedule={"redis": "0 * * * *", "qdrant": "0 2 * * *"},
                          max_backup_age={"qdrant": "26h"})
    repo = Repository.open(tmp_path / "repo")
    hours_ago(repo, 0.5, 1.5)
    hours_ago(repo, 25, source="qdrant")  # 25 h old, within its own 26 h

    fresh = bdr_process(config, "status", "--json")
    assert fresh.returncode == 0, fresh.stderr
    report = json.loads(fresh.stdout)
    assert report["ok"] is True and report["rule_321_ok"] is False
    assert [(s["source"], s["health"]) for s in report["sources"]] == [("qdrant", "ok"), ("redis", "ok")]

    two_days_ago = to_iso(NOW - timedelta(days=2))
    for backup in repo.sets("redis"):  # age the redis sets by two days (re-sealed: they stay good)
        rewrite_manifest(repo, "redis", backup.id, lambda data: data.update(finished_at=two_days_ago))
    stale = bdr_process(config, "status")
    assert stale.returncode == 1
    lines = stale.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bdr: error: redis/production: newest backup redis-")
    assert "is 2d0h old, more than 24h; run `bdr backup` or check the schedule" in lines[0]
    assert "STALE" in stale.stdout and "3-2-1 redis/production:" in stale.stdout


def test_status_exits_1_when_a_scheduled_source_was_never_backed_up(tmp_path: Path) -> None:
    config = write_config(tmp_path)  # the default schedule: redis, qdrant, config
    hours_ago(Repository.open(tmp_path / "repo"), 1)
    result = run(config, "status", "--json")
    assert result.exit_code == 1
    health = {s["source"]: s["health"] for s in json.loads(result.stdout)["sources"]}
    assert health == {"redis": "ok", "qdrant": "missing", "config": "missing"}
    assert "config/config: no good backup in any repository (and 1 more)" in result.stderr
    assert run(config, "status", "redis").exit_code == 0


def test_status_counts_copies_on_a_second_disk_but_3_2_1_needs_offsite(tmp_path: Path) -> None:
    config = write_config(tmp_path, schedule={"redis": "0 * * * *"})
    repo = Repository.open(tmp_path / "repo")
    second = Repository.open(tmp_path / "second")
    manifest = make_manifest(NOW - timedelta(hours=1))
    store_set(repo, manifest)
    store_set(second, manifest)  # the same set copied to a second disk

    result = run(config, "status", "--destination", str(tmp_path / "second"), "--json")
    assert result.exit_code == 0, result.output
    group = json.loads(result.stdout)["sources"][0]
    assert group["newest"]["copies"] == sorted([str(tmp_path / "repo"), str(tmp_path / "second")])
    assert group["rule_321"]["copies"] == 3 and group["rule_321"]["media"] == 1  # one file system here
    assert group["rule_321"]["ok"] is False

    strict = run(config, "status", "--destination", str(tmp_path / "second"), "--require-321")
    assert strict.exit_code == 1
    assert "3-2-1 rule broken: 1 of 2 media (all backups on one file system); no off-site backup" in strict.stderr


# --- metrics and exporter --------------------------------------------------------------------------


def test_metrics_write_and_show(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    hours_ago(Repository.open(tmp_path / "repo"), 1, 2)
    textfile = tmp_path / "collector" / "bdr.prom"
    written = run(config, "metrics", "write", "--textfile", str(textfile))
    assert written.exit_code == 0, written.output
    text = textfile.read_text()
    assert 'backup_sets{instance="production",location="local",source="redis"} 2' in text
    assert [p.name for p in textfile.parent.iterdir()] == ["bdr.prom"]  # no temporary file left behind
    shown = run(config, "metrics", "show")
    assert shown.stdout == text
    missing = run(config, "metrics", "write")
    assert missing.exit_code == 2 and "pass --textfile FILE or set metrics_textfile" in missing.stderr


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[ExporterServer]:
    config = load_config(write_config(tmp_path))
    server = make_server(config, "127.0.0.1", 0, cache_seconds=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_the_exporter_serves_fresh_metrics(exporter: ExporterServer, tmp_path: Path) -> None:
    status, content_type, body = get(exporter.url)
    assert status == 200 and content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert 'backup_last_success_timestamp{instance="production",source="redis"} 0' in body
    hours_ago(Repository.open(tmp_path / "repo"), 1)
    _, _, body = get(exporter.url)
    assert 'backup_sets{instance="production",location="local",source="redis"} 1' in body
    base = exporter.url.removesuffix("/metrics")
    assert get(f"{base}/healthz")[:2] == (200, "text/plain; charset=utf-8")
    assert get(f"{base}/nothing")[0] == 404
    assert "/metrics" in get(f"{base}/")[2]


def test_the_exporter_caches_between_scrapes(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    server = make_server(config, "127.0.0.1", 0, cache_seconds=3600)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        first = get(server.url)[2]
        hours_ago(Repository.open(tmp_path / "repo"), 1)
        assert get(server.url)[2] == first
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_exporter_answers_openmetrics_and_gzip_when_asked(exporter: ExporterServer) -> None:
    request = urllib.request.Request(exporter.url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
        text = response.read().decode()
    assert 'backup_last_success_timestamp{instance="production",source="redis"} 0.0\n' in text
    assert text.endswith("# EOF\n")
    request = urllib.request.Request(exporter.url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        plain = gzip.decompress(response.read()).decode()
    assert "# TYPE backup_sets gauge\n" in plain and not plain.endswith("# EOF\n")


def test_an_unreadable_repository_is_a_metric_not_a_500(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    missing = f"s3://{s3_bucket.name}-gone/repo"
    config = load_config(write_config(tmp_path, remote={"url": missing, "endpoint_url": s3_bucket.server.endpoint,
                                                        "region": "us-east-1", "max_attempts": 1}))
    server = make_server(config, "127.0.0.1", 0, cache_seconds=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status, _, body = get(server.url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert status == 200
    assert f'backup_repository_up{{location="s3",repository="{missing}"}} 0.0\n' in body
    assert f'backup_repository_up{{location="local",repository="{tmp_path / "repo"}"}} 1.0\n' in body


class FailsOnce(Collector):
    def __init__(self) -> None:
        self.calls = 0

    def collect(self) -> Iterator[Metric]:
        self.calls += 1
        if self.calls == 1:
            raise OSError("the state file's disk is gone")
        yield GaugeMetricFamily("backup_sets", "Sets.", value=1)


def test_a_failed_computation_is_a_one_line_500_not_cached_and_the_server_lives_on() -> None:
    failing = FailsOnce()
    server = ExporterServer(("127.0.0.1", 0), WSGIRequestHandler)
    server.set_app(make_app(CachedCollector(failing, ttl=3600)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert get(server.url) == (500, "text/plain; charset=utf-8", "bdr exporter: cannot compute metrics: OSError\n")
        assert get(server.url)[:2] == (200, "text/plain; version=0.0.4; charset=utf-8")
        assert "backup_sets 1.0" in get(server.url)[2] and failing.calls == 2  # the good answer is cached
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_exporter_command_reports_a_busy_port(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = bdr_process(config, "exporter", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip() == f"bdr: error: 127.0.0.1:{port} is already in use: pick another --port"


def test_the_exporter_process_serves_until_sigterm(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    hours_ago(Repository.open(tmp_path / "repo"), 1)
    proc = subprocess.Popen([sys.executable, "-m", "bdr.cli.main", "--config", str(config), "exporter", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        assert banner.startswith("bdr exporter serving http://127.0.0.1:"), banner
        url = banner.split()[3]
        status, _, body = get(url)
        assert status == 200 and 'backup_sets{instance="production",location="local",source="redis"} 1' in body
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_status_covers_every_instance_of_bdr_yaml_not_only_the_default(tmp_path: Path) -> None:
    config = write_config(tmp_path, schedule={"redis": "*/30 * * * *"}, redis={
        "production": {}, "cache": {"url": "redis://127.0.0.1:6390/0"},
        "test": {"url": "redis://127.0.0.1:6380/0", "backup": False}})
    repo = Repository.open(tmp_path / "repo")
    hours_ago(repo, 0.5)  # production only

    result = run(config, "status", "--json")
    assert result.exit_code == 1
    health = {(s["source"], s["instance"]): s["health"] for s in json.loads(result.stdout)["sources"]}
    assert health == {("redis", "production"): "ok", ("redis", "cache"): "missing"}  # test: a restore target
    assert "redis/cache: no good backup in any repository" in result.stderr

    hours_ago(repo, 0.5, instance="cache")
    assert run(config, "status").exit_code == 0
    strict = run(config, "status", "--require-321")
    assert strict.exit_code == 1 and "redis/cache: 3-2-1 rule broken" in strict.stderr
    assert "(and 1 more)" in strict.stderr  # redis/production is short of copies too


def test_status_exits_1_when_a_backup_was_not_verified_for_too_long(tmp_path: Path) -> None:
    config = write_config(tmp_path, schedule={"redis": "*/30 * * * *"}, max_verify_age={"redis": "2d"})
    repo = Repository.open(tmp_path / "repo")
    hours_ago(repo, 1)
    assert run(config, "status").exit_code == 0  # its first set is younger than 2d: given the time
    old = store_set(repo, make_manifest(NOW - timedelta(days=3)))
    result = run(config, "status", "--json")
    assert result.exit_code == 1
    [group] = json.loads(result.stdout)["sources"]
    assert group["health"] == "unverified" and group["last_verified_seconds"] is None
    assert "redis/production: never verified, more than max_verify_age 2d; run `bdr verify latest --source redis " \
           "--instance production`" in result.stderr
    repo.record_verification(old, Verification(at=to_iso(NOW - timedelta(days=2, hours=1)), ok=True))
    assert "last verified 2d1h ago" in run(config, "status").stderr
    repo.record_verification(old, Verification(at=to_iso(NOW - timedelta(hours=5)), ok=True))
    assert run(config, "status").exit_code == 0
