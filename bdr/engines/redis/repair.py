"""Repairing damaged Redis data files, or saying plainly that only a restore will do.

The runbook's "Redis data corruption" scenario: Redis refuses to start ("Unexpected end of
file reading the append only file", "Bad file format ..."), usually after a crash or a full
disk. bdr never points a checker at the live files: it copies the instance's ``dump.rdb``
and AOF (the Redis 7 multi-part directory, or a single legacy ``appendonly.aof``) to a
scratch directory and runs Redis's own checkers there (``redis-check-rdb``;
``redis-check-aof`` on the AOF manifest). Then it classifies (:func:`inspect_damage`):

- **healthy**: nothing to do.
- **fixable**: ``redis-check-aof --fix`` truncates an AOF at its last whole command, and
  Redis can only replay a truncated AOF if the cut is in its *last* file: the newest incr
  file of a multi-part AOF, or a single legacy AOF. A *torn tail* (the last write only partly
  on disk) loses that one write; a damaged byte in the middle loses everything after it. The
  report says how many bytes and (about) how many commands, and when they were written if
  the AOF has ``#TS:`` annotations (``aof-timestamp-enabled yes``), else that this is
  unknown and when the file was last written. A corrupt ``dump.rdb`` that the server does
  not load (AOF is on) is set aside: nothing is lost, the next save writes a new one.
- **impossible**: a corrupt RDB that the server loads, a damaged AOF base file, an older incr
  file or the manifest, a file the manifest names that is missing. The way back is a restore
  (``bdr restore redis latest --target NAME``); :class:`~bdr.errors.RepairImpossible`, exit 11.

How Redis 7.0's tools behave, which this module relies on: ``redis-check-aof <manifest>``
checks the base file (RDB preamble or AOF) and then the incr files in manifest order, prints
``AOF analyzed: filename=..., size=..., ok_up_to=..., diff=...`` per file and stops at the
first damaged one; ``--fix`` asks "Continue? [y/N]" on stdin (bdr answers ``y``) and refuses
to truncate a file that is not the last ("not the last file"). A server with
``aof-load-truncated yes`` (the default) truncates a torn tail of the last file itself when
it starts, with a warning; with ``no`` it refuses to start, and a damaged byte in the middle
stops it either way. That is when this repair is needed.

Applying a fix (:func:`apply_repair`, ``bdr repair redis --yes``): the server is stopped
through its runtime; the fix is made on a staging copy next to the data (hard links for
the files it does not change) and checked again; the original files are moved aside into
``<dir>/bdr-repair-<timestamp>/`` (kept, never deleted) and the repaired ones moved in; the
server is started and must answer. If it still does not start, the originals are put back.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import redis

from bdr.clients import redis_client
from bdr.config import RedisInstance
from bdr.engines.redis.info import PersistenceLayout
from bdr.errors import (
    BdrError,
    CheckFailed,
    ConfigError,
    NoSpace,
    NotWritable,
    RepairImpossible,
    ServiceError,
    ServiceUnavailable,
)
from bdr.repository.manifest import to_iso, utcnow
from bdr.runtime.base import Runtime

logger = logging.getLogger(__name__)

TOOL_TIMEOUT = 3600
LEGACY_AOF = "appendonly.aof"
ANALYZED = re.compile(
    r"AOF analyzed: (?:filename=(?P<name>\S+), )?size=(?P<size>\d+), ok_up_to=(?P<ok>\d+), "
    r"ok_up_to_line=\d+, diff=(?P<diff>\d+)"
)
CHECKING_RDB = re.compile(r"Checking RDB file (?P<name>\S+)")
MANIFEST_LINE = re.compile(rb"^file (?P<file>\S+) seq (?P<seq>\d+) type (?P<type>[bhi])$")
TIMESTAMP = re.compile(rb"#TS:(\d+)\r\n")
COMMAND_START = re.compile(rb"(?:^|\r\n)\*\d+\r\n")
PARTIAL_LINE = re.compile(rb"^(?:[*$]\d*\r?|#(?:T(?:S(?::\d*\r?)?)?)?)$")


class Verdict(StrEnum):
    HEALTHY = "healthy"
    FIXABLE = "fixable"
    IMPOSSIBLE = "impossible"


class FileRole(StrEnum):
    RDB = "rdb"
    AOF_BASE = "aof base"
    AOF_INCR = "aof incr"
    AOF = "aof"
    MANIFEST = "aof manifest"


class FileState(StrEnum):
    OK = "ok"
    TORN_TAIL = "torn tail"
    CORRUPT = "corrupt"
    MISSING = "missing"
    NOT_CHECKED = "not checked"


class Fix(StrEnum):
    NONE = "none"
    TRUNCATE = "truncate"
    SET_ASIDE = "set aside"
    RESTORE = "restore from a backup"


@dataclass(frozen=True, slots=True)
class Finding:
    """One data file and what the checkers said about it."""

    path: str
    """Relative to the data directory (``appendonlydir/appendonly.aof.3.incr.aof``)."""
    role: FileRole
    state: FileState
    loaded: bool
    """Whether the server loads this file when it starts."""
    size: int
    valid_up_to: int | None = None
    fix: Fix = Fix.NONE
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "role": str(self.role), "state": str(self.state), "loaded": self.loaded,
                "size": self.size, "valid_up_to": self.valid_up_to, "fix": str(self.fix), "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Loss:
    """What truncating an AOF at ``valid_up_to`` throws away."""

    path: str
    size: int
    valid_up_to: int
    whole_commands: int
    """Whole commands in the lost bytes (counted exactly for a torn tail, estimated after damage)."""
    torn: bool
    """True when the lost bytes are only an unfinished write (or an unfinished MULTI), not damage."""
    timestamps: bool
    """Whether the AOF has ``#TS:`` annotations (``aof-timestamp-enabled``)."""
    lost_from: str | None
    """The last annotation before the cut: the first lost write was made then or later."""
    last_lost: str | None
    """The newest annotation in the lost bytes: the last lost writes were made then or later."""
    last_write: str
    """When the file was last written (its modification time)."""

    @property
    def lost_bytes(self) -> int:
        return self.size - self.valid_up_to

    def describe(self) -> str:
        name = Path(self.path).name
        head = f"truncating {name} from {self.size} to {self.valid_up_to} bytes loses {self.lost_bytes} bytes: "
        if self.torn and self.whole_commands == 0:
            what = "the last write, which is only partly on disk"
        elif self.torn:
            what = f"an unfinished transaction ({self.whole_commands} commands without their EXEC)"
        else:
            what = f"about {self.whole_commands} commands written after the damaged byte"
        if self.lost_from and self.last_lost:
            when = f"; the lost data was written between {self.lost_from} and {self.last_lost} (or a little later)"
        elif self.lost_from or self.last_lost:
            when = f"; the lost data was written at or after {self.lost_from or self.last_lost}"
        else:
            when = (f"; when the lost data was written is unknown (the AOF has no timestamps: set "
                    f"aof-timestamp-enabled yes); the file was last written at {self.last_write}")
        return head + what + when

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "valid_up_to": self.valid_up_to,
                "lost_bytes": self.lost_bytes, "whole_commands": self.whole_commands, "torn": self.torn,
                "timestamps": self.timestamps, "lost_from": self.lost_from, "last_lost": self.last_lost,
                "last_write": self.last_write, "description": self.describe()}


