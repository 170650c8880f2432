"""The Prometheus engine: a TSDB snapshot into a set, a restore through the runbook, offline checks of a set."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from bdr.config import Config
from bdr.engines.base import BackupRequest, Check, RestoreRequest, RestoreResult
from bdr.engines.prometheus.live import runtime_of, series_in
from bdr.engines.prometheus.tsdb import (
    CHUNK_CHECK_BYTES,
    analyze,
    block_facts,
    blocks_of,
    check_chunks,
    is_block_dir,
    promtool,
)
from bdr.engines.runbook import Restorer, run_restore
from bdr.engines.selection import Selection
from bdr.errors import NothingToBackUp, ServiceError
from bdr.repository import SetWriter
from bdr.repository.archive import ArchiveMember
from bdr.repository.manifest import Manifest
from bdr.safety.journal import JournalEntry

logger = logging.getLogger(__name__)

METHOD = "snapshot"


def snapshot_members(snapshot: Path) -> list[ArchiveMember]:
    """Every file of every block in a snapshot directory, named relative to it."""
    members = []
    for block in sorted(p for p in snapshot.iterdir() if is_block_dir(p)):
        for path in sorted(block.rglob("*")):
            if path.is_file():
                members.append(ArchiveMember(path, path.relative_to(snapshot).as_posix()))
    return members


def remove_snapshot(snapshot: Path, name: str) -> str | None:
    """Delete the snapshot directory from the server's data directory; the problem when it could not be."""
    try:
        shutil.rmtree(snapshot)
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("Prometheus %s: could not remove the snapshot %s: %s", name, snapshot, exc.strerror)
        return f"could not remove {snapshot}: {exc.strerror}; delete it by hand"
    return None


class PrometheusEngine:
    """Backs up and restores the TSDB of a Prometheus server named by ``prometheus:`` in bdr.yaml."""

    source = "prometheus"
    selection_type = Selection
    """It takes none: a Prometheus restore replaces the whole TSDB."""

    # --- backup -------------------------------------------------------------------------------

    def backup(self, request: BackupRequest, writer: SetWriter) -> None:
        """A TSDB snapshot (head included) streamed into the set, then removed from the server."""
        instance = request.config.prometheus_instance(request.instance)
        runtime = runtime_of(instance)
        client = runtime.client(timeout=instance.timeout)
        build = client.buildinfo()
        head = client.head_stats()
        data_dir = runtime.data_path()
        launch = runtime.launch() if runtime.kind == "process" and runtime.running() else None
        name = client.snapshot(timeout=instance.timeout)
        snapshot = data_dir / "snapshots" / name
        try:
            if not snapshot.is_dir():
                raise ServiceError(detail=f"Prometheus {instance.name} made snapshot {name}, but {snapshot} is not "
                                   f"a directory here: set prometheus.{instance.name}.data_dir to its "
                                   f"--storage.tsdb.path on this host (and delete snapshots/{name} in its data "
                                   "directory: bdr cannot reach it)")
            blocks = blocks_of(snapshot)
            if not blocks:
                raise NothingToBackUp(detail=f"Prometheus {instance.name} holds no samples yet (its snapshot has "
                                      "no block)")
            facts = block_facts(blocks)
            writer.add_archive(snapshot_members(snapshot), compress=request.compress)
            try:
                facts["series"] = series_in(client, facts["oldest_sample_ms"], facts["newest_sample_ms"])
            except ServiceError as exc:  # the count is a fact for the restore's check, not the backup itself
                facts["series"], facts["series_unavailable"] = None, exc.message
        finally:
            problem = remove_snapshot(snapshot, instance.name)
        writer.facts.update(
            url=instance.url,
            data_dir=str(data_dir),
            snapshot=name,
            snapshot_removed=problem is None,
            prometheus_version=str(build.get("version", "")),
            prometheus_revision=str(build.get("revision", "")),
            head_series=head.get("numSeries", 0),
            head_chunks=head.get("chunkCount", 0),
            **facts,
        )
        if launch is not None:
            writer.facts["launch"] = launch.to_dict()
        writer.method = METHOD
        logger.info("prometheus backup %s: %d block(s), %d samples, %s series from %s", writer.id,
                    facts["block_count"], facts["samples"], facts["series"], instance.name)

    # --- restore: through the runbook ---------------------------------------------------------

    def instance_name(self, config: Config, target: str | None) -> str:
        return config.prometheus_instance(target).name

    def restorer(self, request: RestoreRequest) -> Restorer:
        from bdr.engines.prometheus.restore import PrometheusRestore

        return PrometheusRestore.new(self, request)

    def resumed(self, request: RestoreRequest, entry: JournalEntry, result: RestoreResult) -> Restorer:
        from bdr.engines.prometheus.restore import PrometheusRestore

        return PrometheusRestore.resumed(self, request, entry, result)

    def restore(self, request: RestoreRequest) -> RestoreResult:
        return run_restore(self, request)

    # --- verify -------------------------------------------------------------------------------

    def verify(self, manifest: Manifest, files: Path, restore_test: bool = False) -> list[Check]:
        """Blocks as the manifest lists them, every chunk's CRC32C, ``promtool tsdb analyze``; with
        ``restore_test``, the blocks opened by a temporary Prometheus (:mod:`.trial`)."""
        checks: list[Check] = []
        try:
            blocks = blocks_of(files)
        except ValueError as exc:
            return [Check("blocks", False, str(exc))]
        want = sorted(str(b.get("ulid")) for b in manifest.facts.get("blocks") or [])
        have = sorted(b.ulid for b in blocks)
        checks.append(Check("blocks", want == have, f"{len(have)} block(s) with a readable meta.json"
                            + ("" if want == have else f"; the manifest lists {', '.join(want) or 'none'}")))
        chunks = check_chunks(files)
        left = f"; {chunks.skipped_bytes} byte(s) beyond the {CHUNK_CHECK_BYTES >> 20} MiB sample not checked" \
            if chunks.skipped_bytes else ""
        checks.append(Check("chunk checksums", not chunks.problems,
                            f"{chunks.chunks} chunk(s), {chunks.checked_bytes} byte(s) checked (CRC32C){left}"
                            + (f"; {'; '.join(chunks.problems[:3])}" if chunks.problems else "")))
        if promtool() is None:
            checks.append(Check("promtool tsdb analyze", True, "promtool not installed (apt-get install prometheus)",
                                skipped=True))
        else:
            ok, detail = analyze(files)
            checks.append(Check("promtool tsdb analyze", ok, detail))
        if restore_test:
            from bdr.engines.prometheus.trial import restore_test as trial

            checks.append(trial(manifest, files))
        return checks
