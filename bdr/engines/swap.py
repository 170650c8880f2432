"""Swapping a data directory's files atomically, entry by entry, resumably (Redis, Prometheus).

A restore prepares the new data files in a work directory *inside* the data directory
(``<dir>/.bdr-restore-<id>/new/``: the same file system, so every move is a rename), then
swaps each entry (``dump.rdb``, ``appendonlydir``, a TSDB block ...) into place:

- an entry that exists in the data directory is exchanged with its new version in one
  ``renameat2(RENAME_EXCHANGE)`` call, so the name never points at nothing, and the old
  version, now in ``new/``, is moved to ``old/``;
- a new entry is renamed in; an entry to clear (an AOF directory that would shadow a
  restored RDB) is moved to ``old/``.

The data directory is never empty, and never holds a mix that was not meant: at any
instant each name holds either its old or its new version. Whether an entry was swapped
is decided by inode numbers recorded (in the restore journal) before the swap began, so
:meth:`DataSwap.swap` and :meth:`DataSwap.unswap` can be run again after a crash at any
point and do exactly what is left to do. ``old/`` keeps the previous files until the
restore is verified: a rollback puts them back the same way, which loses nothing.

The work directory carries an owner marker (:func:`new_work_dir`), so the next restore can
tell one left by a killed bdr from one still in use (:func:`sweep_work_dirs`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import logging
import os
import secrets
import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdr.runtime.base import Launch
from bdr.safety.failpoints import failpoint
from bdr.storage.local import fsync_dir
from bdr.util.host import pid_alive, process_start_time

logger = logging.getLogger(__name__)

WORK_PREFIX = ".bdr-restore-"
"""A restore's work directory inside the data directory: ``<data_dir>/.bdr-restore-<id>/``."""
OWNER_FILE = "owner.json"
"""Who made a work directory (pid, host, process start): proof that a killed bdr left it."""
RENAME_EXCHANGE = 2
AT_FDCWD = -100

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def exchange(a: Path, b: Path) -> None:
    """Atomically exchange two paths (``renameat2(..., RENAME_EXCHANGE)``, Linux 3.15+)."""
    result = _libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(b))


def _inode(path: Path) -> int | None:
    try:
        return os.lstat(path).st_ino
    except FileNotFoundError:
        return None


@dataclass(slots=True)
class DataSwap:
    """The swap of ``names`` between ``data_dir`` and the prepared ``new`` directory.

    ``install`` are the names prepared in ``new/`` (with their inode numbers, recorded
    before the swap starts); ``clear`` are names that must not stay in the data directory
    (moved to ``old/``).
    """

    data_dir: Path
    work: Path
    install: dict[str, int] = field(default_factory=dict)
    clear: tuple[str, ...] = ()
    existed: tuple[str, ...] = ()
    """Names the data directory held before the swap: their old versions must be there to put back."""

    @property
    def new(self) -> Path:
        return self.work / "new"

    @property
    def old(self) -> Path:
        return self.work / "old"

    @classmethod
    def prepared(cls, data_dir: Path, work: Path, clear: Sequence[str] = ()) -> DataSwap:
        """The swap of everything in ``work/new`` (call once the new files are all there)."""
        new = work / "new"
        install = {p.name: os.lstat(p).st_ino for p in sorted(new.iterdir())}
        cleared = tuple(n for n in clear if n not in install)
        existed = tuple(n for n in (*install, *cleared) if os.path.lexists(data_dir / n))
        return cls(data_dir, work, install, cleared, existed)

    def to_state(self) -> dict[str, Any]:
        return {"data_dir": str(self.data_dir), "work": str(self.work), "install": dict(self.install),
                "clear": list(self.clear), "existed": list(self.existed)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> DataSwap:
        return cls(Path(state["data_dir"]), Path(state["work"]), {str(k): int(v) for k, v in state["install"].items()},
                   tuple(state.get("clear", ())), tuple(state.get("existed", ())))

    def can_unswap(self) -> list[str]:
        """Names whose previous version is gone (a rollback cannot put them back); empty: all there."""
        missing = []
        for name in self.existed:
            if name in self.install and self.swapped(name):
                new = self.new / name
                there = os.path.lexists(self.old / name) or (
                    os.path.lexists(new) and _inode(new) != self.install[name])
                if not there:
                    missing.append(name)
            elif name in self.clear and not os.path.lexists(self.data_dir / name) \
                    and not os.path.lexists(self.old / name):
                missing.append(name)
        return missing

    def swapped(self, name: str) -> bool:
        """Whether the data directory holds the new version of ``name`` (or no longer holds a cleared one)."""
        if name in self.install:
            return _inode(self.data_dir / name) == self.install[name]
        return not (self.data_dir / name).exists() and not os.path.islink(self.data_dir / name)

    def done(self) -> bool:
        return all(self.swapped(n) for n in (*self.install, *self.clear))

    def touched(self) -> bool:
        """Whether any entry was swapped already (a rollback then has files to put back)."""
        return any(self.swapped(n) for n in self.install) or any((self.old / n).exists() for n in self.clear)

    def swap(self) -> list[str]:
        """Put every new entry in place and every old one in ``old/``; safe to run again. Names swapped."""
        self.old.mkdir(parents=True, exist_ok=True)
        done: list[str] = []
        for name in self.install:
            target, new, old = self.data_dir / name, self.new / name, self.old / name
            if not self.swapped(name):
                if os.path.lexists(target):
                    exchange(new, target)  # target: the new version; new: the old one
                else:
                    os.rename(new, target)
                done.append(name)
                failpoint("restore.swap")
            if os.path.lexists(new) and _inode(new) != self.install[name]:
                os.rename(new, old)  # the old version, out of the way
        for name in self.clear:
            target = self.data_dir / name
            if os.path.lexists(target):
                if os.path.lexists(self.old / name):
                    _remove(self.old / name)
                os.rename(target, self.old / name)
                done.append(name)
                failpoint("restore.swap")
        fsync_dir(self.data_dir)
        return done

    def unswap(self) -> list[str]:
        """Put the old entries back (the new ones go back to ``new/``); safe to run again. Names put back."""
        missing = self.can_unswap()
        if missing:
            raise OSError(errno.ENOENT, f"the previous {', '.join(missing)} kept for the rollback are gone",
                          str(self.old))
        back: list[str] = []
        self.new.mkdir(parents=True, exist_ok=True)
        for name in (*self.install, *self.clear):
            target, old, new = self.data_dir / name, self.old / name, self.new / name
            if name in self.install and _inode(target) == self.install[name]:
                # where is the old version? in old/ once the swap finished, still in new/ if it was
                # killed between the exchange and the move, nowhere if the name is new
                previous = old if os.path.lexists(old) else (new if os.path.lexists(new) else None)
                if previous is not None:
                    exchange(previous, target)  # target: the old version again
                    if previous == old:
                        os.rename(old, new)
                else:
                    os.rename(target, new)  # the name did not exist before the restore
                back.append(name)
                failpoint("restore.unswap")
            elif name not in self.install and os.path.lexists(old):
                if os.path.lexists(target):
                    raise OSError(errno.EEXIST, f"cannot put {name} back: the data directory has a new one",
                                  str(target))
                os.rename(old, target)
                back.append(name)
                failpoint("restore.unswap")
        if self.data_dir.is_dir():
            fsync_dir(self.data_dir)
        return back

    def discard(self) -> None:
        """Delete the work directory (the old files once the restore is verified, or the unused new ones)."""
        shutil.rmtree(self.work, ignore_errors=True)
        if self.data_dir.is_dir():
            fsync_dir(self.data_dir)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def new_work_dir(data_dir: Path, ref: str) -> Path:
    """A fresh work directory in ``data_dir`` (mode 0700) with its owner marker; raises OSError as mkdir does."""
    work = data_dir / f"{WORK_PREFIX}{secrets.token_hex(4)}"
    work.mkdir(mode=0o700)
    (work / OWNER_FILE).write_text(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "process_start": process_start_time(os.getpid()),
        "ref": ref}))
    return work