@dataclass(frozen=True, slots=True)
class RepairReport:
    """The damage found in an instance's data files, what a fix would do, and whether it was applied."""

    instance: str
    data_dir: str
    loads_from: str
    """``aof`` or ``rdb``: what the server loads when it starts."""
    running: bool
    findings: tuple[Finding, ...]
    verdict: Verdict
    loss: Loss | None = None
    checked_at: str = field(default_factory=lambda: to_iso(utcnow()))
    applied: bool = False
    moved_aside: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def restore_command(self) -> str:
        return f"bdr restore redis latest --target {self.instance}"

    def advice(self) -> str:
        """One paragraph for the operator: the verdict, what a fix loses, what to run."""
        damaged = [f for f in self.findings if f.state not in (FileState.OK, FileState.NOT_CHECKED)]
        if self.verdict is Verdict.HEALTHY:
            return f"no damage found in the data files of Redis {self.instance} ({self.data_dir})"
        problems = "; ".join(f"{f.path}: {f.state}{f' ({f.detail})' if f.detail else ''}" for f in damaged)
        if self.verdict is Verdict.IMPOSSIBLE:
            return (f"Redis {self.instance} cannot be repaired: {problems}; restore it from a backup: "
                    f"`{self.restore_command}`")
        actions = []
        if self.loss is not None:
            actions.append(self.loss.describe())
        actions += [f"{f.path} is set aside (not loaded: nothing is lost; the next save writes a new one)"
                    for f in self.findings if f.fix is Fix.SET_ASIDE]
        return f"Redis {self.instance} can be repaired: {problems}. A repair: " + "; ".join(actions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance, "data_dir": self.data_dir, "loads_from": self.loads_from,
            "running": self.running, "verdict": str(self.verdict), "checked_at": self.checked_at,
            "findings": [f.to_dict() for f in self.findings],
            "loss": self.loss.to_dict() if self.loss else None, "advice": self.advice(),
            "restore_command": self.restore_command if self.verdict is Verdict.IMPOSSIBLE else None,
            "applied": self.applied, "moved_aside": self.moved_aside, "facts": self.facts,
        }


