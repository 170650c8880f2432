"""Writing the units (or the crontab) into place, and switching the timers on.

Each file is written whole or not at all (temporary name, fsync, rename). Units bdr wrote
before (they start with :data:`~bdr.schedule.systemd.MARKER`) for jobs no longer in the
schedule are removed, their timers disabled first with ``--enable``; files bdr did not write
are never touched, even when named ``bdr-*``. Nothing is enabled without ``--enable``: then
``systemctl daemon-reload`` and ``systemctl enable --now`` of every timer.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bdr.errors import NotWritable, ServiceError, StorageError
from bdr.schedule.systemd import MARKER, UnitFile

logger = logging.getLogger(__name__)

SYSTEMCTL_TIMEOUT = 120.0


@dataclass(slots=True)
class Installed:
    """What an install did."""

    directory: Path
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    enabled: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"directory": str(self.directory), "written": [str(p) for p in self.written],
                "unchanged": [str(p) for p in self.unchanged], "removed": [str(p) for p in self.removed],
                "enabled": self.enabled, "disabled": self.disabled}


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.bdr-tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except PermissionError as exc:
        raise NotWritable(path=str(path), detail=f"{exc.strerror}: run as root, or give --dir DIR") from exc
    except OSError as exc:
        raise StorageError(detail=f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _ours(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return handle.readline().strip() == MARKER
    except OSError:
        return False


def stale_units(directory: Path, keep: Sequence[str]) -> list[Path]:
    """Units bdr wrote into ``directory`` earlier that are not in ``keep`` (file names)."""
    if not directory.is_dir():
        return []
    wanted = set(keep)
    return sorted(p for p in directory.glob("bdr-*") if p.suffix in (".service", ".timer")
                  and p.name not in wanted and _ours(p))


def systemctl(*args: str) -> None:
    """Run ``systemctl ARGS``; a failure is a :class:`~bdr.errors.ServiceError` with systemctl's own words."""
    binary = shutil.which("systemctl")
    if binary is None:
        raise ServiceError(detail="systemctl not found: install the units without --enable, or use --cron")
    try:
        done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT,
                              check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(detail=f"systemctl {' '.join(args)} did not run: {exc}") from exc
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout).split()) or f"exit {done.returncode}"
        raise ServiceError(detail=f"systemctl {' '.join(args)} failed: {said}")


def install(files: Sequence[UnitFile], directory: Path, *, enable: bool = False, systemd: bool = True) -> Installed:
    """Write ``files`` into ``directory``; remove bdr's stale units; with ``enable``, reload and enable timers.

    ``systemd=False``: a crontab (nothing else of bdr's in the directory to remove or enable).
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NotWritable(path=str(directory), detail=exc.strerror or str(exc)) from exc
    done = Installed(directory)
    stale = stale_units(directory, [f.name for f in files]) if systemd else []
    if enable and stale:
        timers = [p.name for p in stale if p.suffix == ".timer"]
        if timers:
            systemctl("disable", "--now", *timers)
            done.disabled = timers
    for unit in files:
        path = directory / unit.name
        if path.is_file() and path.read_text(encoding="utf-8", errors="replace") == unit.text:
            done.unchanged.append(path)
            continue
        _write(path, unit.text)
        done.written.append(path)
    for path in stale:
        try:
            path.unlink()
        except OSError as exc:
            raise NotWritable(path=str(path), detail=exc.strerror or str(exc)) from exc
        done.removed.append(path)
    if enable:
        names = {f.name for f in files}
        timers = [f.name for f in files if f.name.endswith(".timer")]
        services = [f.name for f in files if f.name.endswith(".service")  # an archiver: a service without a timer
                    and f.name.removesuffix(".service") + ".timer" not in names]
        systemctl("daemon-reload")
        if timers or services:
            systemctl("enable", "--now", *timers, *services)
        done.enabled = timers + services
    return done
