"""The configuration engine: the backend's config files, and its secrets, always encrypted.

What it backs up is ``files:`` in bdr.yaml: glob patterns and directories relative to a
root (``docker-compose*.yml``, ``nginx.conf``, ``redis.conf``, ``monitoring/``), and the
secrets (``.env`` and any file named under ``secrets``). Plain files go into one tar.zst
object; secrets into their own object, ``secrets.tar.zst``, encrypted even when the set is
not (a set without a key is refused), and listed in the manifest without a plain hash.

A restore writes each file back atomically with its mode (secrets 0600), refuses any path
that would land outside the root (``..``, absolute names, symlinked directories), never
deletes files the backup does not hold, and takes a safety backup of what it overwrites. A
dry run shows what would change. Old runbook files are read too: a ``configs_*.tar.gz``, a
plain ``env_*.backup``, or an ``openssl enc -aes-256-cbc -salt`` file (passphrase in
``$BDR_PASSPHRASE``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bdr.archive import ArchiveMember, extract_archive
from bdr.config import Config, FilesSource
from bdr.engines.base import BackupRequest, Check, RestoreRequest, RestoreResult, safety_backup
from bdr.errors import BdrError, MissingKey, NothingToBackUp, RestoreRolledBack, UnsafeArchive
from bdr.manifest import Manifest
from bdr.repository import SetWriter, extract_set

logger = logging.getLogger(__name__)

SECRETS_OBJECT = "secrets.tar.zst"


def root_of(config: Config, selection_root: str | None = None) -> Path:
    return config.resolve(selection_root or config.files.root).resolve()


def is_secret(relative: str, files: FilesSource) -> bool:
    name = Path(relative).name
    return any(fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(name, pattern) for pattern in files.secrets)


def collect(root: Path, files: FilesSource) -> tuple[list[str], list[str]]:
    """Relative paths of every file the patterns name (sorted), and the patterns that matched nothing."""
    found: set[str] = set()
    unmatched: list[str] = []
    for pattern in (*files.paths, *files.secrets):
        hits = [p for p in root.glob(pattern.rstrip("/"))]
        paths: list[Path] = []
        for hit in hits:
            if hit.is_dir() and not hit.is_symlink():
                paths += [p for p in hit.rglob("*") if p.is_file() and not p.is_symlink()]
            elif hit.is_file() and not hit.is_symlink():
                paths.append(hit)
        if not paths:
            unmatched.append(pattern)
        found.update(p.relative_to(root).as_posix() for p in paths)
    return sorted(found), unmatched


def _cipher(request_cipher: object, config: Config) -> object:
    from bdr.crypto import load_cipher

    if request_cipher is not None:
        return request_cipher
    try:
        return load_cipher(config.encryption, required=True)
    except MissingKey as exc:
        raise MissingKey(detail=f"secrets are always encrypted and {exc.message}") from exc


class FilesEngine:
    """Backs up and restores the configuration directory named in bdr.yaml."""

    source = "config"

    def backup(self, request: BackupRequest, writer: SetWriter) -> None:
        files = request.config.files
        root = root_of(request.config, request.options.get("root"))
        if not root.is_dir():
            raise NothingToBackUp(detail=f"configuration root {root} does not exist; check files.root in bdr.yaml")
        found, unmatched = collect(root, files)
        if not found:
            raise NothingToBackUp(detail=f"no file under {root} matches files.paths/secrets in bdr.yaml")
        plain = [ArchiveMember(root / rel, rel) for rel in found if not is_secret(rel, files)]
        secret = [ArchiveMember(root / rel, rel, secret=True) for rel in found if is_secret(rel, files)]
        if plain:
            writer.add_archive(plain, compress=True)
        if secret:
            writer.add_archive(secret, compress=True, name=SECRETS_OBJECT,
                               cipher=_cipher(request.cipher, request.config))  # type: ignore[arg-type]
        writer.facts.update(root=str(root), patterns=list(files.paths), secret_patterns=list(files.secrets),
                            unmatched=unmatched, file_count=len(found), secret_count=len(secret))
        writer.method = "files"

    # --- restore ------------------------------------------------------------------------------

    def restore(self, request: RestoreRequest) -> RestoreResult:
        root = root_of(request.config, request.selection.get("root"))
        log = request.log
        ref = request.backup.id if request.backup else str(request.legacy_path)
        result = RestoreResult(source="config", ref=ref, target=str(root), steps=log.steps, dry_run=request.dry_run)
        scratch = Path(tempfile.mkdtemp(prefix="bdr-config-"))
        try:
            with log.step("fetch") as step:
                incoming = scratch / "incoming"
                if request.backup is not None:
                    extract_set(request.repository, request.backup, incoming, request.cipher)
                else:
                    assert request.legacy_path is not None
                    unpack_legacy(request.legacy_path, incoming, request.config)
                chosen = select(incoming, request.selection.get("paths"))
                step.detail = f"{len(chosen)} file(s)"
            with log.step("plan") as step:
                plan = plan_restore(incoming, root, chosen, request.config.files)
                step.detail = plan.summary()
            result.counts.update(plan.counts())
            result.facts["changes"] = [c.describe() for c in plan.changes]
            if request.dry_run:
                result.checks.append(Check("dry run", True, plan.summary()))
                return result
            if request.safety_backup and any(c.kind == "changed" for c in plan.changes):
                with log.step("safety backup") as step:
                    safety = safety_backup(self, request, request.config.files.name, options={"root": str(root)})
                    result.safety_id = safety.id
                    step.detail = safety.id
            try:
                with log.step("replace") as step:
                    write_files(incoming, root, plan)
                    step.detail = f"{plan.counts()['written']} file(s) written"
                with log.step("verify") as step:
                    checks = verify_written(incoming, root, plan)
                    result.checks += checks
                    step.detail = "; ".join(c.detail for c in checks)
                    if not all(c.ok for c in checks):
                        raise BdrError(detail="; ".join(c.detail for c in checks if not c.ok))
            except (BdrError, OSError) as exc:
                if result.safety_id is None:
                    raise
                self._rollback(request, result.safety_id, root, scratch)
                raise RestoreRolledBack(ref=ref, step=log.steps[-1].name, detail=str(exc),
                                        safety=result.safety_id) from exc
            return result
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _rollback(self, request: RestoreRequest, safety_id: str, root: Path, scratch: Path) -> None:
        with request.log.step("rollback") as step:
            safety = request.safety_repo.get(safety_id)
            back = scratch / "rollback"
            extract_set(request.safety_repo, safety, back, request.cipher)
            write_files(back, root, plan_restore(back, root, select(back, None), request.config.files))
            step.detail = f"restored {safety_id}"

    def verify(self, manifest: Manifest, files: Path, restore_test: bool = False) -> list[Check]:
        secrets = [f for f in manifest.files if f.secret]
        present = [f for f in manifest.files if (files / f.path).is_file()]
        checks = [Check("config files", len(present) == len(manifest.files),
                        f"{len(present)} of {len(manifest.files)} file(s) present and matching")]
        if secrets:
            checks.append(Check("secrets", all((files / f.path).is_file() for f in secrets),
                                f"{len(secrets)} secret file(s) decrypted and authenticated"))
        return checks


# --- planning and writing -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    kind: str
    """``new``, ``changed`` or ``unchanged``."""
    secret: bool
    added: int = 0
    removed: int = 0

    def describe(self) -> str:
        if self.kind == "changed" and not self.secret and (self.added or self.removed):
            return f"{self.kind:<9} {self.path} (+{self.added} -{self.removed} lines)"
        return f"{self.kind:<9} {self.path}"


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]

    def counts(self) -> dict[str, int]:
        kinds = [c.kind for c in self.changes]
        return {"new": kinds.count("new"), "changed": kinds.count("changed"),
                "unchanged": kinds.count("unchanged"), "written": kinds.count("new") + kinds.count("changed")}

    def summary(self) -> str:
        counts = self.counts()
        return f"{counts['new']} new, {counts['changed']} changed, {counts['unchanged']} unchanged"


def select(incoming: Path, patterns: list[str] | None) -> list[str]:
    every = sorted(p.relative_to(incoming).as_posix() for p in incoming.rglob("*") if p.is_file())
    if not patterns:
        return every
    return [rel for rel in every if any(fnmatch.fnmatch(rel, pat) or rel.startswith(pat.rstrip("/") + "/")
                                        for pat in patterns)]


def safe_destination(root: Path, relative: str) -> Path:
    """``root / relative``, refusing anything that would land outside ``root`` (symlinks included)."""
    dest = (root / relative)
    resolved = dest.parent.resolve() / dest.name
    if Path(relative).is_absolute() or ".." in Path(relative).parts or not resolved.is_relative_to(root):
        raise UnsafeArchive(member=relative, reason=f"it would be written outside {root}")
    if dest.is_symlink():
        raise UnsafeArchive(member=relative, reason="the destination is a symbolic link")
    return resolved


def _line_diff(old: bytes, new: bytes) -> tuple[int, int]:
    import difflib

    try:
        a, b = old.decode().splitlines(), new.decode().splitlines()
    except UnicodeDecodeError:
        return 0, 0
    added = removed = 0
    for line in difflib.unified_diff(a, b, lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return added, removed


def plan_restore(incoming: Path, root: Path, chosen: list[str], files: FilesSource | None = None) -> Plan:
    changes = []
    for rel in chosen:
        dest = safe_destination(root, rel)
        secret = is_secret(rel, files or FilesSource())
        new = (incoming / rel).read_bytes()
        if not dest.exists():
            changes.append(Change(rel, "new", secret))
            continue
        old = dest.read_bytes()
        if old == new and (dest.stat().st_mode & 0o7777) == ((incoming / rel).stat().st_mode & 0o7777):
            changes.append(Change(rel, "unchanged", secret))
        else:
            added, removed = (0, 0) if secret else _line_diff(old, new)
            changes.append(Change(rel, "changed", secret, added, removed))
    return Plan(tuple(changes))


def write_files(incoming: Path, root: Path, plan: Plan) -> None:
    for change in plan.changes:
        if change.kind == "unchanged":
            continue
        dest = safe_destination(root, change.path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        source = incoming / change.path
        mode = 0o600 if change.secret else source.stat().st_mode & 0o7777
        tmp = dest.with_name(f".{dest.name}.bdr-tmp-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def verify_written(incoming: Path, root: Path, plan: Plan) -> list[Check]:
    wrong = []
    for change in plan.changes:
        dest = root / change.path
        if hashlib.sha256(dest.read_bytes()).digest() != hashlib.sha256((incoming / change.path).read_bytes()).digest():
            wrong.append(change.path)
        elif change.secret and dest.stat().st_mode & 0o077:
            wrong.append(f"{change.path} (mode {dest.stat().st_mode & 0o777:o}, want 600)")
    detail = f"{len(plan.changes) - len(wrong)} of {len(plan.changes)} file(s) equal to the backup"
    return [Check("files", not wrong, detail + (f"; wrong: {', '.join(wrong)}" if wrong else ""))]


# --- the old runbook's files -------------------------------------------------------------------------


def unpack_legacy(source: Path, dest: Path, config: Config) -> None:
    """A ``configs_*.tar.gz``, a directory, a plain ``.env`` backup, or an ``openssl enc`` file."""
    from bdr.crypto import decrypt_openssl_legacy

    dest.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, dest, dirs_exist_ok=True, symlinks=False)
        return
    head = source.read_bytes()[:8]
    if head == b"Salted__":
        env = config.encryption.passphrase_env or "BDR_PASSPHRASE"
        passphrase = os.environ.get(env)
        if not passphrase:
            raise MissingKey(detail=f"{source.name} was encrypted with `openssl enc`: put its passphrase in ${env}")
        (dest / ".env").write_bytes(decrypt_openssl_legacy(source.read_bytes(), passphrase, source.name))
        return
    if head[:2] == b"\x1f\x8b" or source.name.endswith((".tar", ".tar.zst", ".tgz", ".tar.gz")):
        with source.open("rb") as stream:
            extract_archive(stream, dest, name=source.name)
        return
    shutil.copyfile(source, dest / ".env")


ENGINE = FilesEngine()
