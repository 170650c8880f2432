"""``bdr exporter`` scraped by a real Prometheus (Debian's ``/usr/bin/prometheus``): what a user's
Prometheus stores is what bdr exported, with the scrape format Prometheus negotiates (OpenMetrics).

The scrape job needs ``honor_labels: true`` (as the README says): bdr's ``instance`` label names the
backed-up instance, and without it Prometheus renames it ``exported_instance`` in favour of the
target's address, so the alert rules (``instance="production"``) would see nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bdr.config import load_config
from bdr.monitoring.exporter import ExporterServer, make_server
from bdr.repository import Repository
from bdr.util.host import free_port
from tests.backup_sets import make_manifest, store_set

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (apt-get install prometheus)")

SCRAPE = """global:
  scrape_interval: 1s
scrape_configs:
  - job_name: bdr
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:{port}']
"""


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[ExporterServer]:
    config = tmp_path / "bdr.yaml"
    config.write_text(f"repository: {tmp_path / 'repo'}\n")
    repo = Repository.open(tmp_path / "repo")
    store_set(repo, make_manifest(datetime.now(UTC) - timedelta(hours=1)))
    store_set(repo, make_manifest(datetime.now(UTC) - timedelta(hours=2)))
    server = make_server(load_config(config), "127.0.0.1", 0, cache_seconds=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(expr)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        result: list[dict[str, Any]] = json.loads(response.read())["data"]["result"]
    return result


def test_prometheus_scrapes_the_exporter(exporter: ExporterServer, tmp_path: Path) -> None:
    assert PROMETHEUS is not None
    base = tmp_path / "prometheus"
    base.mkdir()
    (base / "prometheus.yml").write_text(SCRAPE.format(port=exporter.server_address[1]))
    port = free_port()
    with (base / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen([PROMETHEUS, "--config.file=prometheus.yml", "--storage.tsdb.path=data",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                cwd=base, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90  # the scrape manager applies its targets after ~5 s
        found: list[dict[str, Any]] = []
        while not found and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            try:
                found = query(port, 'backup_sets{job="bdr",source="redis"}')
            except OSError:
                continue
        assert found, (base / "prometheus.log").read_text()
        assert [({k: v for k, v in s["metric"].items() if k != "job"}, s["value"][1])
                for s in found] == [({"__name__": "backup_sets", "source": "redis", "instance": "production",
                                      "location": "local"}, "2")]
        assert [s["value"][1] for s in query(port, 'up{job="bdr"}')] == ["1"]
        assert query(port, 'absent(backup_last_success_timestamp{source="redis",instance="production"})') == []
        newest = query(port, 'time() - backup_last_success_timestamp{source="redis"}')
        assert 3600 <= float(newest[0]["value"][1]) < 3700  # a timestamp in seconds, as the alert rules read it
    finally:
        proc.terminate()
        proc.wait(timeout=30)
