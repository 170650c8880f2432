"""The metrics service of the drills and tests: a real Prometheus on a free 127.0.0.1 port, scraping itself.

Debian's ``/usr/bin/prometheus``, admin API on (unless asked otherwise), scraping itself every
second and recording a heartbeat rule every second from the start. It is started the way an
operator would from a shell (relative ``--storage.tsdb.path`` in its working directory), so
bdr's process runtime has to read how it was launched; it is stopped by its port at the end,
whoever started it last (a restore starts it again itself).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bdr.config import PrometheusInstance
from bdr.runtime import procfs
from bdr.util.host import free_port

PROMETHEUS = shutil.which("prometheus")
MISSING = "prometheus is not installed (apt-get install prometheus)"

SCRAPE = """global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: self
    static_configs:
      - targets: ['127.0.0.1:{port}']
"""
RULES = """groups:
  - name: heartbeat
    interval: 1s
    rules:
      - record: bdr_test_heartbeat
        expr: vector(1)
"""
"""A sample every second from the start: the scrape manager only applies its targets after ~5 s."""


@dataclass
class PrometheusServer:
    """One prometheus process in ``base`` (its working directory), data in ``base/data``."""

    base: Path
    port: int
    admin_api: bool = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    def argv(self) -> list[str]:
        assert PROMETHEUS is not None
        args = [PROMETHEUS, "--config.file=prometheus.yml", "--storage.tsdb.path=data",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        return [*args, "--web.enable-admin-api"] if self.admin_api else args

    def start(self) -> None:
        (self.base / "prometheus.yml").write_text(SCRAPE.format(port=self.port))
        (self.base / "rules.yml").write_text(RULES)
        with (self.base / "prometheus.log").open("ab") as log:
            subprocess.Popen(self.argv(), cwd=self.base, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        self.wait_ready()

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return bytes(response.read())

    def ready(self) -> bool:
        try:
            return self.get("/-/ready").startswith(b"Prometheus")
        except OSError:
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return
            time.sleep(0.05)
        raise AssertionError(f"prometheus on {self.port} not ready: {(self.base / 'prometheus.log').read_text()}")

    def wait_samples(self, samples: int = 2, timeout: float = 30.0) -> None:
        """Until the head holds ``samples`` heartbeats (rule evaluations, one a second)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.get("/api/v1/query?query=count_over_time(bdr_test_heartbeat%5B1m%5D)")
            result = json.loads(body)["data"]["result"]
            if result and float(result[0]["value"][1]) >= samples:
                return
            time.sleep(0.2)
        raise AssertionError("prometheus recorded no heartbeat")

    def pid(self) -> int | None:
        for listener in procfs.listeners(self.port):
            for pid in listener.pids:
                return pid
        return None

    def kill(self) -> None:
        """SIGKILL whatever prometheus serves the port (the crash, or the end of the test)."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and procfs.listeners(self.port):
            time.sleep(0.05)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)

    def instance(self, **settings: object) -> PrometheusInstance:
        return PrometheusInstance(name="production", url=self.url, log_file=str(self.base / "bdr-prometheus.log"),
                                  **settings)  # type: ignore[arg-type]


@contextlib.contextmanager
def running_prometheus(base: Path, admin_api: bool = True, samples: int = 2) -> Iterator[PrometheusServer]:
    base.mkdir(parents=True, exist_ok=True)
    server = PrometheusServer(base, free_port(), admin_api)
    server.start()
    try:
        if samples:
            server.wait_samples(samples)
        yield server
    finally:
        server.kill()
