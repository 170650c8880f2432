"""The live restore test of the monitoring sources: Prometheus and Grafana, restored into scratch space only.

Neither is restored into an instance: the newest good set is extracted (checked against its
manifest object by object) into the drill's scratch directory, then

- Prometheus: its blocks are opened by a temporary ``prometheus`` on a free loopback port
  (:func:`bdr.engines.prometheus.trial.restore_test`, the server of ``bdr verify
  --restore-test``), which must answer the manifest's series count and newest sample;
  ``min_series`` checks run against that server before it is killed;
- Grafana: the restored ``grafana.db`` passes ``PRAGMA integrity_check`` and its dashboards,
  folders and data sources equal the manifest's (the engine's own verification);
  ``dashboard_exists`` checks read its inventory.

Production is only read (:func:`probe`): Prometheus's ``/api/v1/status/tsdb`` head series
and its start time (a restart changes it), Grafana's dashboards in the live grafana.db
opened read-only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bdr.config import Config
from bdr.drill.settings import AppCheck
from bdr.errors import BdrError
from bdr.report.records import Verification, VerificationKind
from bdr.repository import BackupSet
from bdr.repository.manifest import Manifest


def read_prometheus(config: Config, name: str) -> dict[str, object]:
    """Production Prometheus ``name``, read: its address, version, start time and head series."""
    from bdr.engines.prometheus.client import PrometheusClient

    instance = config.prometheus_instance(name)
    client = PrometheusClient(name, instance.url, timeout=10.0)
    head = client.head_stats()
    build = client.buildinfo()
    runtime = client.runtime_info()
    return {"address": instance.url, "version": str(build.get("version", "")),
            "run_id": str(runtime.get("startTime", "")), "counts": {"head_series": int(head.get("numSeries", 0))}}


def read_grafana(config: Config, name: str) -> dict[str, object]:
    """Production grafana.db of ``name``, opened read-only: its address and dashboards (uid -> version)."""
    from bdr.engines.grafana.database import read_inventory
    from bdr.engines.grafana.layout import db_path_of

    db = db_path_of(config, config.grafana_instance(name))
    inventory = read_inventory(db)
    return {"address": str(db), "counts": {d.uid: d.version for d in inventory.dashboards}}


def extract(config: Config, backup: BackupSet, dest: Path, remote: str | None) -> None:
    """The set's files into ``dest``, every object and file checked against the manifest."""
    from bdr.api.inputs import open_repository
    from bdr.api.keys import cipher_for_reading
    from bdr.repository import extract_set

    repo = open_repository(config, remote=remote)
    extract_set(repo, backup, dest, cipher_for_reading(config, None))


def verify(config: Config, source: str, manifest: Manifest, files: Path,
           checks: tuple[AppCheck, ...]) -> tuple[list[Verification], list[Verification]]:
    """The content proofs of the extracted ``files`` and the application ``checks``; never raises."""
    from bdr.engines import engine_for

    found: list[Verification] = []
    try:
        if source == "prometheus":
            proofs = _prometheus(manifest, files, checks, found)
        else:
            proofs = [Verification(VerificationKind.CONTENT, c.name, c.ok, c.detail, c.skipped)
                      for c in engine_for(source).verify(manifest, files, restore_test=True)]
            found = [_dashboard(files, c) for c in checks]
    except BdrError as exc:
        return [Verification(VerificationKind.CONTENT, f"{source} content", False,
                             f"could not be checked: {exc.message}", skipped=True)], []
    done = {v.name for v in found}
    found += [Verification(VerificationKind.APPLICATION, c.describe(), False, "could not be checked: the temporary "
                           "Prometheus did not answer", skipped=True) for c in checks if c.describe() not in done]
    return proofs, found


def _prometheus(manifest: Manifest, files: Path, checks: tuple[AppCheck, ...],
                found: list[Verification]) -> list[Verification]:
    from bdr.engines.prometheus.client import PrometheusClient
    from bdr.engines.prometheus.trial import restore_test

    facts = manifest.facts

    def inspect(client: PrometheusClient) -> None:
        series = client.series_count(int(facts["oldest_sample_ms"]), int(facts["newest_sample_ms"]))
        for check in checks:
            found.append(Verification(VerificationKind.APPLICATION, check.describe(), series >= check.count,
                                      f"{series} series in the restored blocks, at least {check.count} required"))

    trial = restore_test(manifest, files, inspect if checks else None)
    return [Verification(VerificationKind.CONTENT, trial.name, trial.ok, trial.detail, trial.skipped)]


def _dashboard(files: Path, check: AppCheck) -> Verification:
    from bdr.engines.grafana.database import read_inventory
    from bdr.engines.grafana.layout import DB_NAME

    uids = read_inventory(files / DB_NAME).uids
    ok = check.uid in uids
    return Verification(VerificationKind.APPLICATION, check.describe(), ok,
                        f"{check.uid!r} is in the restored grafana.db" if ok
                        else f"{check.uid!r} is missing from the restored grafana.db ({len(uids)} dashboard(s))")


def discard(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
