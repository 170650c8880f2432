"""``bdr verify --restore-test`` of a Prometheus set: its blocks opened by a temporary Prometheus.

A private ``prometheus`` on a free 127.0.0.1 port, with no scrape target, opens a copy of
the set's blocks as its TSDB; the test passes when it becomes ready and answers the series
count and the newest sample the manifest recorded. The server dies with the check (its
whole session is killed), and the copy with its temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from bdr.engines.base import Check
from bdr.engines.prometheus.client import PrometheusClient
from bdr.engines.prometheus.tsdb import is_block_dir
from bdr.errors import ServiceError
from bdr.repository.manifest import Manifest
from bdr.util.host import free_port
from bdr.util.waiting import wait_for

READY_TIMEOUT = 120.0


def restore_test(manifest: Manifest, files: Path,
                 inspect: Callable[[PrometheusClient], None] | None = None) -> Check:
    """Open the extracted set ``files`` in a temporary Prometheus and compare what it answers with the manifest.

    ``inspect``: called with the temporary server's client once it is ready, before it goes
    (``bdr drill --live`` runs its application checks there)."""
    from bdr.engines.prometheus.live import newest_sample, series_in

    binary = shutil.which("prometheus")
    if binary is None:
        return Check("restore test", True, "prometheus not installed here: no temporary server", skipped=True)
    facts = manifest.facts
    oldest, newest = facts.get("oldest_sample_ms"), facts.get("newest_sample_ms")
    with tempfile.TemporaryDirectory(prefix="bdr-prometheus-test-") as scratch:
        data = Path(scratch) / "data"
        data.mkdir()
        for block in (p for p in files.iterdir() if is_block_dir(p)):
            shutil.copytree(block, data / block.name)
        (Path(scratch) / "prometheus.yml").write_text("global: {}\n")
        port = free_port()
        with (Path(scratch) / "log").open("wb") as log:
            proc = subprocess.Popen([binary, "--config.file=prometheus.yml", "--storage.tsdb.path=data",
                                     f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                    cwd=scratch, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        client = PrometheusClient("restore test", f"http://127.0.0.1:{port}", timeout=60.0)
        try:
            if not wait_for(lambda: proc.poll() is not None or client.ready(), READY_TIMEOUT, 0.1) \
                    or proc.poll() is not None:
                tail = (Path(scratch) / "log").read_text(errors="replace").strip().splitlines()[-1:] or ["no log"]
                return Check("restore test", False, f"a temporary Prometheus did not open the blocks: {tail[0]}")
            if oldest is None or newest is None:
                return Check("restore test", True, "opened by a temporary Prometheus (the set records no time range)")
            try:
                series = series_in(client, int(oldest), int(newest))
                restored = newest_sample(client, int(newest))
                if inspect is not None:
                    inspect(client)
            except ServiceError as exc:
                return Check("restore test", False, f"the temporary Prometheus refused the queries: {exc.message}")
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
    want = facts.get("series")
    ok = restored == int(newest) and (want is None or series == int(want))
    return Check("restore test", ok, f"a temporary Prometheus opened the blocks: {series} series (the backup: "
                 f"{want if want is not None else '?'}), newest sample at {restored} ms (the backup: {newest})")
