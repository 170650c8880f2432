"""Which drills a change can affect, and what git says changed since a ref."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bdr.errors import NotAGitRepository, UnknownGitRef
from bdr.lint.changes import SCENARIOS, ChangeStatus, changed_files, changes_since, scenarios_for_changes


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", "-c", "init.defaultBranch=main",
         "-c", "commit.gpgsign=false", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    files = {"redis.conf": "appendonly yes\n", "deploy/docker-compose.prod.yml": "services: {}\n",
             "bdr.yaml": "repository: ./backups\n", "README.md": "# app\n", "ops/backups.crontab": ""}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "base")
    git(tmp_path, "checkout", "-qb", "change")
    return tmp_path


def test_scenario_names_are_the_drill_catalogues() -> None:
    from bdr.drill.catalogue import names

    assert names() == SCENARIOS
    assert list(scenarios_for_changes(["drills/scenarios/test_pitr_freshness.py"])) == ["backup_freshness"]
    assert list(scenarios_for_changes(["drills/scenarios/test_pitr_restore.py"])) == ["pitr_restore"]


def test_redis_conf_affects_the_redis_scenarios() -> None:
    affected = scenarios_for_changes(["config/redis.conf"])
    assert list(affected) == ["redis_restart", "redis_corruption", "redis_local_restore"]
    assert affected["redis_restart"] == [
        "config/redis.conf changed: Redis persistence decides what a restart keeps, how a damaged AOF/RDB is "
        "repaired and how a restore loads"
    ]


def test_compose_policy_crontab_and_scenario_modules() -> None:
    assert list(scenarios_for_changes([Path("docker-compose.prod.yml")])) == ["complete_data_loss"]
    assert list(scenarios_for_changes(["bdr.yaml"])) == list(SCENARIOS)
    assert list(scenarios_for_changes(["ops/backups.crontab"])) == ["backup_freshness"]
    assert list(scenarios_for_changes(["drills/scenarios/test_offsite_restore.py"])) == ["offsite_restore"]


def test_reasons_add_up_without_repeating() -> None:
    affected = scenarios_for_changes(["redis.conf", "docker-compose.yml", "redis.conf"])
    assert list(affected) == ["redis_restart", "redis_corruption", "redis_local_restore", "complete_data_loss"]
    assert len(affected["redis_restart"]) == 1


def test_no_configuration_change_means_no_drill() -> None:
    assert scenarios_for_changes(["README.md", "src/app.py", ".env.example", "nginx.conf"]) == {}


def test_changed_files_since_the_branch_point(checkout: Path) -> None:
    (checkout / "redis.conf").write_text("appendonly no\n")
    git(checkout, "commit", "-qam", "aof off")
    (checkout / "README.md").write_text("# app\nmore\n")          # uncommitted
    (checkout / "bdr.yaml").unlink()                               # deleted, uncommitted
    (checkout / "new.crontab").write_text("0 * * * * bdr backup redis\n")  # untracked
    git(checkout, "checkout", "-q", "main")
    git(checkout, "checkout", "-q", "-")                           # back on the branch, changes kept
    changes = {c.path.relative_to(checkout.resolve()).as_posix(): c.status for c in changes_since("main", checkout)}
    assert changes == {
        "redis.conf": ChangeStatus.CHANGED, "README.md": ChangeStatus.CHANGED, "bdr.yaml": ChangeStatus.DELETED,
        "new.crontab": ChangeStatus.CHANGED,
    }
    sub = checkout / "deploy"
    assert Path("../redis.conf") in changed_files("main", sub)


def test_changes_on_the_base_branch_do_not_count(checkout: Path) -> None:
    git(checkout, "checkout", "-q", "main")
    (checkout / "redis.conf").write_text("appendonly no\n")
    git(checkout, "commit", "-qam", "someone else's change on main")
    git(checkout, "checkout", "-q", "change")
    assert changed_files("main", checkout) == []


def test_an_unknown_ref_says_how_to_fetch_it(checkout: Path) -> None:
    with pytest.raises(UnknownGitRef, match="fetch-depth: 0") as caught:
        changed_files("origin/main", checkout)
    assert caught.value.exit_code == 2


def test_outside_a_checkout(tmp_path: Path) -> None:
    with pytest.raises(NotAGitRepository):
        changed_files("main", tmp_path)