# --- finding the files ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    runtime: Runtime
    layout: PersistenceLayout
    running: bool


def _target(instance: RedisInstance) -> _Target:
    """The instance's runtime and where its files are, whether it runs or not."""
    from bdr.engines.redis.target import open_target

    try:
        target = open_target(instance)
    except ServiceUnavailable as exc:
        raise ConfigError(
            path="bdr.yaml", detail=f"redis.{instance.name}: the server is not running, so bdr cannot ask it where "
            "its files are; set data_dir (and config_file or start_args) for it"
        ) from exc
    return _Target(target.runtime, target.layout, target.running)


def _manifest_entries(manifest: Path) -> list[tuple[str, str]] | None:
    """(file, type) of a multi-part AOF manifest, base first then incr files by seq; None if unreadable."""
    entries: list[tuple[str, int, str]] = []
    for raw in manifest.read_bytes().splitlines():
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        match = MANIFEST_LINE.match(line)
        if match is None:
            return None
        entries.append((match["file"].decode(errors="replace"), int(match["seq"]), match["type"].decode()))
    if not any(kind == "b" for _, _, kind in entries) and not any(kind == "i" for _, _, kind in entries):
        return None
    ordered = sorted((e for e in entries if e[2] != "h"), key=lambda e: (e[2] != "b", e[1]))
    return [(name, kind) for name, _, kind in ordered]


def _copy_data_files(layout: PersistenceLayout, scratch: Path) -> None:
    """dump.rdb, the AOF directory and a legacy AOF, copied from the data directory into ``scratch``."""
    try:
        rdb = layout.dir / layout.dbfilename
        if rdb.is_file():
            shutil.copy2(rdb, scratch / layout.dbfilename)
        aof_dir = layout.dir / layout.appenddirname
        if aof_dir.is_dir():
            shutil.copytree(aof_dir, scratch / layout.appenddirname)
        if (layout.dir / LEGACY_AOF).is_file():
            shutil.copy2(layout.dir / LEGACY_AOF, scratch / LEGACY_AOF)
    except OSError as exc:
        if exc.errno == 28:
            raise NoSpace(path=str(scratch)) from exc
        raise NotWritable(path=str(scratch), detail=f"cannot copy the data files of {layout.dir}: {exc}") from exc


