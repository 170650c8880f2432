"""Configuration files and secrets in a live drill: file hashes before and after, every restored file checked.

Production is every file of ``files.paths`` and ``files.secrets`` under ``files.root``: its
size, mode and modification time, and the sha256 of every file that is not a secret (a
secret's hash would let anyone test guesses of it); untouched is every file identical. The
set is restored into ``drill.config.target`` (a directory) or a scratch directory, and each
restored file is checked against the manifest: its sha256, or for a secret, whose manifest
holds no hash, its size and mode 0600 (its content was authenticated by AES-GCM as it was
decrypted).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from bdr.config import Config
from bdr.drill.production import ProductionState, now
from bdr.drill.profiles import Findings, Profile
from bdr.drill.settings import SourceDrill
from bdr.drill.targets import RestoreTarget
from bdr.errors import ConfigError
from bdr.report.records import Verification, VerificationKind
from bdr.repository.manifest import Manifest


def _matches(relative: str, patterns: tuple[str, ...]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(name, p) for p in patterns)


def config_files(root: Path, paths: tuple[str, ...], secrets: tuple[str, ...], exclude: tuple[str, ...]) -> list[Path]:
    """The files ``files.paths`` and ``files.secrets`` name under ``root`` (a directory pattern: all it holds)."""
    found: set[Path] = set()
    if not root.is_dir():
        return []
    for pattern in (*paths, *secrets):
        if pattern.endswith("/"):
            base = root / pattern.rstrip("/")
            if base.is_dir():
                found.update(p for p in base.rglob("*") if p.is_file() and not p.is_symlink())
            continue
        found.update(p for p in root.glob(pattern) if p.is_file() and not p.is_symlink())
    return sorted(p for p in found if not _matches(str(p.relative_to(root)), exclude))


def probe(config: Config, name: str) -> ProductionState:
    root = config.resolve(config.files.root).resolve()
    files: dict[str, str] = {}
    counts: dict[str, int] = {}
    for path in config_files(root, config.files.paths, config.files.secrets, config.files.exclude):
        relative = str(path.relative_to(root))
        info = path.stat()
        counts[relative] = info.st_size
        if _matches(relative, config.files.secrets):
            files[relative] = (f"secret: size {info.st_size}, mode {info.st_mode & 0o7777:o}, "
                               f"mtime_ns {info.st_mtime_ns}")
        else:
            files[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return ProductionState("config", config.files.name, str(root), now(), counts=counts, files=files)


def compare(before: ProductionState, after: ProductionState) -> Findings:
    changed = sorted(p for p in set(before.files) | set(after.files) if before.files.get(p) != after.files.get(p))
    if changed:
        return [f"file(s) changed meanwhile: {', '.join(changed[:5])}"
                + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")], []
    return [], [f"{len(after.files)} file(s) unchanged (sha256; secrets by size, mode and mtime)"]


def state_text(state: ProductionState) -> str:
    return f"{len(state.files)} file(s) under {state.address}"


def fingerprint(manifest: Manifest) -> dict[str, object]:
    return {e.path: (e.sha256 or "secret (authenticated ciphertext)") for e in manifest.files}


@contextlib.contextmanager
def target(config: Config, drill: SourceDrill, scratch: Path) -> Iterator[RestoreTarget]:
    """``drill.config.target`` (a directory that does not overlap ``files.root``), else a scratch directory."""
    production_root = config.resolve(config.files.root).resolve()
    if drill.target is not None:
        root = config.resolve(drill.target).resolve()
        if root == production_root or production_root in root.parents or root in production_root.parents:
            raise ConfigError(path=config.source_label, detail=f"drill.config.target {root} overlaps files.root "
                              f"{production_root} (the production configuration); name a scratch directory")
        root.mkdir(parents=True, exist_ok=True)
        yield RestoreTarget("config", str(root), config, False, f"directory {root} (drill.config.target)", root)
        return
    root = scratch / "config-root"
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield RestoreTarget("config", str(root), config, True, f"scratch directory {root}, removed afterwards", root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def file_proof(config: Config, manifest: Manifest, restored: RestoreTarget) -> list[Verification]:
    """Every restored file against the manifest (see the module docstring)."""
    assert restored.root is not None
    name = "every restored file against the manifest"
    equal, wrong = 0, []
    for entry in manifest.files:
        path = restored.root / entry.path
        if not path.is_file():
            wrong.append(f"{entry.path} missing")
            continue
        data = path.read_bytes()
        if entry.secret:
            mode = path.stat().st_mode & 0o777
            if mode != 0o600:
                wrong.append(f"{entry.path} (a secret) has mode {mode:o}, not 600")
            elif len(data) != entry.size:
                wrong.append(f"{entry.path} (a secret) is {len(data)} bytes, the manifest says {entry.size}")
            else:
                equal += 1
        elif hashlib.sha256(data).hexdigest() != entry.sha256:
            wrong.append(f"{entry.path} sha256 differs")
        else:
            equal += 1
    if wrong:
        return [Verification(VerificationKind.CONTENT, name, False, "; ".join(wrong[:5]))]
    secrets = sum(1 for e in manifest.files if e.secret)
    return [Verification(VerificationKind.CONTENT, name, True,
                         f"{equal} of {len(manifest.files)} file(s) equal: sha256 of {equal - secrets}, size and mode "
                         f"0600 of {secrets} secret(s)")]


PROFILE = Profile(probe=probe, compare=compare, state_text=state_text, example_check="file_parses: docker-compose.yml",
                  fingerprint=fingerprint, target=target, proofs=file_proof, state_fields=frozenset({"files"}))
