"""Prometheus metrics: a TSDB snapshot backed up, restored after a total loss, verified, and every fault readable.

One real Prometheus per module (Debian's, scraping itself every second, admin API on),
started from a shell the way an operator would; bdr attaches to it with the process runtime.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from qdrant_client import QdrantClient
from qdrant_client.models import Distance, VectorParams

from bdr import api
from bdr.cli.main import cli
from bdr.config import Config, EncryptionSettings, FilesSource, QdrantInstance, load_config
from bdr.crypto import generate_key_file
from bdr.engines import engine_for
from bdr.errors import AdminApiDisabled, NoSpace, StorageError
from bdr.lint.runner import LintOptions, run_lint
from bdr.repository import Repository, extract_set
from bdr.runtime.process import RedisProcess
from bdr.util.host import free_port
from drills.prometheus import RULES, SCRAPE
from tests.faults.harness import KILLED, bdr
from tests.fixtures import config_for
from tests.mounts import tmpfs
from tests.prometheus_fixtures import PrometheusServer, needs_prometheus, running_prometheus

pytestmark = [needs_prometheus]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with running_prometheus(tmp_path_factory.mktemp("prometheus")) as running:
        yield running


def make_config(server: PrometheusServer, tmp_path: Path, **settings: object) -> Config:
    key = tmp_path / "backup.key"
    if not key.exists():
        generate_key_file(key)
    return dataclasses.replace(
        Config(), repository=str(tmp_path / "repo"), prometheus={"production": server.instance(**settings)},
        prometheus_default="production",
        encryption=EncryptionSettings(key_file=str(key), key_env=None, passphrase_env=None))


def query(server: PrometheusServer, promql: str, at: float) -> list[dict[str, object]]:
    from urllib.parse import quote

    body = json.loads(server.get(f"/api/v1/query?query={quote(promql)}&time={at:.3f}"))
    return list(body["data"]["result"])


def test_backup_records_the_tsdb_facts_and_leaves_no_snapshot(server: PrometheusServer, tmp_path: Path) -> None:
    config = make_config(server, tmp_path)
    outcome = api.backup(config, "prometheus", compress=True, encrypt=True)

    m = outcome.manifest
    facts = m.facts
    assert m.compressed and m.encrypted and m.method == "snapshot"
    assert facts["prometheus_version"].startswith("2.")
    assert facts["blocks"] and facts["block_count"] == len(facts["blocks"])
    files = {f.path.split("/")[0] for f in m.files}
    assert files == {b["ulid"] for b in facts["blocks"]}
    assert {"meta.json", "index"} <= {f.path.split("/", 1)[1] for f in m.files if "/" in f.path}
    assert facts["oldest_sample_ms"] <= facts["newest_sample_ms"] <= time.time() * 1000
    assert facts["samples"] > 0 and facts["series"] > 0 and facts["head_series"] > 0
    # the server counts the same series in that time range
    window = facts["newest_sample_ms"] - facts["oldest_sample_ms"] + 1
    live = query(server, f'count(last_over_time({{__name__=~".+"}}[{window}ms]))', facts["newest_sample_ms"] / 1000)
    assert int(live[0]["value"][1]) == facts["series"]  # type: ignore[index]
    assert facts["snapshot_removed"] and not any((server.data_dir / "snapshots").iterdir())
    assert facts["launch"]["cwd"] == str(server.base)

    report = api.verify(config, m.id, restore_test=True)
    assert report.ok, [c.to_dict() for c in report.checks]
    names = {c.name for c in report.checks if not c.skipped}
    assert {"chunk checksums", "promtool tsdb analyze", "blocks", "restore test"} <= names
    trial = next(c for c in report.checks if c.name == "restore test")
    assert f"{facts['series']} series (the backup: {facts['series']})" in trial.detail


def test_a_corrupted_block_is_caught_by_verify(server: PrometheusServer, tmp_path: Path) -> None:
    config = make_config(server, tmp_path)
    outcome = api.backup(config, "prometheus")
    repo = Repository.open(tmp_path / "repo")
    backup = repo.get(outcome.manifest.id)
    engine = engine_for("prometheus")
    shown = CliRunner(env={"COLUMNS": "250"}).invoke(cli, ["--config", str(write_yaml(server, tmp_path)), "show",
                                                          backup.id])
    assert shown.exit_code == 0 and f"{backup.manifest.facts['series']} series" in shown.output, shown.output
    assert all(b["ulid"] in shown.output for b in backup.manifest.facts["blocks"])

    for damaged, caught in (("chunks/000001", "chunk checksums"), ("index", "promtool tsdb analyze")):
        files = tmp_path / f"files-{caught.split()[0]}"
        extract_set(repo, backup, files)
        block = next(p for p in files.iterdir() if p.is_dir())
        path = block / damaged
        data = bytearray(path.read_bytes())
        for at in range(12, len(data) - 8, 97):  # from inside the first chunk (after the 8-byte header)
            data[at] ^= 0xFF
        path.write_bytes(bytes(data))
        checks = {c.name: c for c in engine.verify(backup.manifest, files)}
        assert not checks[caught].ok, checks[caught]
        assert block.name in checks[caught].detail

    # and in the repository: a flipped byte in the stored set
    stored = next((tmp_path / "repo" / "prometheus" / backup.id).glob("data.tar*"))
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    report = api.verify(config, backup.id)
    assert not report.ok


def test_restore_after_total_loss_of_the_data_dir(server: PrometheusServer, tmp_path: Path) -> None:
    config = make_config(server, tmp_path)
    taken = api.backup(config, "prometheus").manifest
    argv_before = server.argv()
    server.kill()
    shutil.rmtree(server.data_dir)  # the metrics volume is gone, and the server with it

    result = api.restore(config, "prometheus", taken.id)

    assert result.ok, [c.to_dict() for c in result.checks]
    checks = {c.name: c for c in result.checks}
    assert {"ready", "range query", "newest sample", "series"} <= {n for n, c in checks.items() if not c.skipped}
    assert result.facts["newest_restored_sample_ms"] == taken.facts["newest_sample_ms"]
    assert server.ready()
    # started again exactly as it was launched, from its own working directory
    pid = server.pid()
    assert pid is not None
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:-1] == [a.encode() for a in argv_before[1:]]
    assert Path(f"/proc/{pid}/cwd").resolve() == server.base.resolve()
    newest = taken.facts["newest_sample_ms"]
    back = query(server, 'count({__name__=~".+"})', newest / 1000)
    assert int(back[0]["value"][1]) > 0  # type: ignore[index]
    assert {b["ulid"] for b in taken.facts["blocks"]} <= {p.name for p in server.data_dir.iterdir()}
    assert not list(server.data_dir.glob(".bdr-restore-*"))


def write_yaml(server: PrometheusServer, tmp_path: Path) -> Path:
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump({
        "repository": str(tmp_path / "repo"),
        "prometheus": {"production": {"url": server.url, "log_file": str(server.base / "bdr-prometheus.log")}},
    }))
    return path


def test_killed_mid_restore_is_aborted_or_resumed(server: PrometheusServer, tmp_path: Path) -> None:
    server.wait_ready()
    path = write_yaml(server, tmp_path)
    config = load_config(path)
    api.backup(config, "prometheus")
    before = sorted(p.name for p in server.data_dir.iterdir() if not p.name.startswith("."))

    killed = bdr(path, "restore", "prometheus", "latest", "--yes", failpoints="restore.swap:kill")
    assert killed.code == KILLED, killed.output
    assert not server.ready()  # stopped, half swapped
    assert [e.source for e in api.interrupted_restores(config)] == ["prometheus"]

    aborted = api.resume(config, "prometheus", abort=True)
    assert any(c.name == "rolled back" for c in aborted.checks), aborted.to_dict()
    assert server.ready()
    assert sorted(p.name for p in server.data_dir.iterdir() if not p.name.startswith(".")) == before

    killed = bdr(path, "restore", "prometheus", "latest", "--yes", failpoints="restore.start:kill")
    assert killed.code == KILLED, killed.output
    resumed = api.resume(config, "prometheus")
    assert resumed.ok and "newest sample" in {c.name for c in resumed.checks}
    assert server.ready() and not api.interrupted_restores(config)


def test_admin_api_off_is_one_clear_line_and_writes_nothing(tmp_path: Path) -> None:
    with running_prometheus(tmp_path / "off", admin_api=False, samples=0) as off:
        config = make_config(off, tmp_path)
        with pytest.raises(AdminApiDisabled) as caught:
            api.backup(config, "prometheus")
        run = CliRunner().invoke(cli, ["--config", str(write_yaml(off, tmp_path)), "backup", "prometheus"])
        probed = {f.rule: f.message for f in run_lint(LintOptions(), cwd=tmp_path).findings}
    assert "web.enable-admin-api=false" in probed["BDR-M001"], probed
    assert "--web.enable-admin-api" in caught.value.message and "\n" not in caught.value.message
    assert caught.value.exit_code == 7
    errors = [line for line in run.stderr.splitlines() if line.startswith("bdr: error:")]
    assert run.exit_code == 7 and len(errors) == 1 and "--web.enable-admin-api" in errors[0], run.output
    assert "Traceback" not in run.output
    assert not (tmp_path / "repo" / "prometheus").exists() or not any((tmp_path / "repo" / "prometheus").iterdir())


def test_a_full_repository_disk_is_a_storage_error_and_the_snapshot_is_removed(server: PrometheusServer,
                                                                                 tmp_path: Path) -> None:
    server.wait_ready()
    with tmpfs(tmp_path / "small", size="16k") as small:
        config = dataclasses.replace(make_config(server, tmp_path), repository=str(small / "repo"))
        with pytest.raises(StorageError) as caught:
            api.backup(config, "prometheus")
    assert isinstance(caught.value, NoSpace) and caught.value.exit_code == 9, caught.value
    assert "\n" not in caught.value.message and str(small) in caught.value.message, caught.value.message
    assert not any((server.data_dir / "snapshots").iterdir())


def test_backup_all_and_restore_all_hold_the_metrics(server: PrometheusServer, redis_rdb: RedisProcess,
                                                     tmp_path: Path) -> None:
    server.wait_ready()
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "nginx.conf").write_text("events {}\n")
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    client.create_collection("docs", vectors_config=VectorParams(size=2, distance=Distance.COSINE))
    client.close()
    config = dataclasses.replace(
        config_for(tmp_path, redis_rdb), files=FilesSource(root=str(tmp_path / "cfg"), paths=("nginx.conf",)),
        qdrant={"production": QdrantInstance(name="production", path=str(tmp_path / "qdrant"))},
        prometheus={"production": server.instance()}, prometheus_default="production")

    for source in ("config", "redis", "qdrant", "prometheus"):  # imported here, not in backup_all's threads:
        engine_for(source)  # Python 3.11's ast.parse (pytest's assertion rewriting) is not thread-safe
    taken = api.backup(config, "all").manifest
    assert set(taken.facts["members"]) == {"config", "redis", "qdrant", "prometheus"}
    server.kill()
    shutil.rmtree(server.data_dir)
    restored = api.restore(config, "all", taken.id)
    assert restored.ok and server.ready()
    assert {"prometheus: series", "prometheus: newest sample"} <= {c.name for c in restored.checks}


def test_a_read_only_data_dir_fails_the_restore_in_one_line_before_anything_is_stopped(
        server: PrometheusServer, tmp_path: Path) -> None:
    server.wait_ready()
    taken = api.backup(make_config(server, tmp_path), "prometheus").manifest
    pid = server.pid()
    with tmpfs(tmp_path / "ro", size="64k", readonly=True) as readonly:
        config = make_config(server, tmp_path, data_dir=str(readonly / "data"))
        with pytest.raises(StorageError) as caught:
            api.restore(config, "prometheus", taken.id)
    assert caught.value.exit_code == 9 and "\n" not in caught.value.message, caught.value.message
    assert str(readonly) in caught.value.message and "Read-only file system" in caught.value.message
    assert "Prometheus production" in caught.value.message and "nothing was changed" in caught.value.message
    assert server.pid() == pid and server.ready()  # nothing was stopped
    assert not api.interrupted_restores(config)


def test_restore_through_the_command_runtime(tmp_path: Path) -> None:
    """runtime: command: the operator's own start/stop/status scripts (supervisord, s6 ... stand-ins)."""
    server = PrometheusServer(tmp_path / "managed", free_port())
    server.base.mkdir()
    (server.base / "prometheus.yml").write_text(SCRAPE.format(port=server.port))
    (server.base / "rules.yml").write_text(RULES)
    pidfile = server.base / "prometheus.pid"
    scripts = {
        "start": f"cd {server.base} && setsid {' '.join(server.argv())} >>prometheus.log 2>&1 </dev/null & "
                 f"echo $! > {pidfile}",
        "stop": f"kill $(cat {pidfile}); while kill -0 $(cat {pidfile}) 2>/dev/null; do sleep 0.05; done",
        "status": f"kill -0 $(cat {pidfile}) 2>/dev/null",
    }
    commands = {name: ("sh", "-c", script) for name, script in scripts.items()}
    config = make_config(server, tmp_path, runtime="command", commands=commands, data_dir=str(server.data_dir))
    subprocess.run(commands["start"], check=True)
    try:
        server.wait_ready()
        server.wait_samples(2)
        taken = api.backup(config, "prometheus").manifest
        server.kill()
        shutil.rmtree(server.data_dir)

        result = api.restore(config, "prometheus", taken.id)

        assert result.ok, [c.to_dict() for c in result.checks]
        assert result.facts["runtime"] == "command"
        assert result.facts["newest_restored_sample_ms"] == taken.facts["newest_sample_ms"]
        assert server.pid() == int(pidfile.read_text())  # started by the operator's start command
    finally:
        server.kill()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run Prometheus as another user")
