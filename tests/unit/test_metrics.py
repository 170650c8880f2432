"""Backup and drill metrics: the exposition text, what it is computed from, and the state file."""

from __future__ import annotations

import dataclasses
import json
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bdr.config import Config
from bdr.errors import ServiceUnavailable
from bdr.monitoring.metrics import (
    DrillMetrics,
    MetricFamily,
    MetricsState,
    Objective,
    ObjectiveResult,
    collect,
    drill_metrics_from_report,
    read_state,
    record_backup,
    record_drill,
    record_drill_report,
    record_failure,
    record_verify,
    render,
    state_path,
)
from bdr.monitoring.status import RepositoryView
from bdr.repository import Repository, Verification
from bdr.repository.manifest import to_iso
from drills.evidence import DrillResult, Outcome, RunReport, TargetCheck
from tests.backup_sets import make_manifest, make_set, store_set

NOW = datetime(2026, 1, 24, 12, 0, tzinfo=UTC)
SAMPLE = re.compile(r'^([a-z_][a-z0-9_]*)(\{[^}]*\})? (\S+)$')


def parse(text: str) -> dict[str, float]:
    """``name{labels}`` -> value, checking that every sample's family has HELP and TYPE lines before it."""
    seen: set[str] = set()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            seen.add(line.split()[2])
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        assert match.group(1) in seen, f"{match.group(1)} has no HELP/TYPE"
        values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


def view(url: str, *sets: object, error: str | None = None) -> RepositoryView:
    location = "s3" if url.startswith("s3://") else "local"
    return RepositoryView(url, location, f"{location}:{url}", location == "s3", tuple(sets), error)  # type: ignore[arg-type]


def test_render_writes_help_type_escaped_labels_and_plain_values() -> None:
    family = MetricFamily("backup_sets", 'Sets.\nWith "quotes".')
    family.add(3, source="redis", instance='a"b\\c\nd')
    family.add(1.5, source="config", instance="x")
    empty = MetricFamily("drill_passed", "Nothing yet.")
    text = render([family, empty])
    assert text == (
        "# HELP backup_sets Sets.\\nWith \"quotes\".\n"
        "# TYPE backup_sets gauge\n"
        'backup_sets{instance="a\\"b\\\\c\\nd",source="redis"} 3.0\n'
        'backup_sets{instance="x",source="config"} 1.5\n'
        "# HELP drill_passed Nothing yet.\n"
        "# TYPE drill_passed gauge\n"
    )


def test_collect_from_repositories() -> None:
    newest = make_set(NOW - timedelta(hours=1), verified=True, verified_at=NOW - timedelta(minutes=30))
    older = make_set(NOW - timedelta(hours=3), verified=False, verified_at=NOW - timedelta(hours=2))
    offsite = make_set(NOW - timedelta(hours=2), location="s3")
    safety = make_set(NOW, tags=("safety",))
    views = [view("/backups", newest, older, safety), view("s3://b/bdr", offsite)]
    values = parse(render(collect(Config(), views, MetricsState(), NOW)))
    redis = '{instance="production",source="redis"}'
    assert values[f"backup_last_success_timestamp{redis}"] == (NOW - timedelta(hours=1)).timestamp()
    assert values[f"backup_size_bytes{redis}"] == 1000
    assert values[f"backup_duration_seconds{redis}"] == 2.0
    assert values[f"backup_last_verify_timestamp{redis}"] == (NOW - timedelta(minutes=30)).timestamp()
    assert values[f"backup_last_verify_failure_timestamp{redis}"] == (NOW - timedelta(hours=2)).timestamp()
    assert values['backup_sets{instance="production",location="local",source="redis"}'] == 2  # safety set left out
    assert values['backup_sets{instance="production",location="s3",source="redis"}'] == 1
    assert values[f"backup_321_ok{redis}"] == 1
    assert f"backup_last_failure_timestamp{redis}" not in values
    # scheduled sources with no backup at all: success at 0 so BackupTooOld fires, 3-2-1 broken
    assert values['backup_last_success_timestamp{instance="production",source="qdrant"}'] == 0
    assert values['backup_last_verify_timestamp{instance="config",source="config"}'] == 0
    assert values['backup_321_ok{instance="config",source="config"}'] == 0
    assert values['backup_repository_up{location="local",repository="/backups"}'] == 1


def test_an_unreadable_repository_is_down() -> None:
    values = parse(render(collect(Config(), [view("s3://b", error="no")], MetricsState(), NOW)))
    assert values['backup_repository_up{location="s3",repository="s3://b"}'] == 0


def test_groups_found_but_not_scheduled_only_count_their_sets() -> None:
    """A one-off backup of a test instance must not page anyone a day later."""
    other = make_set(NOW - timedelta(days=30), instance="test")
    values = parse(render(collect(Config(), [view("/backups", other)], MetricsState(), NOW)))
    assert not [k for k in values if 'instance="test"' in k]


