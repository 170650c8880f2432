"""A temporary redis-server started from a backup set's files, and always cleaned up.

Selective restores and restore tests need the backup *as Redis sees it*: the set's files are
loaded into a private redis-server on a free loopback port, read, and thrown away. The
server gets its own copy of the files (hard links for the RDB, which it only reads; a copy of
the AOF directory, to which it appends), so the set's files are never changed.

Which files it loads: the RDB when the set has one (that is what the manifest's key counts
and digest describe, and what a full restore loads), else the Redis 7 multi-part AOF
directory (found by its ``*.manifest``), else a single legacy ``appendonly.aof``; ``load_from``
forces one. A torn AOF tail (a copy taken while Redis wrote) is loaded up to the last whole
command, as Redis itself does with ``aof-load-truncated yes``; ``strict`` refuses it instead
(an old script's backup, which no checksum vouches for: half an AOF must not restore as a whole).

The server is private: it listens on 127.0.0.1 only and requires a random password that
is in no argv and no log (an ACL file with the password's SHA-256, and a 0600 password file
inside a 0700 scratch directory). Active expiry is switched off once it has loaded: keys
expire only when a reader finds them expired, so what a reader lists stays there (short of
its TTL) and nothing else changes under it. Leaving the ``with`` block (normally, on an
error or on Ctrl-C) kills the server (nothing in it is worth saving) and deletes the
scratch directory; a second Ctrl-C waits until that is done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import redis

from bdr.errors import BackupDoesNotLoad, BdrError, ServiceError, ServiceTimeout
from bdr.runtime.process import RedisProcess, spawn_redis
from bdr.safety.signals import signals_held

logger = logging.getLogger(__name__)

DATABASES = 256
"""Databases of the temporary server: more than any sane source uses (Redis refuses to load an RDB
that names a database it does not have)."""

LOAD_TIMEOUT = 600.0
PORT_ATTEMPTS = 3


class LoadFrom(StrEnum):
    RDB = "rdb"
    AOF = "aof"


@dataclass(frozen=True, slots=True)
class DataFiles:
    """The Redis data files in a directory: an RDB, a multi-part AOF directory, a legacy AOF file."""

    root: Path
    rdb: Path | None = None
    aof_manifest: Path | None = None
    legacy_aof: Path | None = None

    @classmethod
    def find(cls, root: Path) -> DataFiles:
        root = Path(root)
        if not root.is_dir():
            raise BackupDoesNotLoad(path=str(root), detail="not a directory")
        entries = sorted(root.iterdir())
        rdbs = [p for p in entries if p.is_file() and p.suffix == ".rdb"]
        rdb = root / "dump.rdb" if (root / "dump.rdb").is_file() else (rdbs[0] if len(rdbs) == 1 else None)
        manifests = [m for d in entries if d.is_dir() for m in sorted(d.glob("*.manifest"))]
        legacy = [p for p in entries if p.is_file() and p.suffix == ".aof"]
        return cls(root, rdb, manifests[0] if manifests else None, legacy[0] if legacy else None)

    def choose(self, load_from: LoadFrom | None = None) -> LoadFrom:
        has_aof = self.aof_manifest is not None or self.legacy_aof is not None
        if load_from is LoadFrom.RDB and self.rdb is None:
            raise BackupDoesNotLoad(path=str(self.root), detail="no RDB file (dump.rdb) to load")
        if load_from is LoadFrom.AOF and not has_aof:
            raise BackupDoesNotLoad(path=str(self.root), detail="no AOF (appendonlydir/ or appendonly.aof) to load")
        if load_from is not None:
            return load_from
        if self.rdb is not None:
            return LoadFrom.RDB
        if has_aof:
            return LoadFrom.AOF
        raise BackupDoesNotLoad(path=str(self.root), detail="neither an RDB file nor an AOF in it")

    def stage(self, load_from: LoadFrom, data_dir: Path, strict: bool = False) -> list[str]:
        """Put the files to load into ``data_dir``; the server arguments that make it load them
        (``appendonly`` itself is set by :func:`~bdr.runtime.process.spawn_redis`)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        if load_from is LoadFrom.RDB:
            assert self.rdb is not None
            _link_or_copy(self.rdb, data_dir / self.rdb.name)
            return ["--dbfilename", self.rdb.name]
        aof_args = ["--appendfsync", "no", "--auto-aof-rewrite-percentage", "0",
                    "--aof-load-truncated", "no" if strict else "yes"]
        if self.aof_manifest is not None:
            aof_dir = self.aof_manifest.parent
            shutil.copytree(aof_dir, data_dir / aof_dir.name)
            return [*aof_args, "--appenddirname", aof_dir.name,
                    "--appendfilename", self.aof_manifest.name.removesuffix(".manifest")]
        assert self.legacy_aof is not None
        shutil.copy2(self.legacy_aof, data_dir / self.legacy_aof.name)
        # Redis 7 upgrades a single legacy AOF into its multi-part directory as it starts.
        return [*aof_args, "--appendfilename", self.legacy_aof.name]


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _private_password(scratch: Path) -> tuple[Path, Path]:
    """A random password: its hash in an ACL file for the server, itself in a 0600 file for clients."""
    password = secrets.token_hex(32)
    secret = scratch / "password"
    acl = scratch / "users.acl"
    for path, text in ((secret, password + "\n"),
                       (acl, f"user default on #{hashlib.sha256(password.encode()).hexdigest()} ~* &* +@all\n")):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    return secret, acl


def _shutdown(process: RedisProcess) -> None:
    """SIGKILL: nothing of a temporary server is worth saving, and it is the only way that cannot hang."""
    with contextlib.suppress(BdrError):  # never started, or gone already
        process.kill()


@contextlib.contextmanager
def temporary_instance(files_dir: Path, *, load_from: LoadFrom | str | None = None, strict: bool = False,
                       timeout: float = LOAD_TIMEOUT, scratch_parent: Path | None = None) -> Iterator[RedisProcess]:
    """A private redis-server loaded from the data files in ``files_dir``; gone after the block."""
    files = DataFiles.find(Path(files_dir))
    source = files.choose(LoadFrom(load_from) if load_from else None)
    scratch = Path(tempfile.mkdtemp(prefix="bdr-temporary-redis-", dir=scratch_parent))
    process: RedisProcess | None = None
    try:
        data_dir = scratch / "data"
        load_args = files.stage(source, data_dir, strict)
        secret, acl = _private_password(scratch)
        for attempt in range(PORT_ATTEMPTS):
            process = spawn_redis(
                data_dir, name="temporary", appendonly=source is LoadFrom.AOF, start=False, private=True,
                extra=[*load_args, "--aclfile", str(acl), "--databases", str(DATABASES)],
            )
            process.instance = dataclasses.replace(process.instance, password_env=None, password_file=str(secret))
            logger.info("starting a temporary redis-server on %s from the %s in %s", process.instance.url,
                        source.upper(), files_dir)
            try:
                process.start(timeout=timeout)
                break
            except ServiceTimeout:
                raise
            except ServiceError as exc:
                if "Address already in use" in exc.message and attempt + 1 < PORT_ATTEMPTS:
                    continue  # another process took the free port first: pick another
                raise BackupDoesNotLoad(path=str(files_dir), detail=exc.message) from exc
        assert process is not None
        with contextlib.suppress(redis.RedisError):
            process.client(timeout=10.0).execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")
        yield process
    finally:
        with signals_held():
            if process is not None:
                _shutdown(process)
            shutil.rmtree(scratch, ignore_errors=True)
            logger.info("temporary redis-server removed (%s)", scratch)
