"""The configuration engine: back up, restore and verify the backend's config files and secrets."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bdr.config import Config
from bdr.crypto import Cipher, load_cipher
from bdr.engines.base import BackupRequest, Check, RestoreRequest, RestoreResult, safety_backup
from bdr.engines.files.incoming import SECRETS_OBJECT, Incoming, IncomingFile, read_legacy, read_set
from bdr.engines.files.place import Root
from bdr.engines.files.plan import ChangeKind, Plan, plan_restore, target_mode
from bdr.engines.files.selection import collect, is_secret, matches_any
from bdr.engines.runbook import Restorer, StepOutcome, run_restore
from bdr.engines.selection import FilesSelection
from bdr.errors import MissingKey, NothingToBackUp, UsageError
from bdr.repository import ObjectCipher, SetWriter
from bdr.repository.archive import ArchiveMember
from bdr.repository.manifest import Manifest
from bdr.safety.journal import JournalEntry

logger = logging.getLogger(__name__)

METHOD = "files"


def root_of(config: Config, override: str | None = None) -> Path:
    """The configuration root: ``--to DIR`` (relative to the working directory), else ``files.root``."""
    if override:
        return Path(os.path.expanduser(override)).absolute().resolve()
    return config.resolve(config.files.root).resolve()


def secrets_cipher(request: BackupRequest) -> ObjectCipher:
    """The set's cipher, else the configured key: secrets are never stored in plaintext."""
    if request.cipher is not None:
        return request.cipher
    try:
        cipher = load_cipher(request.config.encryption, key_file=request.options.get("key_file"), required=True)
    except MissingKey as exc:
        raise MissingKey(detail="secrets need a key: run `bdr key generate /etc/bdr/backup.key` and set "
                         "encryption.key_file in bdr.yaml (or pass --key-file, or put a key in $BDR_KEY or a "
                         "passphrase in $BDR_PASSPHRASE); bdr never stores secrets in plaintext") from exc
    assert cipher is not None
    return cipher


@dataclass(slots=True)
class PinnedSecret:
    """A secret's content read once: the archive stores exactly the bytes its keyed digest is of."""

    path: str
    data: bytes = field(repr=False)
    source: Path