def metrics_config(tmp_path: Path) -> Config:
    return dataclasses.replace(Config(), repository=str(tmp_path / "repo"),
                               metrics_textfile=str(tmp_path / "textfile" / "bdr.prom"))


def test_a_failure_is_remembered_until_a_newer_success(tmp_path: Path) -> None:
    config = metrics_config(tmp_path)
    record_failure(config, "redis", "production", ServiceUnavailable(service="Redis", address="127.0.0.1:6379",
                                                                    detail="connection refused"))
    textfile = tmp_path / "textfile" / "bdr.prom"
    values = parse(textfile.read_text())
    redis = '{instance="production",source="redis"}'
    assert values[f"backup_last_failure_timestamp{redis}"] > values[f"backup_last_success_timestamp{redis}"] == 0
    state = json.loads((tmp_path / "textfile" / "bdr.state.json").read_text())
    assert state["failures"]["redis/production"]["error"].startswith("cannot reach Redis at 127.0.0.1:6379")
    assert stat.S_IMODE((tmp_path / "textfile" / "bdr.state.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(textfile.stat().st_mode) == 0o644

    repo = Repository.open(tmp_path / "repo")
    manifest = make_manifest(datetime.now(UTC), ident="redis-fresh", seconds=2.0)
    store_set(repo, manifest)
    record_backup(config, manifest, 7.25, "local")
    values = parse(textfile.read_text())
    assert values[f"backup_last_success_timestamp{redis}"] > values[f"backup_last_failure_timestamp{redis}"]
    assert values[f"backup_duration_seconds{redis}"] == 7.25  # the measured run, not the manifest's 2 s
    assert values['backup_sets{instance="production",location="local",source="redis"}'] == 1
    assert sorted(p.name for p in (tmp_path / "textfile").iterdir()) == [".bdr.state.json.lock", "bdr.prom",
                                                                         "bdr.state.json"]


def test_a_failed_unscheduled_group_is_tracked_while_failing(tmp_path: Path) -> None:
    config = metrics_config(tmp_path)
    record_failure(config, "redis", "sessions", RuntimeError("boom"))
    values = parse((tmp_path / "textfile" / "bdr.prom").read_text())
    assert 'backup_last_failure_timestamp{instance="sessions",source="redis"}' in values
    assert read_state(state_path(config)).failures["redis/sessions"]["error"] == "RuntimeError: boom"


def test_a_backup_into_another_repository_still_counts_as_success(tmp_path: Path) -> None:
    config = metrics_config(tmp_path)
    manifest = make_manifest(NOW, ident="redis-elsewhere")
    record_backup(config, manifest, 3.0, "local")
    values = parse(render(collect(config, [], None, NOW)))
    assert values['backup_last_success_timestamp{instance="production",source="redis"}'] == NOW.timestamp()
    assert values['backup_size_bytes{instance="production",source="redis"}'] == 1000


def test_a_repository_bdr_yaml_does_not_name_is_remembered_and_listed_for_30_days(tmp_path: Path) -> None:
    config = metrics_config(tmp_path)
    now = datetime.now(UTC)
    elsewhere = tmp_path / "second-disk"
    store_set(Repository.open(elsewhere), make_manifest(now))
    record_backup(config, make_manifest(now), 3.0, "local", str(elsewhere))
    record_backup(config, make_manifest(now), 3.0, "local", str(config.repository_path().resolve()))
    state = read_state(state_path(config))
    assert list(state.repositories) == [str(elsewhere)]  # the configured repository needs no remembering
    text = (tmp_path / "textfile" / "bdr.prom").read_text()
    assert f'backup_repository_up{{location="local",repository="{elsewhere}"}} 1' in text
    assert state.remembered(now + timedelta(days=29)) == [str(elsewhere)]
    assert state.remembered(now + timedelta(days=31)) == []


def test_safety_backups_are_not_recorded(tmp_path: Path) -> None:
    config = metrics_config(tmp_path)
    record_backup(config, make_manifest(NOW, tags=("safety",)), 1.0, "local")
    assert not (tmp_path / "textfile").exists()


def test_verify_results_are_recorded(tmp_path: Path) -> None:
    config = metrics_config(tmp_path)
    backup = make_set(NOW - timedelta(days=1))
    record_verify(config, backup, True, at=NOW - timedelta(hours=5))
    record_verify(config, backup, False, at=NOW - timedelta(hours=1))
    values = parse(render(collect(config, [], None, NOW)))
    redis = '{instance="production",source="redis"}'
    assert values[f"backup_last_verify_timestamp{redis}"] == (NOW - timedelta(hours=5)).timestamp()
    assert values[f"backup_last_verify_failure_timestamp{redis}"] == (NOW - timedelta(hours=1)).timestamp()


def test_drills_replace_their_own_scenario_and_keep_the_others(tmp_path: Path) -> None:
    config = metrics_config(tmp_path)
    first = DrillMetrics("complete_data_loss", NOW - timedelta(days=1), (
        ObjectiveResult(Objective.RTO, "full_system_restore", 1800, 950.5),
        ObjectiveResult(Objective.RPO, "sessions", 3600, 4000),
        ObjectiveResult(Objective.RPO, "vectors", 86400, None),
    ))
    other = DrillMetrics("accidental_deletion", NOW - timedelta(days=1), (
        ObjectiveResult(Objective.RTO, "redis_local_restore", 300, 12),), passed=True)
    record_drill(config, [first, other])
    again = DrillMetrics("complete_data_loss", NOW, (ObjectiveResult(Objective.RTO, "full_system_restore", 1800, 60),))
    record_drill(config, [again])
    values = parse(render(collect(config, [], None, NOW)))
    assert values['drill_rto_seconds{scenario="complete_data_loss",target="full_system_restore"}'] == 60
    assert 'drill_rpo_seconds{data_type="sessions",scenario="complete_data_loss"}' not in values
    assert values['drill_target_met{name="redis_local_restore",objective="rto",scenario="accidental_deletion"}'] == 1
    assert values['drill_last_run_timestamp{scenario="complete_data_loss"}'] == NOW.timestamp()
    assert not first.met and again.met


def test_the_drill_suites_run_report_becomes_drill_metrics(tmp_path: Path) -> None:
    def result(scenario: str, outcome: Outcome, *checks: TargetCheck) -> DrillResult:
        return DrillResult(scenario, scenario, f"drills::{scenario}", "process", to_iso(NOW - timedelta(minutes=5)),
                           to_iso(NOW), outcome, checks=list(checks))

    report = RunReport("drill-1", to_iso(NOW - timedelta(minutes=9)), to_iso(NOW), [
        result("complete_data_loss", Outcome.PASSED, TargetCheck("rto", "full_system_restore", 1800, 31.0),
               TargetCheck("rpo", "sessions", 3600, 4000.0), TargetCheck("rpo", "vectors", 86400, None)),
        result("network_partition", Outcome.SKIPPED),
        result("disk_full", Outcome.FAILED),
    ], environment={}, policy={})
    drills = drill_metrics_from_report(report)
    assert [(d.scenario, d.passed, d.met) for d in drills] == [("complete_data_loss", True, False),
                                                               ("disk_full", False, False)]
    config = metrics_config(tmp_path)
    record_drill_report(config, report)
    values = parse((tmp_path / "textfile" / "bdr.prom").read_text())
    assert values['drill_rto_seconds{scenario="complete_data_loss",target="full_system_restore"}'] == 31
    assert values['drill_rpo_seconds{data_type="sessions",scenario="complete_data_loss"}'] == 4000
    assert values['drill_target_met{name="sessions",objective="rpo",scenario="complete_data_loss"}'] == 0
    assert values['drill_target_met{name="vectors",objective="rpo",scenario="complete_data_loss"}'] == 0
    assert values['drill_target_seconds{name="vectors",objective="rpo",scenario="complete_data_loss"}'] == 86400
    assert values['drill_passed{scenario="disk_full"}'] == 0


def test_metrics_are_off_without_a_textfile_or_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = dataclasses.replace(Config(), repository=str(tmp_path / "repo"))
    assert state_path(config) is None
    record_failure(config, "redis", "production", RuntimeError("boom"))
    record_backup(config, make_manifest(NOW), 1.0, "local")
    assert list(tmp_path.iterdir()) == []


def test_metrics_state_can_live_apart_from_the_textfile(tmp_path: Path) -> None:
    config = dataclasses.replace(Config(), repository=str(tmp_path / "repo"),
                                 metrics_state=str(tmp_path / "state" / "metrics.json"))
    record_failure(config, "redis", "production", RuntimeError("boom"))
    assert read_state(tmp_path / "state" / "metrics.json").failures["redis/production"]["error"] == \
        "RuntimeError: boom"


def test_an_unreadable_state_file_is_ignored_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "bdr.state.json"
    path.write_text("{not json")
    assert read_state(path) == MetricsState()
    config = dataclasses.replace(Config(), repository=str(tmp_path / "repo"), metrics_state=str(path))
    record_failure(config, "redis", "production", RuntimeError("boom"))
    assert read_state(path).failures["redis/production"]["error"] == "RuntimeError: boom"


def test_verifications_recorded_in_the_repository_count(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    store_set(repo, make_manifest(NOW - timedelta(hours=2)),
              Verification(at=to_iso(NOW - timedelta(hours=1)), ok=True, restore_test=True))
    config = dataclasses.replace(Config(), repository=str(tmp_path / "repo"))
    values = parse(render(collect(config, None, MetricsState(), NOW)))
    assert values['backup_last_verify_timestamp{instance="production",source="redis"}'] == \
        (NOW - timedelta(hours=1)).timestamp()