def test_a_server_run_as_another_user_gets_its_restored_files_owned_by_it(tmp_path: Path) -> None:
    """bdr (root) extracts the set; Prometheus (nobody) must own what it restored, or it cannot start."""
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="bdr-prometheus-nobody-"))  # not under root's private pytest dir
    try:
        server = PrometheusServer(base, free_port())
        (base / "prometheus.yml").write_text(SCRAPE.format(port=server.port))
        (base / "rules.yml").write_text(RULES)
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        with (base / "prometheus.log").open("ab") as log:
            subprocess.Popen(server.argv(), cwd=base, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                             user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
        try:
            server.wait_ready()
            server.wait_samples(2)
            config = make_config(server, tmp_path)
            taken = api.backup(config, "prometheus").manifest
            server.kill()
            shutil.rmtree(server.data_dir)

            result = api.restore(config, "prometheus", taken.id)

            assert result.ok, [c.to_dict() for c in result.checks]
            pid = server.pid()
            assert pid is not None and os.stat(f"/proc/{pid}").st_uid == nobody.pw_uid
            owners = {owner for p in [server.data_dir, *server.data_dir.rglob("*")]
                      if ".bdr-restore-" not in str(p) and (owner := uid_if_present(p)) is not None}
            assert owners == {nobody.pw_uid}
        finally:
            server.kill()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def uid_if_present(path: Path) -> int | None:
    """The owner of ``path``; None when the running server removed it since it was listed (WAL and head files)."""
    try:
        return path.stat().st_uid
    except FileNotFoundError:
        return None