@contextlib.contextmanager
def pinned_secrets(root: Path, paths: Sequence[str]) -> Iterator[list[PinnedSecret]]:
    """Each secret read into memory and handed to the archive as an anonymous in-memory file.

    A secret edited during the backup cannot make the stored bytes and the recorded digest
    disagree. The in-memory file (``memfd``, Linux) keeps the mode and times of the original;
    where there is none, the original file is archived.
    """
    fds: list[int] = []
    pinned: list[PinnedSecret] = []
    try:
        for path in paths:
            fd = os.open(root / path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                data = handle.read()
            source = root / path
            memfd_create = getattr(os, "memfd_create", None)
            if memfd_create is not None and Path("/proc/self/fd").is_dir():
                pin = memfd_create(f"bdr-secret-{len(fds)}", os.MFD_CLOEXEC)
                fds.append(pin)
                with memoryview(data) as view:
                    written = 0
                    while written < len(view):
                        written += os.write(pin, view[written:])
                os.fchmod(pin, stat.S_IMODE(info.st_mode))
                os.utime(pin, ns=(info.st_atime_ns, info.st_mtime_ns))
                source = Path(f"/proc/self/fd/{pin}")
            pinned.append(PinnedSecret(path, data, source))
        yield pinned
    finally:
        for fd in fds:
            os.close(fd)


class FilesEngine:
    """Backs up and restores the configuration directory named by ``files:`` in bdr.yaml."""

    source = "config"
    selection_type = FilesSelection

    # --- backup -------------------------------------------------------------------------------

    def backup(self, request: BackupRequest, writer: SetWriter) -> None:
        """One ``data.tar.zst`` of the plain files, one encrypted ``secrets.tar.zst`` of the secrets.

        ``request.options``: ``root`` (another directory), ``files`` (exactly these paths: a
        restore's safety backup of what it overwrites), ``key_file`` (the key for secrets when
        the set itself is not encrypted).
        """
        files = request.config.files
        root = root_of(request.config, request.options.get("root"))
        if not root.is_dir():
            raise NothingToBackUp(detail=f"the configuration root {root} does not exist: check files.root in bdr.yaml")
        collected = collect(root, files, only=request.options.get("files"))
        if not collected.files:
            raise NothingToBackUp(detail=f"no file under {root} matches files.paths or files.secrets of bdr.yaml "
                                  f"({', '.join((*files.paths, *files.secrets))})")
        for entry in collected.skipped:
            logger.warning("config backup %s: skipped %s", writer.id, entry)
        if collected.plain:
            writer.add_archive([ArchiveMember(root / p, p) for p in collected.plain], compress=True)
        digests: dict[str, str] = {}
        if collected.secret_files:
            cipher = secrets_cipher(request)
            with pinned_secrets(root, collected.secret_files) as pinned:
                writer.add_archive([ArchiveMember(p.source, p.path, secret=True) for p in pinned], compress=True,
                                   name=SECRETS_OBJECT, cipher=cipher)
                if isinstance(cipher, Cipher):
                    # keyed digests, not sha256: a hash of a guessable secret would let any reader of the
                    # manifest test guesses offline; an HMAC under the key proves nothing to anyone else
                    digests = {p.path: cipher.digest(p.data) for p in pinned}
        writer.facts.update(
            root=str(root),
            patterns=list(files.paths),
            secret_patterns=list(files.secrets),
            exclude=list(files.exclude),
            unmatched=list(collected.unmatched),
            skipped=list(collected.skipped),
            file_count=len(collected.files),
            secret_count=len(collected.secret_files),
            secret_digests=digests,
        )
        writer.method = METHOD
        logger.info("config backup %s: %d file(s), %d secret(s) from %s", writer.id, len(collected.files),
                    len(collected.secret_files), root)

    # --- restore: through the runbook ---------------------------------------------------------

    def instance_name(self, config: Config, target: str | None) -> str:
        return target or config.files.name

    def restorer(self, request: RestoreRequest) -> Restorer:
        return FilesRestore.new(self, request)

    def resumed(self, request: RestoreRequest, entry: JournalEntry, result: RestoreResult) -> Restorer:
        restorer = FilesRestore.new(self, request)
        restorer.result = result
        return restorer

    def restore(self, request: RestoreRequest) -> RestoreResult:
        return run_restore(self, request)

    def _fetch(self, request: RestoreRequest, scratch: Path, wanted: Callable[[str], bool]) -> Incoming:
        if request.backup is not None:
            return read_set(request.repository, request.backup, request.cipher, scratch, wanted)
        if request.legacy_path is None:
            raise UsageError(detail="nothing to restore: give a backup set or an old runbook's file")
        files = request.config.files
        return read_legacy(request.legacy_path, scratch, request.config, lambda p: is_secret(p, files), wanted)

    @staticmethod
    def _present(root: Path, config: Config, wanted: Callable[[str], bool]) -> list[str]:
        if not root.is_dir():
            return []
        return [p for p in collect(root, config.files, check_readable=False).files if wanted(p)]

    # --- verify -------------------------------------------------------------------------------

    def verify(self, manifest: Manifest, files: Path, restore_test: bool = False) -> list[Check]:
        """Checks of an extracted set (its sha256 already compared by the caller)."""
        plain = [f for f in manifest.files if not f.secret]
        secret = [f for f in manifest.files if f.secret]
        bad = [f.path for f in manifest.files
               if not (files / f.path).is_file() or (files / f.path).stat().st_size != f.size]
        checks = [Check("config files", not bad,
                        f"{len(plain)} file(s) and {len(secret)} secret(s) present with their size"
                        + (f"; missing or wrong: {', '.join(bad[:5])}" if bad else ""))]
        if secret:
            encrypted = manifest.encrypted or any(o.name == SECRETS_OBJECT and o.encrypted for o in manifest.objects)
            digests = manifest.facts.get("secret_digests") or {}
            with_digest = sum(1 for f in secret if f.path in digests)
            checks.append(Check("secrets", encrypted and not bad,
                                f"{len(secret)} secret file(s) stored encrypted, decrypted and authenticated "
                                f"(AES-256-GCM); keyed digests recorded for {with_digest}"
                                if encrypted else "secrets are stored unencrypted"))
        if restore_test:
            checks.append(self._restore_test(manifest, files))
        return checks

    @staticmethod
    def _restore_test(manifest: Manifest, files: Path) -> Check:
        """Place every file into an empty directory as a restore does, and read it back."""
        incoming: Incoming = {}
        for entry in manifest.files:
            source = files / entry.path
            mode = (entry.mode or 0o644) & 0o7777
            if entry.secret:
                data = source.read_bytes()
                incoming[entry.path] = IncomingFile(entry.path, mode, len(data), _sha256(data), True, data=data)
            else:
                incoming[entry.path] = IncomingFile(entry.path, mode, entry.size, entry.sha256, source=source)
        with tempfile.TemporaryDirectory(prefix="bdr-config-test-") as scratch, Root(Path(scratch)) as root:
            for path, item in incoming.items():
                root.write(path, item.chunks(), target_mode(item))
            checks = verify_placed(root, incoming)
        ok = all(c.ok for c in checks)
        return Check("restore test", ok, "; ".join(c.detail for c in checks) + " after a restore into an empty "
                     "directory")


@dataclass(slots=True)
class FilesRestore:
    """A configuration restore through the runbook: nothing is stopped; files are written atomically.

    ``request.selection`` (a :class:`~bdr.engines.selection.FilesSelection`): ``paths`` (glob patterns: only
    these files), ``root`` (``--to DIR``).
    The plan says per file ``new``, ``changed`` (line counts), ``unchanged``; files the backup
    does not hold are left alone, never deleted. The safety backup holds exactly the files the
    restore overwrites; a rollback puts them back and removes the files the restore created.
    ``--resume`` plans and writes again (writing a file twice is harmless).
    """

    engine: FilesEngine
    request: RestoreRequest
    result: RestoreResult
    root_path: Path
    patterns: list[str]
    work: Path | None = None
    incoming: Incoming | None = None
    plan: Plan | None = None
    source: str = "config"
    stops_service: bool = False
    _root: Root | None = None

    @property
    def instance(self) -> str:
        return self.request.target or self.request.config.files.name

    @classmethod
    def new(cls, engine: FilesEngine, request: RestoreRequest) -> FilesRestore:
        selection = FilesSelection.expect(request.selection, engine.source)
        root_path = root_of(request.config, selection.root)
        ref = request.backup.id if request.backup else str(request.legacy_path)
        result = RestoreResult(source="config", ref=ref, target=str(root_path), steps=request.log.steps,
                               dry_run=request.dry_run)
        return cls(engine, request, result, root_path, list(selection.paths))

    def state(self) -> dict[str, object]:
        return {"root": str(self.root_path), "selection": self.request.selection.to_state(),
                "work": str(self.work) if self.work else None}

    def _wanted(self, path: str) -> bool:
        return not self.patterns or matches_any(path, self.patterns)

    def fetch(self) -> StepOutcome:
        self.work = Path(tempfile.mkdtemp(prefix="bdr-config-"))
        self.incoming = self.engine._fetch(self.request, self.work, self._wanted)
        secrets = sum(1 for f in self.incoming.values() if f.secret)
        if not self.incoming:
            raise UsageError(detail=f"no file of {self.result.ref} matches --path {' '.join(self.patterns)}"
                             if self.patterns else f"{self.result.ref} holds no configuration file")
        return StepOutcome(f"{len(self.incoming)} file(s), {secrets} secret(s), checked against the manifest")

    def _ready(self) -> tuple[Root, Incoming, Plan]:
        """After a crash the fetched files are gone with the killed process: fetch and plan again."""
        if self.incoming is None:
            self.fetch()
        if self._root is None or self.plan is None:
            self.check()
        assert self._root is not None and self.incoming is not None and self.plan is not None
        return self._root, self.incoming, self.plan

    def check(self) -> StepOutcome:
        assert self.incoming is not None
        if self._root is None:
            self._root = Root(self.root_path, create=not self.request.dry_run)
        present = self.engine._present(self.root_path, self.request.config, self._wanted)
        self.plan = plan_restore(self.incoming, self._root, present)
        self.result.counts.update(self.plan.counts())
        self.result.facts["changes"] = [c.to_dict() for c in self.plan.changes]
        if self.request.backup is not None:
            self.result.facts["backup_root"] = self.request.backup.manifest.facts.get("root")
        return StepOutcome(self.plan.summary())

    def dry_run(self) -> list[Check]:
        assert self.plan is not None
        lines = "\n".join(f"    {line}" for line in self.plan.lines())
        return [Check("dry run", True, f"would restore {self.result.ref} into {self.root_path}: {self.plan.summary()} "
                      f"(dry run, nothing changed)\n{lines}")]

    def safety_backup(self) -> tuple[str | None, StepOutcome]:
        assert self.plan is not None
        overwritten = [c.path for c in self.plan.of(ChangeKind.CHANGED)]
        if not overwritten:
            return None, StepOutcome("no existing file is overwritten", skipped=True)
        safety = safety_backup(self.engine, self.request, self.request.config.files.name,
                               options={"root": str(self.root_path), "files": overwritten})
        return safety.id, StepOutcome(f"{safety.id}: the {len(overwritten)} file(s) this restore overwrites")

    def stop(self) -> StepOutcome:
        return StepOutcome(skipped=True)

    start = stop

    def replace(self) -> StepOutcome:
        root, incoming, plan = self._ready()
        for change in plan.writes:
            item = incoming[change.path]
            root.write(change.path, item.chunks(), target_mode(item), dir_mode=0o700 if item.secret else 0o755)
        return StepOutcome(f"{len(plan.writes)} file(s) written, {len(plan.of(ChangeKind.UNCHANGED))} already as in "
                           "the backup")

    def verify(self) -> list[Check]:
        root, incoming, _plan = self._ready()
        return verify_placed(root, incoming)

    def rollback(self, safety_id: str | None) -> StepOutcome:
        root, _incoming, plan = self._ready()
        created = [c.path for c in plan.of(ChangeKind.NEW)]
        for path in created:
            root.remove(path)
        restored = 0
        if safety_id is not None:
            repo = self.request.safety_repo
            cipher = self.request.cipher or load_cipher(self.request.config.encryption)
            with tempfile.TemporaryDirectory(prefix="bdr-config-rollback-") as scratch:
                before = read_set(repo, repo.get(safety_id), cipher, Path(scratch), lambda _p: True)
                for path, item in before.items():
                    root.write(path, item.chunks(), item.mode & 0o7777)
                restored = len(before)
        return StepOutcome(f"removed {len(created)} new file(s), put back {restored} from {safety_id or '-'}")

    def finish(self) -> StepOutcome:
        self.discard()
        assert self.plan is not None
        logger.info("config restore of %s into %s: %s", self.result.ref, self.root_path, self.plan.summary())
        return StepOutcome("work directory removed")

    def discard(self) -> None:
        if self._root is not None:
            self._root.close()
            self._root = None
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_placed(root: Root, incoming: Incoming) -> list[Check]:
    """Every restored file equal to the backup: sha256 and mode (secrets 0600)."""
    wrong: list[str] = []
    for path in sorted(incoming):
        item = incoming[path]
        info = root.lstat(path)
        if info is None:
            wrong.append(f"{path} (missing)")
        elif info.st_size != item.size or root.sha256(path) != item.sha256:
            wrong.append(f"{path} (content differs)")
        elif info.st_mode & 0o7777 != target_mode(item):
            wrong.append(f"{path} (mode {info.st_mode & 0o7777:o}, want {target_mode(item):o})")
    total = len(incoming)
    detail = f"{total - len(wrong)} of {total} file(s) equal to the backup (sha256 and mode)"
    checks = [Check("files", not wrong, detail + (f"; wrong: {', '.join(wrong)}" if wrong else ""))]
    secrets = [p for p, item in incoming.items() if item.secret]
    if secrets:
        bad = [w for w in wrong if w.split(" (")[0] in secrets]
        checks.append(Check("secrets", not bad, f"{len(secrets) - len(bad)} of {len(secrets)} secret file(s) "
                            "restored with mode 0600"))
    return checks


ENGINE = FilesEngine()
