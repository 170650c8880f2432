"""What a live drill does and says for each source, one module per source (``redis``, ``qdrant`` ...).

A :class:`Profile` gathers what :mod:`bdr.drill.live` needs to know of one source and nothing
else does: how production is read (only read) and how two reads are compared, how a set's
volume and fingerprint read in the report, where a set is restored (a test instance, a
temporary one), and the independent content proof run on the restored data. Adding a
source to the live drill is one module here, next to its engine and its entry in
:mod:`bdr.sources`; a test refuses a source of the catalogue without a profile.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdr.config import Config
from bdr.drill.production import ProductionState, now
from bdr.drill.settings import SourceDrill
from bdr.drill.targets import RestoreTarget
from bdr.errors import BdrError
from bdr.registry import Registry
from bdr.report.records import Verification, VerificationKind
from bdr.repository.manifest import Manifest
from bdr.sources import all_sources

Findings = tuple[list[str], list[str]]
"""What a comparison of two reads of production found: problems (a breach), and facts."""


def _no_stand_ins(config: Config, production: str, temporary: bool) -> list[tuple[str, str]]:
    return []


@dataclass(frozen=True, slots=True)
class Profile:
    """One source's part in a live drill."""

    probe: Callable[[Config, str], ProductionState]
    """Read production instance NAME, with read-only requests (may raise; the caller reports it)."""
    compare: Callable[[ProductionState, ProductionState], Findings]
    """Two reads of production, before and after the test: what proves it untouched, what does not."""
    state_text: Callable[[ProductionState], str]
    """One read, for people (``pid 812, run id 3f2a..., 1200 keys, up 3600s``)."""
    example_check: str
    """An application check of ``drill.SOURCE.checks``, for the message when there is none."""
    volume: Callable[[Manifest], str | None] = lambda manifest: None
    """What a set holds, for people (``1200 keys``); None: its number of files."""
    fingerprint: Callable[[Manifest], dict[str, Any]] = lambda manifest: {}
    """What the manifest records of the content (digest, points, hashes), for the evidence."""
    target: Callable[[Config, SourceDrill, Path], AbstractContextManager[RestoreTarget]] | None = None
    """A datastore: where its set is restored (a test instance, or a temporary one removed on leaving)."""
    proofs: Callable[[Config, Manifest, RestoreTarget], list[Verification]] | None = None
    """A datastore: the independent content proofs on the restored target."""
    stand_ins: Callable[[Config, str, bool], list[tuple[str, str]]] = _no_stand_ins
    """What the test used in place of the real thing (``a Redis test instance`` -> ``a temporary redis-server``)."""
    state_fields: frozenset[str] = frozenset()
    """The optional fields of :class:`ProductionState` this source fills (``run_id``, ``files`` ...)."""
    observed_in: str = ""
    """A monitoring source: what its set is restored into for the test (never production)."""


PROFILES: Registry[Profile] = Registry("drill profile", {s.name: f"bdr.drill.profiles.{s.name}" for s in all_sources()},
                                       attribute="PROFILE")
"""Each source's profile, its module imported on first use."""


def profile(source: str) -> Profile:
    return PROFILES.get(source)


def probe(config: Config, source: str, instance: str) -> ProductionState:
    """Read production ``instance`` of ``source`` (config: ``files.root``); never raises: what it could not read
    is in ``error``."""
    try:
        return profile(source).probe(config, instance)
    except BdrError as exc:
        return ProductionState(source, instance, "", now(), error=exc.message)
    except Exception as exc:  # a probe must never break the drill: what it could not read is reported
        return ProductionState(source, instance, "", now(), error=f"{type(exc).__name__}: {exc}")


def compare(before: ProductionState, after: ProductionState) -> Verification:
    """The proof that production was only read: the source's own comparison of the two reads."""
    name = f"{before.source}/{before.instance} untouched"
    if before.error or after.error:
        return Verification(VerificationKind.PRODUCTION, name, False,
                            f"production could not be read ({before.error or after.error}): not proven untouched",
                            skipped=True)
    problems, facts = profile(before.source).compare(before, after)
    if problems:
        return Verification(VerificationKind.PRODUCTION, name, False, "; ".join(problems))
    return Verification(VerificationKind.PRODUCTION, name, True, "; ".join(facts))


def restore_target(config: Config, source: str, drill: SourceDrill,
                   scratch: Path) -> AbstractContextManager[RestoreTarget]:
    """Where the set of datastore ``source`` is restored (see :mod:`bdr.drill.targets`)."""
    chosen = profile(source).target
    if chosen is None:
        raise ValueError(f"{source} is observed, not restored into a target")
    return chosen(config, drill, scratch)


def proofs(config: Config, source: str, manifest: Manifest, restored: RestoreTarget) -> list[Verification]:
    """The independent content proofs of ``source`` on the ``restored`` target; never raises."""
    prove = profile(source).proofs
    try:
        return prove(config, manifest, restored) if prove is not None else []
    except BdrError as exc:
        return [Verification(VerificationKind.CONTENT, f"{source} content", False,
                             f"could not be checked: {exc.message}", skipped=True)]
    except Exception as exc:  # reported, never fatal: the report says what could not be proven
        return [Verification(VerificationKind.CONTENT, f"{source} content", False,
                             f"could not be checked: {type(exc).__name__}: {exc}", skipped=True)]


def volume(manifest: Manifest) -> str:
    """What a set holds and its size, for people (``1200 keys, 4.1 MB``)."""
    size = size_text(manifest.data_size)
    what = profile(manifest.source).volume(manifest)
    return f"{what}, {size}" if what else f"{len(manifest.files)} file(s), {size}"


def size_text(size: int) -> str:
    """``772 B``, ``12.3 kB``, ``4.1 MB``, ``2.3 GB``."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
