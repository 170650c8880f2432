"""``bdr lint`` as CI and an operator run it: real config files, a real git history, real backups."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bdr.runtime.process import RedisProcess

DATA = Path(__file__).parent.parent / "data" / "lint"
WORKFLOW = Path(__file__).parent.parent.parent / "docs" / "ci" / "drills.yml"
BDR = [sys.executable, "-m", "bdr.cli.main"]


def bdr(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BDR_CONFIG"}
    return subprocess.run([*BDR, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
                          env=env, stdin=subprocess.DEVNULL)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", "-c", "init.defaultBranch=main",
                    "-c", "commit.gpgsign=false", *args], cwd=cwd, check=True, capture_output=True)


def copy(fixture: str, target: Path) -> Path:
    for item in (DATA / fixture).iterdir():
        shutil.copy(item, target / item.name)
    return target


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The clean configuration committed on main, with a branch ``change`` checked out."""
    copy("clean", tmp_path)
    (tmp_path / "README.md").write_text("# agent backend\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "configuration")
    git(tmp_path, "checkout", "-qb", "change")
    return tmp_path


def test_a_clean_configuration_passes(tmp_path: Path) -> None:
    done = bdr(copy("clean", tmp_path), "lint")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no findings" in done.stdout
    assert "sessions" in done.stdout and "total loss" in done.stdout


def test_the_runbook_as_it_was_fails_with_the_computed_windows(tmp_path: Path) -> None:
    done = bdr(copy("runbook", tmp_path), "lint")
    assert done.returncode == 1
    assert "crontab:9" in done.stdout
    assert "a total loss loses up to 1h 5m of Redis data, more than the RPO of sessions (1h)" in done.stdout
    assert "a total loss loses up to 1d 5m of Qdrant data, more than the RPO of vectors (1d)" in done.stdout
    assert re.search(r"bdr: error: lint: \d+ finding\(s\) at error level or worse \(.*BDR-B001", done.stderr)
    # the runbook's own persistence settings are fine: ~2 s of writes in a crash
    assert "BDR-R001" not in done.stdout


def test_a_change_that_breaks_the_session_rpo_is_flagged_in_the_pull_request(checkout: Path) -> None:
    shutil.copy(DATA / "changes" / "redis.conf", checkout / "redis.conf")
    git(checkout, "commit", "-qam", "turn AOF off, fewer snapshots")

    done = bdr(checkout, "lint", "--changed-since", "main", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["files"] == ["redis.conf"]
    (finding,) = report["findings"]
    assert (finding["id"], finding["path"], finding["line"], finding["severity"]) == (
        "BDR-R001", "redis.conf", 12, "error")
    assert finding["facts"]["window_seconds"] == 3600
    assert finding["facts"]["rpo_seconds"] == {"sessions": 1800}
    assert finding["message"] == (
        "appendonly no with save 3600 1: a crash of Redis loses up to 1h of writes, more than the RPO of "
        "sessions (30m)")
    assert "appendonly yes" in finding["fix"]
    crash = {(w["data_type"], w["event"]): w for w in report["windows"]}
    assert crash[("sessions", "crash")]["ok"] is False and crash[("rbac", "crash")]["ok"] is True

    text = bdr(checkout, "lint", "--changed-since", "main")
    assert "redis.conf:12" in text.stdout and "1 error" in text.stdout


def test_dropping_the_redis_volume_is_flagged(checkout: Path) -> None:
    shutil.copy(DATA / "changes" / "docker-compose.yml", checkout / "docker-compose.yml")
    done = bdr(checkout, "lint", "--changed-since", "main")
    assert done.returncode == 1
    assert "docker-compose.yml:3" in done.stdout and "BDR-C001" in done.stdout
    assert "redis.conf" not in done.stdout.split("worst-case")[0].replace("/usr/local/etc/redis/redis.conf", "")


def test_no_configuration_change_is_a_pass(checkout: Path) -> None:
    (checkout / "README.md").write_text("# agent backend\n\nmore words\n")
    git(checkout, "commit", "-qam", "docs")
    done = bdr(checkout, "lint", "--changed-since", "main")
    assert done.returncode == 0, done.stderr
    assert "no configuration file changed since main: nothing to lint" in done.stdout


def test_drill_changed_since_with_no_relevant_change_runs_nothing(checkout: Path) -> None:
    (checkout / "README.md").write_text("# agent backend\n\nmore words\n")
    done = bdr(checkout, "drill", "--changed-since", "main")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing to run" in done.stdout


def test_an_unknown_ref_is_a_usage_error(checkout: Path) -> None:
    done = bdr(checkout, "lint", "--changed-since", "origin/main")
    assert done.returncode == 2
    assert "git ref 'origin/main' is not known" in done.stderr and "fetch-depth: 0" in done.stderr


def test_sarif_to_a_file_and_text_to_the_log(tmp_path: Path) -> None:
    cwd = copy("runbook", tmp_path)
    done = bdr(cwd, "lint", "--format", "sarif", "--output", "reports/lint.sarif")
    assert done.returncode == 1
    assert "BDR-B001" in done.stdout and "wrote the sarif report to reports/lint.sarif" in done.stdout
    log = json.loads((cwd / "reports" / "lint.sarif").read_text())
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"BDR-B001", "BDR-C002", "BDR-C007", "BDR-K001"}
    assert not list((cwd / "reports").glob(".*.tmp"))
    on_stdout = bdr(cwd, "lint", "--format", "sarif")
    assert json.loads(on_stdout.stdout)["version"] == "2.1.0"


def test_fail_on_warning_and_ignore(tmp_path: Path) -> None:
    cwd = copy("clean", tmp_path)
    (cwd / "redis.conf").write_text((cwd / "redis.conf").read_text() + "aof-use-rdb-preamble no\n")
    assert bdr(cwd, "lint").returncode == 0
    assert bdr(cwd, "lint", "--fail-on", "info").returncode == 1
    assert bdr(cwd, "lint", "--fail-on", "info", "--ignore", "BDR-R004", "--ignore", "BDR-R007").returncode == 0


def test_list_rules(tmp_path: Path) -> None:
    done = bdr(tmp_path, "lint", "--list-rules", "--json")
    rules = json.loads(done.stdout)
    assert {"BDR-R001", "BDR-B001", "BDR-C001", "BDR-K001", "BDR-P001"} <= {r["id"] for r in rules}
    assert all(r["severity"] in ("error", "warning", "info") and r["help"] for r in rules)


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    done = bdr(tmp_path, "--config", "nope.yaml", "lint")
    assert done.returncode == 3 and "nope.yaml" in done.stderr


def test_the_backup_duration_is_measured_from_the_repository(redis_aof: RedisProcess, tmp_path: Path) -> None:
    instance = redis_aof.instance
    policy = yaml.safe_load((DATA / "clean" / "bdr.yaml").read_text())
    policy["repository"] = str(tmp_path / "repo")
    policy["redis"] = {"production": {"url": instance.url, "data_dir": instance.data_dir, "password_env": None,
                                      "start_args": list(instance.start_args)}}
    policy["schedule"]["redis"] = "*/30 * * * *"
    policy.pop("lint")
    (tmp_path / "bdr.yaml").write_text(yaml.safe_dump(policy))
    redis_aof.client().set("session:1", "alice")

    before = bdr(tmp_path, "lint", "--json")
    assert before.returncode == 1
    (estimated,) = [f for f in json.loads(before.stdout)["findings"] if f["id"] == "BDR-B001"]
    assert estimated["facts"]["backup_duration_measured"] is False  # 30m + the 5m default estimate > 30m

    backup = bdr(tmp_path, "backup", "redis", "--json")
    assert backup.returncode == 0, backup.stderr
    manifest = json.loads(backup.stdout)

    after = bdr(tmp_path, "lint", "--json")
    report = json.loads(after.stdout)
    (measured,) = [f for f in report["findings"] if f["id"] == "BDR-B001"]
    assert measured["facts"]["backup_duration_measured"] is True
    assert manifest["id"] in measured["impact"] and "measured" in measured["impact"]
    assert 0 < measured["facts"]["backup_seconds"] < 60
    assert measured["facts"]["window_seconds"] == pytest.approx(1800 + measured["facts"]["backup_seconds"])


def _github_glob(pattern: str) -> re.Pattern[str]:
    """GitHub's path filter: ``**`` crosses directories, ``*`` does not."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def test_the_ci_workflow(tmp_path: Path) -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    trigger = workflow[True]  # YAML 1.1 reads the key `on` as true
    paths = [_github_glob(p) for p in trigger["pull_request"]["paths"]]
    for changed in ("redis.conf", "config/redis.conf", "docker-compose.yml", "deploy/docker-compose.prod.yml",
                    "compose.yaml", "bdr.yaml", "ops/backups.crontab", "crontab"):
        assert any(p.match(changed) for p in paths), changed
    assert not any(p.match("README.md") for p in paths)
    assert workflow["permissions"]["security-events"] == "write"

    steps = workflow["jobs"]["gate"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert uses[0].startswith("actions/checkout@") and steps[0]["with"]["fetch-depth"] == 0
    assert any(u.startswith("github/codeql-action/upload-sarif@") for u in uses)
    artifact = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert artifact["with"]["path"] == "reports/" and artifact["if"] == "always()"
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "make setup" in runs
    # every option the workflow passes exists
    help_lint = bdr(tmp_path, "lint", "--help").stdout
    help_drill = bdr(tmp_path, "drill", "--help").stdout
    for command, text in (("lint", help_lint), ("drill", help_drill)):
        for line in re.findall(rf"\.venv/bin/bdr {command}([^\n]*(?:\\\n[^\n]*)*)", runs):
            for option in re.findall(r"(--[a-z-]+)", line):
                assert option in text, f"bdr {command} has no {option}"
