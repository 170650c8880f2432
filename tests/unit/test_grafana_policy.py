"""Grafana in bdr.yaml: the ``grafana:`` section, its targets and schedule, and what bdr lint says of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bdr.config import Config, parse_config
from bdr.errors import ConfigError, UnknownTarget
from bdr.schedule.jobs import jobs_for
from tests.unit.test_lint_policy import lint, project, rules

GRAFANA = {"production": {"db_path": "/var/lib/grafana/grafana.db", "url": "http://127.0.0.1:3000",
                          "token_file": "/etc/bdr/grafana.token"}}


def test_the_section_is_parsed_with_the_debian_unit_and_the_dashboards_targets() -> None:
    config = parse_config({"grafana": GRAFANA})
    grafana = config.grafana_instance()
    assert (grafana.name, grafana.runtime, grafana.unit) == ("production", "systemd", "grafana-server.service")
    assert config.targets.rpo["dashboards"] == 86400.0 and "dashboards_restore" in config.targets.rto
    assert Config().grafana == {} and "dashboards" in Config().targets.rpo
    with pytest.raises(UnknownTarget, match="add a grafana: section"):
        Config().grafana_instance()


@pytest.mark.parametrize(("settings", "message"), [
    ({"runtime": "process"}, "unknown runtime 'process'"),
    ({"runtime": "command"}, "commands.start and commands.stop"),
    ({"runtime": "command", "url": None, "commands": {"start": "true", "stop": "true"}}, "needs commands.status"),
    ({"runtime": "docker"}, "needs container"),
    ({"url": "127.0.0.1:3000"}, "http:// or https://"),
    ({"token_env": "glsa_0123456789abcdef-not-a-name"}, "must name an environment variable"),
    ({"password": "x"}, "unknown key"),
])
def test_bad_settings_are_refused_naming_the_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"grafana": {"production": {**GRAFANA["production"], **settings}}})


def test_a_schedule_entry_runs_bdr_backup_grafana_per_instance() -> None:
    config = parse_config({"grafana": GRAFANA, "schedule": {"grafana": "0 3 * * *", "verify": "0 5 * * *"}})
    jobs = {j.name: j for j in jobs_for(config)}
    assert jobs["backup-grafana-production"].args == ("backup", "grafana", "--instance", "production")
    assert jobs["verify-grafana-production"].args == ("verify", "latest", "--source", "grafana", "--instance",
                                                      "production")


def test_lint_finds_a_grafana_on_sqlite_without_a_schedule(tmp_path: Path) -> None:
    report = lint(project(tmp_path, grafana=GRAFANA))
    found = [f for f in report.findings if f.rule == "BDR-D001"]
    assert len(found) == 1 and "grafana.production" in found[0].message and report.failed()
    assert found[0].line is not None


def test_lint_is_content_with_a_daily_schedule_and_flags_a_weekly_one(tmp_path: Path) -> None:
    schedule = {"redis": "*/10 * * * *", "qdrant": "0 */6 * * *", "config": "0 */6 * * *"}
    (tmp_path / "daily").mkdir()
    (tmp_path / "weekly").mkdir()
    daily = lint(project(tmp_path / "daily", grafana=GRAFANA, schedule={**schedule, "grafana": "0 3 * * *"}))
    assert not {"BDR-D001", "BDR-D002"} & set(rules(daily))
    weekly = lint(project(tmp_path / "weekly", grafana=GRAFANA, schedule={**schedule, "grafana": "0 3 * * 0"}))
    assert "BDR-D002" in rules(weekly)


def test_lint_leaves_a_grafana_on_postgres_alone(tmp_path: Path) -> None:
    ini = tmp_path / "grafana.ini"
    ini.write_text("[database]\ntype = postgres\nhost = 127.0.0.1:5432\n")
    report = lint(project(tmp_path, grafana={"production": {**GRAFANA["production"], "config_file": str(ini)}}))
    assert "BDR-D001" not in rules(report)


def test_a_configured_grafana_is_a_member_of_the_whole_system_set() -> None:
    from bdr.api.system import members_of

    assert members_of(Config()) == ("config", "redis", "qdrant")
    assert members_of(parse_config({"grafana": GRAFANA}))[-1] == "grafana"
