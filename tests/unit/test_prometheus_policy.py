"""Prometheus in the policy: its bdr.yaml section, targets, schedule, status, whole-system membership and lint."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bdr.api.system import members_of
from bdr.config import Config, load_config, parse_config
from bdr.errors import ConfigError
from bdr.lint.runner import LintOptions, run_lint
from bdr.monitoring.status import expected_groups
from bdr.schedule.jobs import jobs_for

PROMETHEUS = {"production": {"url": "http://127.0.0.1:1", "data_dir": "/var/lib/prometheus/metrics2"}}


def test_the_section_parses_with_targets_named_for_metrics() -> None:
    config = parse_config({"prometheus": PROMETHEUS, "schedule": {"prometheus": "0 3 * * *"}})
    instance = config.prometheus_instance()
    assert instance.name == "production" and instance.runtime == "process" and instance.admin_api
    assert config.targets.rpo["metrics"] == 7 * 86400 and config.targets.rto["metrics_restore"] > 0
    assert "prometheus" in members_of(config) and "prometheus" not in members_of(Config())
    (job,) = [j for j in jobs_for(config) if j.source == "prometheus"]
    assert job.args == ("backup", "prometheus", "--instance", "production")
    assert ("prometheus", "production") in {(e.source, e.instance) for e in expected_groups(config)}


@pytest.mark.parametrize(("settings", "message"), [
    ({"url": "127.0.0.1:9090"}, "url must be an http"),
    ({"runtime": "k8s"}, "unknown runtime 'k8s'"),
    ({"runtime": "systemd"}, "needs unit"),
    ({"runtime": "command", "commands": {"start": "supervisorctl start prometheus"}}, "commands.stop"),
    ({"admin_api": "yes"}, "admin_api must be true or false"),
    ({"retention": "15d"}, "unknown key(s) in prometheus.production: retention"),
])
def test_a_bad_section_is_one_clear_line(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"prometheus": {"production": settings}})
    assert message in caught.value.message and "\n" not in caught.value.message


def lint(tmp_path: Path, data: dict[str, object]) -> dict[str, str]:
    (tmp_path / "bdr.yaml").write_text(yaml.safe_dump(data))
    load_config(tmp_path / "bdr.yaml")
    report = run_lint(LintOptions(), cwd=tmp_path)
    return {f.rule: f.message for f in report.findings if f.rule.startswith("BDR-M")}


def test_lint_finds_the_admin_api_off_and_a_missing_schedule(tmp_path: Path) -> None:
    off = {"production": {**PROMETHEUS["production"], "admin_api": False}}
    found = lint(tmp_path, {"prometheus": off})
    assert "admin_api is false" in found["BDR-M001"] and "--web.enable-admin-api" in found["BDR-M001"]
    assert "nothing schedules bdr backup prometheus" in found["BDR-M002"]

    weekly = {"prometheus": PROMETHEUS, "schedule": {"prometheus": "0 3 1 * *"}}
    assert set(lint(tmp_path, weekly)) == {"BDR-M003"}
    fine = {"prometheus": PROMETHEUS, "schedule": {"prometheus": "0 3 * * *"}}
    assert lint(tmp_path, fine) == {}
