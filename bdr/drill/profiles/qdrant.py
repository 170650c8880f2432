"""Qdrant in a live drill: collections and exact point counts before and after, per-collection counts restored.

Production is read through its API (a server) or by opening its directory (the embedded
engine, which is all a reader can do): untouched is no collection gone and no fewer points.
The proof on the restored target: each collection's exact point count against the manifest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

from bdr.config import Config, QdrantInstance
from bdr.drill.production import ProductionState, grown, now
from bdr.drill.profiles import Findings, Profile
from bdr.drill.settings import SourceDrill
from bdr.drill.targets import TEMPORARY, RestoreTarget, named_target
from bdr.report.records import Verification, VerificationKind
from bdr.repository.manifest import Manifest


def probe(config: Config, name: str) -> ProductionState:
    from bdr.engines.qdrant.client import connect, list_collections, target_of

    target_settings = target_of(config, name)
    instance = config.qdrant_instance(name)
    address = instance.url or f"embedded at {config.resolve(str(instance.path))}"
    with connect(target_settings) as client:
        counts = {c: int(client.count(c, exact=True).count) for c in list_collections(client, target_settings)}
    version = "server" if instance.url else "no process of its own: the engine lives in the application"
    return ProductionState("qdrant", name, address, now(), version=version, counts=counts)


def compare(before: ProductionState, after: ProductionState) -> Findings:
    problems: list[str] = []
    gone = sorted(set(before.counts) - set(after.counts))
    if gone:
        problems.append(f"collection(s) gone: {', '.join(gone)}")
    fewer = [f"{c} {before.counts[c]} → {after.counts[c]}" for c in before.counts
             if c in after.counts and after.counts[c] < before.counts[c]]
    if fewer:
        problems.append(f"fewer points: {', '.join(fewer)}")
    facts = [] if problems else [f"{len(after.counts)} collection(s); " + grown("points", before.total, after.total)]
    return problems, facts


def state_text(state: ProductionState) -> str:
    return f"{len(state.counts)} collection(s), {state.total} points ({state.address})"


def volume(manifest: Manifest) -> str | None:
    collections = dict(manifest.facts.get("collections") or {})
    points = sum(int(dict(c).get("points", 0)) for c in collections.values())
    return f"{len(collections)} collection(s), {points} points"


def fingerprint(manifest: Manifest) -> dict[str, object]:
    return {name: {"points": dict(c).get("points"), "content_hash": dict(c).get("content_hash")}
            for name, c in dict(manifest.facts.get("collections") or {}).items()}


def _same_address(target: QdrantInstance, production: QdrantInstance, config: Config) -> bool:
    if target.url or production.url:
        return (target.url or None) == (production.url or None)
    return config.resolve(str(target.path)).resolve() == config.resolve(str(production.path)).resolve()


@contextlib.contextmanager
def target(config: Config, drill: SourceDrill, scratch: Path) -> Iterator[RestoreTarget]:
    """``drill.qdrant.target``, else ``test``, else a temporary embedded Qdrant in a scratch directory."""
    named = named_target(config, "qdrant", drill, lambda a, b: _same_address(a, b, config),
                         lambda i: str(i.url or f"embedded at {i.path}"))
    if named is not None:
        yield named
        return
    path = scratch / "qdrant"
    instance = QdrantInstance(name=TEMPORARY, path=str(path))
    changed = dataclasses.replace(config, qdrant={**config.qdrant, TEMPORARY: instance})
    try:
        yield RestoreTarget("qdrant", TEMPORARY, changed, True, f"temporary embedded Qdrant at {path}, removed "
                            "afterwards")
    finally:
        shutil.rmtree(path, ignore_errors=True)


def point_counts(config: Config, manifest: Manifest, restored: RestoreTarget) -> list[Verification]:
    """Each collection's exact point count on the restored target against the manifest."""
    from bdr.engines.qdrant.client import connect, target_of

    collections = manifest.facts.get("collections")
    if not isinstance(collections, dict):
        return [Verification(VerificationKind.CONTENT, "points per collection", False,
                             "not verified: the manifest records no collections", skipped=True)]
    out = []
    with connect(target_of(config, restored.name)) as client:
        for name, facts in sorted(collections.items()):
            want = int(dict(facts).get("points", -1))
            if not client.collection_exists(name):
                out.append(Verification(VerificationKind.CONTENT, f"{name}: points", False,
                                        "the collection is missing from the restored Qdrant"))
                continue
            have = int(client.count(name, exact=True).count)
            out.append(Verification(VerificationKind.CONTENT, f"{name}: points", have == want,
                                    f"{have} points restored, the manifest says {want}"))
    return out


def stand_ins(config: Config, production: str, temporary: bool) -> list[tuple[str, str]]:
    found = [("a Qdrant test server", "a temporary embedded Qdrant bdr started for the test (no test instance in "
              "bdr.yaml)")] if temporary else []
    if config.qdrant_instance(production).embedded:
        found.append(("a Qdrant server", "none: production Qdrant here is the embedded engine (qdrant-client local "
                      "mode), which is what was backed up and restored"))
    return found


PROFILE = Profile(probe=probe, compare=compare, state_text=state_text,
                  example_check="min_points: {collection: documents, count: 100}", volume=volume,
                  fingerprint=fingerprint, target=target, proofs=point_counts, stand_ins=stand_ins)
