"""``bdr drill --live`` of the monitoring sources: a real Prometheus and a real grafana.db, production only read.

Each test backs its source up once, runs the live drill through the CLI with the datastores
disabled (``drill: {redis: false, ...}``), and checks what an operator checks: exit 0 and
the RTO/RPO objectives in the JSON report, production the same afterwards (the Prometheus
pid and head, the grafana.db byte for byte), and a BREACH (exit 1) when an application check
fails on the restored data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bdr import api
from bdr.cli.main import cli
from bdr.config import load_config
from bdr.crypto import generate_key_file
from bdr.drill.live import run_live
from bdr.drill.settings import parse_drill
from bdr.errors import ConfigError, UsageError
from tests.grafana_fixtures import grafana_tree, standin_commands
from tests.prometheus_fixtures import needs_prometheus, running_prometheus

OFF = {"redis": False, "qdrant": False, "config": False}


def _live(doc: dict[str, Any], tmp: Path, name: str) -> tuple[int, str, dict[str, Any]]:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    reports = tmp / f"reports-{name}"
    result = CliRunner().invoke(cli, ["--config", str(path), "drill", "--live", "--reports", str(reports),
                                      "--no-evidence"])
    found = sorted(reports.glob("drill-live-*.json"))
    return result.exit_code, result.output, json.loads(found[-1].read_text()) if found else {}


def _result(report: dict[str, Any], key: str) -> dict[str, Any]:
    return next(r for r in report["results"] if r["key"] == key)


def _objectives(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["kind"], c["name"]): c for c in result["checks"]}


def _key(tmp: Path) -> str:
    key = tmp / "backup.key"
    generate_key_file(key)
    return str(key)


@needs_prometheus
def test_prometheus_restored_into_a_temporary_server_production_untouched(tmp_path: Path) -> None:
    with running_prometheus(tmp_path / "prod") as server:
        doc: dict[str, Any] = {
            "repository": str(tmp_path / "repo"), "encryption": {"key_file": _key(tmp_path)},
            "prometheus": {"production": {"url": server.url, "log_file": str(server.base / "bdr.log")}},
            "drill": {**OFF, "prometheus": {"checks": [{"min_series": 1}]}},
        }
        (tmp_path / "bdr.yaml").write_text(yaml.safe_dump(doc))
        taken = api.backup(load_config(tmp_path / "bdr.yaml"), "prometheus").manifest
        pid = server.pid()
        code, out, report = _live(doc, tmp_path, "good")
        assert code == 0, out
        result = _result(report, "live_prometheus")
        objectives = _objectives(result)
        assert objectives[("rto", "metrics_restore")]["met"]
        assert objectives[("rpo", "metrics")]["met"] and objectives[("rpo", "metrics")]["achieved_seconds"] < 600
        verified = {v["name"]: v for v in result["verifications"]}
        trial = verified["restore test"]
        assert trial["ok"] and f"{taken.facts['series']} series" in trial["detail"]
        assert verified["at least 1 series"]["ok"]
        assert "not restarted" in verified["prometheus/production untouched"]["detail"]
        assert "live_system" not in {r["key"] for r in report["results"]}  # the datastores were not tested
        assert server.pid() == pid and server.ready(), "production Prometheus was restarted"
        assert result["evidence"]["production"]["before"]["counts"]["head_series"] >= 1

        doc["drill"]["prometheus"] = {"checks": [{"min_series": 10**6}]}
        code, out, report = _live(doc, tmp_path, "breach")
        assert code == 1, out
        failed = [v for v in _result(report, "live_prometheus")["verifications"] if not v["ok"] and not v["skipped"]]
        assert [v["name"] for v in failed] == ["at least 1000000 series"]
        assert server.pid() == pid


def test_grafana_restored_into_scratch_production_db_untouched(tmp_path: Path) -> None:
    paths = grafana_tree(tmp_path / "grafana")
    commands = {verb: list(argv) for verb, argv in standin_commands(tmp_path, paths["db"]).items()}
    doc: dict[str, Any] = {
        "repository": str(tmp_path / "repo"), "encryption": {"key_file": _key(tmp_path)},
        "grafana": {"production": {"db_path": str(paths["db"]), "config_file": str(paths["ini"]),
                                   "provisioning": str(paths["provisioning"]), "runtime": "command",
                                   "commands": commands, "token_env": None}},
        "drill": {**OFF, "grafana": {"checks": [{"dashboard_exists": "redis-health"}]}},
    }
    (tmp_path / "bdr.yaml").write_text(yaml.safe_dump(doc))
    api.backup(load_config(tmp_path / "bdr.yaml"), "grafana")
    before = hashlib.sha256(paths["db"].read_bytes()).hexdigest()
    code, out, report = _live(doc, tmp_path, "good")
    assert code == 0, out
    result = _result(report, "live_grafana")
    objectives = _objectives(result)
    assert objectives[("rto", "dashboards_restore")]["met"] and objectives[("rpo", "dashboards")]["met"]
    verified = {v["name"]: v for v in result["verifications"]}
    assert verified["integrity_check"]["ok"] and verified["inventory"]["ok"]
    assert verified["dashboard 'redis-health' exists"]["ok"]
    assert verified["grafana/production untouched"]["ok"]
    assert len(result["evidence"]["production"]["after"]["counts"]) == 4
    assert "grafana" in result["evidence"]["restore_target"]["path"]
    assert not Path(result["evidence"]["restore_target"]["path"]).exists(), "the scratch copy was left behind"

    doc["drill"]["grafana"] = {"checks": [{"dashboard_exists": "no-such-dashboard"}]}
    code, out, report = _live(doc, tmp_path, "breach")
    assert code == 1, out
    assert not next(v for v in _result(report, "live_grafana")["verifications"]
                    if v["name"] == "dashboard 'no-such-dashboard' exists")["ok"]
    assert hashlib.sha256(paths["db"].read_bytes()).hexdigest() == before, "production grafana.db was written"


def test_monitoring_checks_parse_and_an_unconfigured_source_is_refused(tmp_path: Path) -> None:
    drill = parse_drill({"prometheus": {"checks": [{"min_series": 50}]},
                         "grafana": {"checks": [{"dashboard_exists": {"uid": "home"}}]}}, "bdr.yaml")
    assert drill.source("prometheus").checks[0].count == 50 and drill.source("grafana").checks[0].uid == "home"
    with pytest.raises(ConfigError, match="min_series is a prometheus check, not a redis one"):
        parse_drill({"redis": {"checks": [{"min_series": 1}]}}, "bdr.yaml")
    with pytest.raises(ConfigError, match=r"drill\.grafana\.target"):
        parse_drill({"grafana": {"target": "/tmp/elsewhere"}}, "bdr.yaml")
    (tmp_path / "bdr.yaml").write_text(yaml.safe_dump({"repository": str(tmp_path / "repo")}))
    with pytest.raises(UsageError, match=r"prometheus: not in bdr\.yaml"):
        run_live(load_config(tmp_path / "bdr.yaml"), sources=["prometheus"])