def sweep_work_dirs(data_dir: Path, keep: Path | None = None) -> list[str]:
    """Remove work directories of killed restores (their owner marker proves it); what was removed."""
    removed: list[str] = []
    if not data_dir.is_dir():
        return removed
    for path in sorted(data_dir.glob(f"{WORK_PREFIX}*")):
        if path == keep or not path.is_dir():
            continue
        try:
            owner = json.loads((path / OWNER_FILE).read_bytes())
        except (OSError, ValueError):
            continue  # not provably ours: left alone
        same_host = owner.get("host") == socket.gethostname()
        pid = owner.get("pid")
        alive = pid_alive(pid) and process_start_time(pid) == owner.get("process_start")
        if same_host and not alive:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
            logger.warning("removed %s, left by a killed restore (pid %s)", path, pid)
    return removed


@dataclass(slots=True, kw_only=True)
class StopAndSwap:
    """What a restore that stops a service and swaps its files keeps in its journal (Redis, Prometheus, Grafana).

    A base of the restorers' dataclasses, so each declares these once: ``work`` (its work
    directory), ``launch`` (how the service is started again), ``was_running`` (whether it
    must be), ``swap`` (the :class:`DataSwap` under way)."""

    work: Path | None = None
    launch: Launch | None = None
    was_running: bool = False
    swap: DataSwap | None = None
    stops_service: bool = True
    """For the runbook: it runs the stop and start steps."""

    def swap_state(self) -> dict[str, Any]:
        """These fields for the restore journal (read back by :func:`swap_fields`)."""
        return {"work": str(self.work) if self.work else None,
                "launch": self.launch.to_dict() if self.launch else None, "was_running": self.was_running,
                "swap": self.swap.to_state() if self.swap else None}

    def remove_work(self) -> None:
        """Delete the work directory: through the swap under way (it also fsyncs the data dir), else as is."""
        if self.swap is not None:
            self.swap.discard()
        elif self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)


def swap_fields(state: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`StopAndSwap` keyword arguments recorded by :meth:`StopAndSwap.swap_state`."""
    return {"work": Path(state["work"]) if state.get("work") else None,
            "launch": Launch.from_dict(state["launch"]) if state.get("launch") else None,
            "was_running": bool(state.get("was_running")),
            "swap": DataSwap.from_state(state["swap"]) if state.get("swap") else None}