def _run(argv: list[str], stdin: str | None = None) -> tuple[int, str]:
    binary = shutil.which(argv[0])
    if binary is None:
        raise ServiceError(detail=f"{argv[0]} not found on PATH; install it with `apt-get install redis-tools`")
    try:
        proc = subprocess.run([binary, *argv[1:]], input=stdin if stdin is not None else "", capture_output=True,
                              text=True, errors="replace", timeout=TOOL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(detail=f"{argv[0]} did not finish within {TOOL_TIMEOUT}s") from exc
    return proc.returncode, proc.stdout + proc.stderr


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


# --- what a cut loses ------------------------------------------------------------------------------------


def _tail_shape(tail: bytes) -> tuple[bool, int]:
    """(torn, whole commands): whether ``tail`` is valid AOF up to its end, and its whole commands."""
    pos, whole, size = 0, 0, len(tail)

    def line_end(start: int) -> int | None:
        end = tail.find(b"\r\n", start)
        return None if end < 0 else end

    while pos < size:
        end = line_end(pos)
        if end is None:
            return bool(PARTIAL_LINE.match(tail[pos:])), whole
        head = tail[pos:end]
        if head.startswith(b"#TS:") and head[4:].isdigit():
            pos = end + 2
            continue
        if not (head.startswith(b"*") and head[1:].isdigit()):
            return False, whole
        pos = end + 2
        for _ in range(int(head[1:])):
            if pos >= size:
                return True, whole
            end = line_end(pos)
            if end is None:
                return bool(PARTIAL_LINE.match(tail[pos:])), whole
            head = tail[pos:end]
            if not (head.startswith(b"$") and head[1:].isdigit()):
                return False, whole
            value_end = end + 2 + int(head[1:])
            if value_end + 2 > size:
                return b"\r\n".startswith(tail[value_end:value_end + 2]), whole
            if tail[value_end:value_end + 2] != b"\r\n":
                return False, whole
            pos = value_end + 2
        whole += 1
    return True, whole


def _stamp(seconds: bytes | int | float) -> str:
    return datetime.fromtimestamp(int(seconds), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def measure_loss(path: Path, relative: str, valid_up_to: int) -> Loss:
    """What cutting the AOF file at ``path`` at byte ``valid_up_to`` throws away."""
    data = path.read_bytes()
    kept, tail = data[:valid_up_to], data[valid_up_to:]
    torn, whole = _tail_shape(tail)
    if not torn:
        whole = len(COMMAND_START.findall(tail))
    kept_stamps, lost_stamps = TIMESTAMP.findall(kept), TIMESTAMP.findall(tail)
    return Loss(
        path=relative, size=len(data), valid_up_to=valid_up_to, whole_commands=whole, torn=torn,
        timestamps=bool(kept_stamps or lost_stamps),
        lost_from=_stamp(kept_stamps[-1]) if kept_stamps else None,
        last_lost=_stamp(lost_stamps[-1]) if lost_stamps else None,
        last_write=_stamp(path.stat().st_mtime),
    )


# --- checking -------------------------------------------------------------------------------------------


def _check_rdb(scratch: Path, layout: PersistenceLayout) -> Finding | None:
    rdb = scratch / layout.dbfilename
    if not rdb.is_file():
        return None
    loaded = not layout.appendonly
    code, output = _run(["redis-check-rdb", str(rdb)])
    size = rdb.stat().st_size
    if code == 0:
        return Finding(layout.dbfilename, FileRole.RDB, FileState.OK, loaded, size,
                       detail="" if loaded else "not loaded: AOF is on")
    fix = Fix.RESTORE if loaded else Fix.SET_ASIDE
    detail = _last_line(output) if loaded else f"not loaded (AOF is on): {_last_line(output)}"
    error = next((line.strip() for line in output.splitlines() if "RDB ERROR" in line or "Unexpected EOF" in line
                  or "Wrong" in line or "Invalid" in line), "")
    return Finding(layout.dbfilename, FileRole.RDB, FileState.CORRUPT, loaded, size, fix=fix,
                   detail=(error or detail)[:200])


def _check_multipart(scratch: Path, layout: PersistenceLayout) -> list[Finding]:
    aof_dir = scratch / layout.appenddirname
    manifests = sorted(aof_dir.glob("*.manifest"))
    loaded = layout.appendonly
    unusable = Fix.RESTORE if loaded else Fix.SET_ASIDE
    if len(manifests) != 1:
        return [Finding(layout.appenddirname, FileRole.MANIFEST, FileState.MISSING if not manifests
                        else FileState.CORRUPT, loaded, 0, fix=unusable,
                        detail="no manifest" if not manifests else "more than one manifest")]
    manifest = manifests[0]
    relative = f"{layout.appenddirname}/{manifest.name}"
    entries = _manifest_entries(manifest)
    if entries is None:
        return [Finding(relative, FileRole.MANIFEST, FileState.CORRUPT, loaded, manifest.stat().st_size,
                        fix=unusable, detail="not a valid AOF manifest")]
    findings: list[Finding] = [Finding(relative, FileRole.MANIFEST, FileState.OK, loaded, manifest.stat().st_size)]
    missing = [(name, kind) for name, kind in entries if not (aof_dir / name).is_file()]
    if missing:
        return findings + [Finding(f"{layout.appenddirname}/{name}", FileRole.AOF_BASE if kind == "b"
                                   else FileRole.AOF_INCR, FileState.MISSING, loaded, 0, fix=unusable,
                                   detail="named by the manifest, not in the directory") for name, kind in missing]
    code, output = _run(["redis-check-aof", str(manifest)])
    analyzed = {m["name"]: m for m in ANALYZED.finditer(output) if m["name"]}
    rdb_checked = [m["name"] for m in CHECKING_RDB.finditer(output)]
    all_valid = code == 0 and "All AOF files and manifest are valid" in output
    broken_seen = False
    for index, (name, kind) in enumerate(entries):
        path = aof_dir / name
        role = FileRole.AOF_BASE if kind == "b" else FileRole.AOF_INCR
        file_relative = f"{layout.appenddirname}/{name}"
        size = path.stat().st_size
        if broken_seen:
            findings.append(Finding(file_relative, role, FileState.NOT_CHECKED, loaded, size,
                                    detail="after the damaged file"))
            continue
        match = analyzed.get(name)
        if all_valid or (match is not None and int(match["diff"]) == 0):
            findings.append(Finding(file_relative, role, FileState.OK, loaded, size))
            continue
        broken_seen = True
        last = index == len(entries) - 1
        if match is None:
            reason = "its RDB preamble is damaged" if name in rdb_checked else _last_line(output)
            findings.append(Finding(file_relative, role, FileState.CORRUPT, loaded, size,
                                    fix=Fix.RESTORE if loaded else Fix.SET_ASIDE, detail=reason))
            continue
        valid_up_to = int(match["ok"])
        torn, _ = _tail_shape(path.read_bytes()[valid_up_to:])
        state = FileState.TORN_TAIL if torn else FileState.CORRUPT
        if not loaded:
            findings.append(Finding(file_relative, role, state, loaded, size, valid_up_to, Fix.SET_ASIDE,
                                    f"valid up to byte {valid_up_to} of {size}; not loaded (appendonly no)"))
        elif role is FileRole.AOF_INCR and last:
            findings.append(Finding(file_relative, role, state, loaded, size, valid_up_to, Fix.TRUNCATE,
                                    f"valid up to byte {valid_up_to} of {size}"))
        else:
            why = "the base file" if role is FileRole.AOF_BASE else "not the newest incr file"
            findings.append(Finding(file_relative, role, state, loaded, size, valid_up_to, Fix.RESTORE,
                                    f"valid up to byte {valid_up_to} of {size}; it is {why}, which cannot be cut"))
    return findings


def _check_legacy(scratch: Path, layout: PersistenceLayout) -> Finding | None:
    path = scratch / LEGACY_AOF
    if not path.is_file():
        return None
    # Redis 7 upgrades a legacy AOF only when there is no AOF directory yet.
    loaded = layout.appendonly and not (scratch / layout.appenddirname).is_dir()
    size = path.stat().st_size
    code, output = _run(["redis-check-aof", str(path)])
    match = next(ANALYZED.finditer(output), None)
    if code == 0 and (match is None or int(match["diff"]) == 0):
        return Finding(LEGACY_AOF, FileRole.AOF, FileState.OK, loaded, size)
    if match is None:
        return Finding(LEGACY_AOF, FileRole.AOF, FileState.CORRUPT, loaded, size,
                       fix=Fix.RESTORE if loaded else Fix.SET_ASIDE, detail=_last_line(output))
    valid_up_to = int(match["ok"])
    torn, _ = _tail_shape(path.read_bytes()[valid_up_to:])
    return Finding(LEGACY_AOF, FileRole.AOF, FileState.TORN_TAIL if torn else FileState.CORRUPT, loaded, size,
                   valid_up_to, Fix.TRUNCATE if loaded else Fix.SET_ASIDE, f"valid up to byte {valid_up_to} of {size}")


def _verdict(findings: list[Finding]) -> Verdict:
    fixes = {f.fix for f in findings}
    if Fix.RESTORE in fixes:
        return Verdict.IMPOSSIBLE
    if fixes & {Fix.TRUNCATE, Fix.SET_ASIDE}:
        return Verdict.FIXABLE
    return Verdict.HEALTHY


def check_files(layout: PersistenceLayout, scratch: Path) -> tuple[list[Finding], Loss | None]:
    """Copy the data files into ``scratch``, check them there; the findings and what a cut loses."""
    _copy_data_files(layout, scratch)
    findings: list[Finding] = []
    if (scratch / layout.appenddirname).is_dir():
        findings += _check_multipart(scratch, layout)
    legacy = _check_legacy(scratch, layout)
    if legacy is not None:
        findings.append(legacy)
    rdb = _check_rdb(scratch, layout)
    if rdb is not None:
        findings.append(rdb)
    loss = None
    cut = next((f for f in findings if f.fix is Fix.TRUNCATE), None)
    if cut is not None and cut.valid_up_to is not None:
        loss = measure_loss(scratch / cut.path, cut.path, cut.valid_up_to)
    return findings, loss


def inspect_damage(instance: RedisInstance) -> RepairReport:
    """Check a copy of the instance's data files; what is damaged, whether a fix is possible, what it loses."""
    target = _target(instance)
    layout = target.layout
    scratch = Path(tempfile.mkdtemp(prefix="bdr-repair-check-"))
    try:
        findings, loss = check_files(layout, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    loads_from = "aof" if layout.appendonly else "rdb"
    if not findings:
        findings = [Finding(layout.dbfilename, FileRole.RDB, FileState.MISSING, not layout.appendonly, 0,
                            detail=f"no data files in {layout.dir}: the server starts empty")]
    report = RepairReport(instance.name, str(layout.dir), loads_from, target.running, tuple(findings),
                          _verdict(findings), loss)
    logger.info("repair check of Redis %s: %s", instance.name, report.verdict)
    return report


# --- applying -----------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _stage_truncation(layout: PersistenceLayout, finding: Finding, staging: Path) -> str:
    """The repaired copy of the AOF in ``staging``; returns the name (dir or file) it replaces."""
    assert finding.valid_up_to is not None
    if finding.role is FileRole.AOF:
        shutil.copy2(layout.dir / LEGACY_AOF, staging / LEGACY_AOF)
        _same_owner(layout.dir / LEGACY_AOF, staging / LEGACY_AOF)
        target, replaced = staging / LEGACY_AOF, LEGACY_AOF
    else:
        live_dir = layout.dir / layout.appenddirname
        staged_dir = staging / layout.appenddirname
        staged_dir.mkdir()
        _same_owner(live_dir, staged_dir)
        broken = Path(finding.path).name
        for item in live_dir.iterdir():
            if item.name == broken:
                shutil.copy2(item, staged_dir / item.name)  # a real copy: the fix truncates it
                _same_owner(item, staged_dir / item.name)
            elif item.is_file():
                _link_or_copy(item, staged_dir / item.name)  # never changed in place by Redis
        target, replaced = next(staged_dir.glob("*.manifest")), layout.appenddirname
    code, output = _run(["redis-check-aof", "--fix", str(target)], stdin="y\n")
    fixed = staging / finding.path if finding.role is not FileRole.AOF else staging / LEGACY_AOF
    if code != 0 or fixed.stat().st_size != finding.valid_up_to:
        raise RepairImpossible(detail=f"redis-check-aof --fix did not repair {finding.path}: {_last_line(output)}")
    code, output = _run(["redis-check-aof", str(target)])
    if code != 0:
        raise RepairImpossible(detail=f"{finding.path} is still damaged after the fix: {_last_line(output)}")
    return replaced


def _same_owner(original: Path, copy: Path) -> None:
    """Give a staged copy the owner of the original: Redis (uid 999 in a container, ``redis`` on a
    host) must still write to what bdr, running as root, swapped in."""
    stat = original.stat()
    if os.geteuid() == 0 and (copy.stat().st_uid, copy.stat().st_gid) != (stat.st_uid, stat.st_gid):
        os.chown(copy, stat.st_uid, stat.st_gid)


def _damage(findings: Iterable[Finding]) -> set[tuple[str, Fix, int | None]]:
    return {(f.path, f.fix, f.valid_up_to) for f in findings if f.fix is not Fix.NONE}


def apply_repair(instance: RedisInstance, report: RepairReport) -> RepairReport:
    """Apply the fix ``report`` describes: stop, fix a staged copy, move originals aside, swap in, start."""
    if report.verdict is Verdict.IMPOSSIBLE:
        raise RepairImpossible(detail=report.advice())
    if report.verdict is Verdict.HEALTHY:
        return report
    target = _target(instance)
    runtime, layout = target.runtime, target.layout
    was_running = target.running
    if was_running:
        logger.info("stopping Redis %s for the repair", instance.name)
        runtime.stop()
    scratch = Path(tempfile.mkdtemp(prefix="bdr-repair-check-"))
    try:
        findings, _ = check_files(layout, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if _damage(report.findings) != _damage(findings):
        if was_running:
            runtime.start(timeout=instance.save_timeout)
        raise CheckFailed(detail=f"the data files of Redis {instance.name} changed since they were checked; run "
                          f"`bdr repair redis --target {instance.name}` again to see what a repair would do")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = layout.dir / f"bdr-repair-{stamp}"
    staging = layout.dir / f".bdr-repair-staging-{stamp}"
    moved: list[tuple[Path, Path]] = []
    try:
        staging.mkdir()
        swaps = [_stage_truncation(layout, f, staging) for f in report.findings if f.fix is Fix.TRUNCATE]
        set_aside = sorted({Path(f.path).parts[0] for f in report.findings if f.fix is Fix.SET_ASIDE} - set(swaps))
        aside.mkdir()
        for name in set_aside:
            os.rename(layout.dir / name, aside / name)
            moved.append((aside / name, layout.dir / name))
        for name in swaps:
            os.rename(layout.dir / name, aside / name)
            moved.append((aside / name, layout.dir / name))
            os.rename(staging / name, layout.dir / name)
        _fsync_dir(layout.dir)
    except OSError as exc:
        _put_back(moved, layout.dir, aside / "not-applied")
        if exc.errno == 28:
            raise NoSpace(path=str(layout.dir)) from exc
        raise NotWritable(path=str(layout.dir), detail=f"repair not applied: {exc}") from exc
    except BaseException:
        _put_back(moved, layout.dir, aside / "not-applied")
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("repaired files of Redis %s swapped in; originals in %s", instance.name, aside)
    try:
        runtime.start(timeout=instance.save_timeout)
        client = redis_client(instance, timeout=30.0)
        keys = sum(int(v.get("keys", 0)) for k, v in client.info("keyspace").items() if k.startswith("db"))
    except (BdrError, redis.RedisError) as exc:
        detail = getattr(exc, "message", str(exc))
        _stop_quietly(runtime)
        _put_back(moved, layout.dir, aside / "repaired-but-not-loading")
        raise RepairImpossible(
            detail=f"the repaired files of Redis {instance.name} do not load either ({detail}); the original files "
            f"are back in place; restore from a backup: `{report.restore_command}`"
        ) from exc
    return dataclasses.replace(report, applied=True, moved_aside=str(aside), running=True,
                               facts={"keys": keys, "repaired_at": to_iso(utcnow())})


def _stop_quietly(runtime: Runtime) -> None:
    try:
        if runtime.running():
            runtime.stop()
    except (BdrError, redis.RedisError, OSError) as exc:
        logger.warning("could not stop the server after a failed repair: %s", exc)


def _put_back(moved: list[tuple[Path, Path]], data_dir: Path, keep: Path) -> None:
    """Undo the moves: what is in place now goes to ``keep`` (for a post-mortem), the originals back."""
    for original, live in reversed(moved):
        try:
            if live.exists():
                keep.mkdir(parents=True, exist_ok=True)
                os.rename(live, keep / live.name)
            os.rename(original, live)
        except OSError as exc:
            logger.error("could not put %s back to %s: %s (it is still in %s)", original, live, exc, original)
    if moved:
        _fsync_dir(data_dir)
