"""The snapshot method: Qdrant's own snapshots of a server, downloaded, checked and restored.

Backup, per collection (or once for the whole storage with ``full_snapshot: true``):

1. ``POST /collections/{c}/snapshots`` (``/snapshots``): the server writes a tar of the
   collection's shards and reports its sha256;
2. the download is streamed (httpx) through sha256 and zstd into the backup set; a
   checksum different from the server's fails the backup. With ``inspect_snapshots`` (the
   default) it first lands in a temporary file that qdrant-edge opens (:mod:`.edge`) to
   record the exact point count and a random sample of point digests;
3. the server-side snapshot is deleted (unless ``keep_server_snapshot``) - also when the
   download failed. A full snapshot leaves one collection snapshot per collection behind
   on the server; those are deleted too.

The manifest records the Qdrant version, each collection's config, payload indexes and
aliases (a collection snapshot holds no aliases), the snapshot's name, size and checksum.

Restore: a snapshot loads only into the same Qdrant version or the next minor one, so the
live server's version is compared first and a mismatch refused before anything changes
(:class:`~bdr.errors.IncompatibleVersion`). Each collection is uploaded to
``/collections/{c}/snapshots/upload?priority=snapshot&checksum=...`` (the server checks the
checksum and replaces the collection with the snapshot's data), aliases are set again, and
the live collection is compared with the manifest: config, point count, and the sampled
points one by one. The embedded engine cannot load server snapshots: restore a logical
backup there.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import zstandard
from qdrant_client import QdrantClient

from bdr.engines.base import BackupRequest, Check, RestoreRequest
from bdr.engines.qdrant import edge, logical
from bdr.engines.qdrant import schema as _schema
from bdr.engines.qdrant.client import Target, aliases, connect, list_collections, qdrant_errors, server_version
from bdr.engines.qdrant.method import PointOrigin, RestorePlan
from bdr.engines.qdrant.pointfile import CHUNK, Layout, canonical_id, compress
from bdr.engines.qdrant.schema import CollectionSchema
from bdr.errors import BdrError, ChecksumMismatch, CorruptArchive, IncompatibleVersion, ServiceError, UsageError
from bdr.repository import SetWriter
from bdr.repository.manifest import Manifest

logger = logging.getLogger(__name__)

METHOD = "snapshot"
SNAPSHOT_DIR = "snapshots"
FULL_FILE = f"{SNAPSHOT_DIR}/full.snapshot.zst"
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


# --- versions ----------------------------------------------------------------------------------


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    match = _VERSION.search(text or "")
    if not match or (text or "").startswith("embedded"):
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0)


def version_problem(source: str | None, target: str | None) -> str | None:
    """Why a snapshot from Qdrant ``source`` cannot load into ``target``; None when it can.

    Qdrant loads snapshots of the same minor version, or of the previous one (upgrade one
    minor at a time).
    """
    have, want = parse_version(source), parse_version(target)
    if have is None:
        return "the backup does not record the Qdrant version it was taken from"
    if want is None:
        return "the target's version is unknown"
    if have[0] != want[0]:
        return "snapshots do not cross a major version"
    if want[1] == have[1] or want[1] == have[1] + 1:
        return None
    if want[1] < have[1]:
        return "a snapshot cannot be loaded by an older Qdrant"
    return (f"a snapshot loads only into {have[0]}.{have[1]}.x or {have[0]}.{have[1] + 1}.x; upgrade step by "
            "step, or restore a logical backup (any version)")


# --- the REST calls qdrant-client does not stream ----------------------------------------------


class ServerApi:
    """Snapshot download and upload over httpx, streamed, with errors translated."""

    def __init__(self, target: Target) -> None:
        self.target = target
        key = target.instance.api_key()
        self._http = httpx.Client(base_url=target.location, headers={"api-key": key} if key else {},
                                  timeout=httpx.Timeout(target.instance.timeout, connect=10.0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServerApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, response: httpx.Response, action: str) -> None:
        if response.status_code >= 400:
            response.read()
            raise ServiceError(detail=f"{self.target.label()} refused to {action}: HTTP {response.status_code} "
                               f"{response.text[:200]}")

    def download(self, path: str, expected_sha256: str | None, label: str) -> Iterator[bytes]:
        """The body of ``GET path``, chunk by chunk; raises ChecksumMismatch at the end when it differs."""
        digest = hashlib.sha256()
        with qdrant_errors(self.target, f"send {label}"), self._http.stream("GET", path) as response:
            self._check(response, f"send {label}")
            for chunk in response.iter_bytes(CHUNK):
                digest.update(chunk)
                yield chunk
        if expected_sha256 and digest.hexdigest() != expected_sha256:
            raise ChecksumMismatch(name=label, ref="(download)", expected=expected_sha256[:16],
                                   actual=digest.hexdigest()[:16])

    def upload(self, collection: str, snapshot: Path, checksum: str) -> None:
        """Recover ``collection`` from ``snapshot`` (priority: snapshot; the server checks ``checksum``)."""
        params = {"priority": "snapshot", "checksum": checksum, "wait": "true"}
        with qdrant_errors(self.target, f"recover collection {collection!r}"), snapshot.open("rb") as handle:
            response = self._http.post(f"/collections/{quote(collection, safe='')}/snapshots/upload", params=params,
                                       files={"snapshot": (snapshot.name, handle, "application/octet-stream")},
                                       timeout=httpx.Timeout(None, connect=10.0))
        self._check(response, f"recover collection {collection!r} from its snapshot")


def _delete_quietly(target: Target, what: str, delete: Callable[[], object]) -> None:
    """Delete a server-side snapshot; a failure is logged (it only costs the server disk space)."""
    try:
        with qdrant_errors(target, f"delete {what}"):
            delete()
    except BdrError as exc:
        logger.warning("qdrant %s: could not delete %s on the server (%s); delete it by hand", target.name, what,
                       exc.message)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _to_file(chunks: Iterator[bytes], dest: Path) -> str:
    digest = hashlib.sha256()
    with dest.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def decompress_to(source: Path, dest: Path) -> str:
    """Decompress a stored ``.snapshot.zst`` to ``dest``; returns the sha256 of the snapshot."""
    digest = hashlib.sha256()
    try:
        with source.open("rb") as raw, dest.open("wb") as out:
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            while chunk := reader.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
    except zstandard.ZstdError as exc:
        raise CorruptArchive(name=source.name, detail=f"zstd: {exc}") from exc
    return digest.hexdigest()


def snapshot_file(name: str) -> str:
    return logical.points_file(name).replace(logical.POINTS_DIR, SNAPSHOT_DIR, 1).replace(".points.zst",
                                                                                          ".snapshot.zst")


# --- the method ----------------------------------------------------------------------------------


class SnapshotMethod:
    """Server snapshots (see the module docstring)."""

    name = METHOD

    def backup(self, request: BackupRequest, writer: SetWriter, target: Target) -> None:
        if target.embedded:
            raise UsageError(detail=f"the snapshot method needs a Qdrant server (qdrant.{target.name}.url); the "
                             "embedded engine has no snapshots: use --method logical or volume")
        writer.method = METHOD
        writer.compressed = True
        instance = target.instance
        with connect(target) as client, ServerApi(target) as api, \
                tempfile.TemporaryDirectory(prefix="bdr-qdrant-snap-") as scratch:
            work = Path(scratch)
            names = logical.selected_collections(client, target, logical.wanted_collections(request, target))
            collections: dict[str, Any] = {}
            for name in names:
                item = _schema.describe(client, target, name)
                collections[name] = {**item.to_facts(), "layout": item.layout.to_dict(),
                                     "points": logical.count_points(client, target, name), "points_source": "api"}
            if instance.full_snapshot:
                full = self._full(client, api, target, writer, work, collections)
                writer.facts["full_snapshot"] = full
            else:
                for name in names:
                    collections[name].update(self._collection(client, api, target, writer, work, name,
                                                              collections[name]))
            writer.facts.update(method=METHOD, mode="server", qdrant_version=server_version(client, target),
                                collections=collections,
                                aliases={a: c for a, c in sorted(aliases(client, target).items()) if c in collections})

    def _collection(self, client: QdrantClient, api: ServerApi, target: Target, writer: SetWriter, work: Path,
                    name: str, facts: Mapping[str, Any]) -> dict[str, Any]:
        with qdrant_errors(target, f"create a snapshot of collection {name!r}"):
            snap = client.create_snapshot(name, wait=True)
        if snap is None:
            raise ServiceError(detail=f"{target.label()} did not describe the snapshot of {name!r}")
        out: dict[str, Any] = {"snapshot": {"name": snap.name, "size": snap.size, "checksum": snap.checksum},
                               "file": snapshot_file(name)}
        path = f"/collections/{quote(name, safe='')}/snapshots/{quote(snap.name, safe='')}"
        try:
            chunks = api.download(path, snap.checksum, f"snapshot {snap.name}")
            if target.instance.inspect_snapshots:
                local = work / "collection.snapshot"
                _to_file(chunks, local)
                out.update(self._inspect(local, Layout.from_dict(facts["layout"]), work / "edge", target, None))
                writer.add_stream(out["file"], compress(_file_chunks(local)))
                local.unlink()
            else:
                writer.add_stream(out["file"], compress(chunks))
        finally:
            if not target.instance.keep_server_snapshot:
                _delete_quietly(target, f"snapshot {snap.name} of {name}",
                                lambda: client.delete_snapshot(name, snap.name, wait=True))
        logger.info("qdrant %s: snapshot %s of %s stored", target.name, snap.name, name)
        return out

    def _full(self, client: QdrantClient, api: ServerApi, target: Target, writer: SetWriter, work: Path,
              collections: dict[str, Any]) -> dict[str, Any]:
        with qdrant_errors(target, "create a full-storage snapshot"):
            snap = client.create_full_snapshot(wait=True)
        if snap is None:
            raise ServiceError(detail=f"{target.label()} did not describe its full snapshot")
        local = work / "full.snapshot"
        mapping: dict[str, str] = {}
        try:
            _to_file(api.download(f"/snapshots/{quote(snap.name, safe='')}", snap.checksum,
                                  f"full snapshot {snap.name}"), local)
            config = edge.full_snapshot_config(local)
            mapping = dict(config.get("collections_mapping") or {})
            for name, inner in mapping.items():
                if name not in collections:  # a full snapshot holds every collection
                    item = _schema.describe(client, target, name)
                    collections[name] = {**item.to_facts(), "layout": item.layout.to_dict(),
                                         "points": logical.count_points(client, target, name), "points_source": "api"}
                collections[name]["snapshot"] = {"name": inner, "in": FULL_FILE}
                if target.instance.inspect_snapshots:
                    collections[name].update(self._inspect(local, Layout.from_dict(collections[name]["layout"]),
                                                           work / f"edge-{len(inner)}", target, name))
            writer.add_stream(FULL_FILE, compress(_file_chunks(local)))
        finally:
            if not target.instance.keep_server_snapshot:
                _delete_quietly(target, f"full snapshot {snap.name}",
                                lambda: client.delete_full_snapshot(snap.name, wait=True))
                for name, inner in mapping.items():
                    _delete_quietly(target, f"snapshot {inner} of {name}",
                                    functools.partial(client.delete_snapshot, name, inner, wait=True))
        return {"name": snap.name, "size": snap.size, "checksum": snap.checksum, "file": FULL_FILE}

    @staticmethod
    def _inspect(snapshot: Path, layout: Layout, work: Path, target: Target, collection: str | None) -> dict[str, Any]:
        try:
            found = edge.inspect(snapshot, layout, work, collection=collection,
                                 sample_size=target.instance.sample_size)
        except CorruptArchive as exc:
            logger.warning("qdrant %s: snapshot not inspected: %s", target.name, exc.message)
            return {"inspection": {"error": exc.message}}
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return {"points": found.points, "points_source": "edge", "sample": found.sample_facts(),
                "inspection": {"kind": str(found.kind), "shards": found.shards, "segments": found.segments}}

    # --- restore -------------------------------------------------------------------------------

    def plan(self, request: RestoreRequest, target: Target, files: Path, manifest: Manifest) -> RestorePlan:
        if target.embedded:
            raise UsageError(detail=f"{target.label()} cannot load Qdrant server snapshots; restore a logical "
                             "backup into the embedded engine")
        with connect(target) as client:
            live_version = server_version(client, target)
            live = list_collections(client, target)
        problem = version_problem(manifest.facts.get("qdrant_version"), live_version)
        if problem:
            raise IncompatibleVersion(what=f"snapshot set {manifest.id}", source=manifest.facts.get("qdrant_version"),
                                      target=live_version, detail=problem)
        collections = list(logical.collection_facts(manifest))
        return RestorePlan(collections, [c for c in collections if c in live],
                           notes=[f"Qdrant {manifest.facts.get('qdrant_version')} -> {live_version}"])

    def replace(self, request: RestoreRequest, target: Target, files: Path, manifest: Manifest,
                plan: RestorePlan) -> list[str]:
        facts = logical.collection_facts(manifest)
        full = manifest.facts.get("full_snapshot")
        with tempfile.TemporaryDirectory(prefix="bdr-qdrant-up-") as scratch, ServerApi(target) as api:
            work = Path(scratch)
            full_tar = work / "full.snapshot"
            if full:
                decompress_to(files / full["file"], full_tar)
            for name in plan.collections:
                local = work / "upload.snapshot"
                if full:
                    edge.extract_member(full_tar, facts[name]["snapshot"]["name"], local)
                    checksum = _sha256_file(local)
                else:
                    checksum = decompress_to(files / facts[name]["file"], local)
                    expected = facts[name]["snapshot"]["checksum"]
                    if expected and checksum != expected:
                        raise ChecksumMismatch(name=facts[name]["file"], ref=manifest.id, expected=expected[:16],
                                               actual=checksum[:16])
                api.upload(name, local, checksum)
                local.unlink()
        with connect(target) as client:
            logical.restore_aliases(client, target, dict(manifest.facts.get("aliases") or {}))
        return []

    def check_live(self, target: Target, files: Path, manifest: Manifest, plan: RestorePlan) -> list[Check]:
        facts = logical.collection_facts(manifest)
        checks: list[Check] = []
        with connect(target) as client:
            for name in plan.collections:
                item = facts[name]
                differ, _ = _schema.config_differences(CollectionSchema.from_facts(item).config,
                                                       _schema.live_config(client, target, name))
                checks.append(Check(f"{name}: config", not differ, "; ".join(differ[:4]) or "equal"))
                live = logical.count_points(client, target, name)
                exact = item.get("points_source") == "edge"
                checks.append(Check(f"{name}: points", live == item.get("points") or not exact,
                                    f"live {live}, backup {item.get('points')}"
                                    + ("" if exact else " (counted through the API at backup time)")))
                checks.append(sample_check(client, target, name, item))
            checks.append(logical.alias_check(client, target, dict(manifest.facts.get("aliases") or {})))
        return checks

    def point_origin(self, manifest: Manifest, files: Path, facts: dict[str, Any], work: Path) -> PointOrigin:
        """The set's snapshot (the collection's, or the full-storage one), decompressed into ``work``."""
        full = manifest.facts.get("full_snapshot")
        work.mkdir(parents=True, exist_ok=True)
        snapshot = work / "source.snapshot"
        decompress_to(files / (full["file"] if full else facts["file"]), snapshot)
        return PointOrigin(snapshot=snapshot, in_full=bool(full))

    # --- verify ----------------------------------------------------------------------------------

    def verify(self, manifest: Manifest, files: Path, restore_test: bool) -> list[Check]:
        checks: list[Check] = []
        facts = logical.collection_facts(manifest)
        full = manifest.facts.get("full_snapshot")
        with tempfile.TemporaryDirectory(prefix="bdr-qdrant-verify-") as scratch:
            work = Path(scratch)
            if full:
                local = work / "full.snapshot"
                try:
                    got = decompress_to(files / full["file"], local)
                except CorruptArchive as exc:
                    return [Check("full snapshot", False, exc.message)]
                checks.append(Check("full snapshot", got == full.get("checksum"),
                                    "sha256 equals Qdrant's" if got == full.get("checksum") else
                                    f"sha256 {got[:16]} != Qdrant's {str(full.get('checksum'))[:16]}"))
            for name, item in facts.items():
                if not full:
                    local = work / "collection.snapshot"
                    try:
                        got = decompress_to(files / item["file"], local)
                    except CorruptArchive as exc:
                        checks.append(Check(f"{name}: snapshot", False, exc.message))
                        continue
                    want = item["snapshot"]["checksum"]
                    checks.append(Check(f"{name}: snapshot", got == want, "sha256 equals Qdrant's" if got == want
                                        else f"sha256 {got[:16]} != Qdrant's {str(want)[:16]}"))
                checks += inspect_checks(local, name, item, work / f"edge-{name}", full is not None, restore_test)
        return checks


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    for chunk in _file_chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def inspect_checks(snapshot: Path, name: str, item: Mapping[str, Any], work: Path, in_full: bool,
                   full_scan: bool = False) -> list[Check]:
    """Open ``snapshot`` with qdrant-edge: point count and the manifest's sample of points."""
    sample = [(canonical_id(p), d) for p, d in item.get("sample") or []]
    try:
        found = edge.inspect(snapshot, Layout.from_dict(item["layout"]), work, collection=name if in_full else None,
                             sample_ids=[p for p, _ in sample])
    except CorruptArchive as exc:
        return [Check(f"{name}: qdrant-edge", False, f"{exc.message}; it can only be checked by restoring it into "
                      "a server")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    checks = []
    exact = item.get("points_source") == "edge"
    checks.append(Check(f"{name}: points", found.points == item.get("points") or not exact,
                        f"{found.points} in {found.shards} shard(s), manifest {item.get('points')}"
                        + ("" if exact else " (counted through the API at backup time)")))
    if sample:
        digests = dict(found.sample)
        wrong = [str(p) for p, d in sample if digests.get(p) != d]
        checks.append(Check(f"{name}: sample", not wrong,
                            f"{len(sample)} sampled point(s) equal" if not wrong else
                            f"{len(wrong)} of {len(sample)} sampled points differ or are missing "
                            f"({', '.join(wrong[:3])})"))
    if full_scan:
        checks.append(Check(f"restore test: {name}", True, f"qdrant-edge loaded all {found.shards} shard(s) and "
                            f"counted {found.points} points (a server restore test needs a Qdrant server)"))
    return checks


def sample_check(client: QdrantClient, target: Target, name: str, item: Mapping[str, Any]) -> Check:
    """The manifest's sampled points, read back from the live collection, have the same digests."""
    sample = [(canonical_id(p), d) for p, d in item.get("sample") or []]
    if not sample:
        return Check(f"{name}: sample", True, "no sample recorded (inspect_snapshots was off)")
    layout = Layout.from_dict(item["layout"])
    batch = logical.retrieve_batch(client, target, name, [p for p, _ in sample], layout)
    live = {p: d.hex() for p, d in zip(batch.ids, batch.digests(), strict=True)}
    wrong = [str(p) for p, d in sample if live.get(p) != d]
    return Check(f"{name}: sample", not wrong, f"{len(sample)} sampled point(s) equal" if not wrong else
                 f"{len(wrong)} of {len(sample)} sampled points differ or are missing ({', '.join(wrong[:3])})")


IMPLEMENTATION = SnapshotMethod()
