"""The archive in the policy: archive: settings, bdr schedule's service, bdr lint counting the archive lag."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bdr.config import parse_config
from bdr.errors import ConfigError
from bdr.lint.runner import LintOptions, run_lint
from bdr.schedule.crontab import crontab
from bdr.schedule.jobs import jobs_for
from bdr.schedule.systemd import Invocation, units

DATA = Path(__file__).parent.parent / "data" / "lint"


def test_archive_settings_have_defaults_and_clear_errors() -> None:
    config = parse_config({"archive": {"redis": {"production": {}}}})
    settings = config.archive["production"]
    assert (settings.segment_seconds, settings.segment_bytes, settings.to, settings.max_lag, settings.keep) == (
        10.0, 16 << 20, ("local",), 60.0, None)
    assert config.archive_spool("production").parts[-3:] == ("journal", "archive", "redis-production")
    tuned = parse_config({"archive": {"redis": {"production": {"segment_seconds": "2s", "segment_bytes": "1MiB",
                                                               "max_lag": "30s", "keep": "7d"}}}})
    assert tuned.archive["production"].segment_bytes == 1 << 20 and tuned.archive["production"].keep == 7 * 86400
    for bad, message in (({"nope": {}}, "no redis instance 'nope'"),
                         ({"production": {"to": ["s3"]}}, "set remote.url"),
                         ({"production": {"to": ["tape"]}}, "must list local and/or s3"),
                         ({"production": {"segment_seconds": "10s", "max_lag": "5s"}}, "at least segment_seconds"),
                         ({"production": {"segment_bytes": "1k"}}, "between 64KiB and 1GiB"),
                         ({"production": {"segment_bytes": "lots"}}, "a size such as 16MiB"),
                         ({"production": {"colour": "red"}}, "unknown key")):
        with pytest.raises(ConfigError, match=message):
            parse_config({"archive": {"redis": bad}})
    with pytest.raises(ConfigError, match="only Redis"):
        parse_config({"archive": {"qdrant": {}}})


def test_bdr_schedule_runs_each_archiver_as_a_service_without_a_timer(tmp_path: Path) -> None:
    config = parse_config({"archive": {"redis": {"production": {}}}, "schedule": {"redis": "*/30 * * * *"}},
                          tmp_path / "bdr.yaml")
    jobs = jobs_for(config)
    archive = [j for j in jobs if j.kind == "archive"]
    assert [j.unit for j in archive] == ["bdr-archive-redis-production"]
    how = Invocation(bdr=("/usr/local/bin/bdr",), config=tmp_path / "bdr.yaml", workdir=tmp_path, metrics=True)
    files = {f.name: f.text for f in units(jobs, how, "bdr.yaml")}
    assert "bdr-archive-redis-production.timer" not in files
    service = files["bdr-archive-redis-production.service"]
    for line in ("Type=simple", "Restart=always", "KillSignal=SIGTERM", "WantedBy=multi-user.target",
                 f"ExecStart=/usr/local/bin/bdr --config {tmp_path}/bdr.yaml archive redis --instance production"):
        assert line in service.splitlines()
    assert "--wait-lock" not in service
    cron = crontab(jobs, how, "bdr.yaml").text
    assert "archive redis --instance production" in cron and not any(
        line.endswith("archive redis --instance production") and not line.startswith("#")
        for line in cron.splitlines())
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:
        unit = tmp_path / "bdr-archive-redis-production.service"
        unit.write_text(service.replace("/usr/local/bin/bdr", shutil.which("true") or "/bin/true"))
        done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60,
                              check=False)
        problems = [line for line in (done.stdout + done.stderr).splitlines() if unit.name in line]
        assert not problems, problems


def project(tmp_path: Path, **changes: Any) -> Path:
    for item in (DATA / "clean").iterdir():
        shutil.copy(item, tmp_path / item.name)
    policy = tmp_path / "bdr.yaml"
    data = yaml.safe_load(policy.read_text())
    data.update(changes)
    policy.write_text(yaml.safe_dump(data, sort_keys=False))
    return tmp_path


def test_lint_counts_an_archived_instance_total_loss_as_its_archive_lag(tmp_path: Path) -> None:
    daily = {"redis": "0 2 * * *", "qdrant": "0 */6 * * *", "config": "0 */6 * * *"}
    (tmp_path / "a").mkdir()
    without = run_lint(LintOptions(), cwd=project(tmp_path / "a", schedule=daily))
    assert "BDR-B001" in [f.rule for f in without.findings]  # a daily backup breaches the 30 min sessions RPO
    (tmp_path / "b").mkdir()
    archived = run_lint(LintOptions(), cwd=project(tmp_path / "b", schedule=daily,
                                                   archive={"redis": {"production": {"max_lag": "1m"}}}))
    assert not [f for f in archived.findings if f.rule in ("BDR-B001", "BDR-B009")]
    loss = {e.data_type: e for e in archived.exposures if str(e.event) == "total loss" and e.source == "redis"}
    assert loss["sessions"].seconds == 60.0 and "archived continuously" in loss["sessions"].basis
    (tmp_path / "c").mkdir()
    slow = run_lint(LintOptions(), cwd=project(tmp_path / "c", schedule=daily,
                                               archive={"redis": {"production": {"max_lag": "2h"}}}))
    (finding,) = [f for f in slow.findings if f.rule == "BDR-B009"]
    assert "max_lag is 2h" in finding.message and finding.facts["rpo_seconds"] == {"sessions": 1800.0}
