"""Production, only read: what it looked like before and after a live restore test, and the proof it is untouched.

Before and after each source's test, bdr reads production with read-only requests and
nothing else (no backup, no CONFIG SET, no write):

- Redis (through its runtime's client): ``INFO server`` (``process_id``, ``run_id``, which
  changes at every start, ``uptime_in_seconds``), ``INFO keyspace`` (keys per database) and
  ``INFO stats`` (``expired_keys``, ``evicted_keys``);
- Qdrant: the collections and their exact point counts (a server through its API; the
  embedded engine by opening its directory, which is all a reader can do);
- configuration: every file of ``files.paths`` and ``files.secrets`` under ``files.root``:
  size, mode and modification time, and the sha256 of every file that is not a secret (a
  secret's hash would let anyone test guesses of it);
- Prometheus and Grafana (:mod:`.observed`): the head series and start time; the dashboards
  of the live grafana.db, opened read-only.

:func:`compare` proves untouched: the same process that was not restarted (pid and run id
equal, uptime grown), and every count equal or only grown by the application; a key count
that fell is accepted only as far as Redis itself expired or evicted keys meanwhile. Files
must be identical. Anything else is a failed verification: a BREACH.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bdr.config import Config
from bdr.errors import BdrError
from bdr.report.records import Verification, VerificationKind


@dataclass(frozen=True, slots=True)
class ProductionState:
    """One read of production; ``error`` when it could not be read."""

    source: str
    instance: str
    address: str
    at: str
    pid: int | None = None
    run_id: str = ""
    uptime_seconds: int | None = None
    version: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    """Redis: keys per db (``db0``); Qdrant: points per collection; config: bytes per file."""
    expired: int = 0
    evicted: int = 0
    files: dict[str, str] = field(default_factory=dict)
    """config: path -> sha256 (or ``secret size=.. mode=.. mtime=..``)."""
    error: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v not in ("", None)}
        if self.source != "config":
            data.pop("files", None)
        if self.source != "redis":
            for key in ("expired", "evicted", "uptime_seconds"):
                data.pop(key, None)
        if self.source not in ("redis", "prometheus"):
            data.pop("run_id", None)
        return data


def _now() -> str:
    from bdr.repository.manifest import to_iso, utcnow

    return to_iso(utcnow())


def probe(config: Config, source: str, instance: str) -> ProductionState:
    """Read production ``instance`` of ``source`` (config: ``files.root``); never raises."""
    try:
        if source == "redis":
            return _redis(config, instance)
        if source == "qdrant":
            return _qdrant(config, instance)
        if source in ("prometheus", "grafana"):
            return _observed(config, source, instance)
        return _config(config)
    except BdrError as exc:
        return ProductionState(source, instance, "", _now(), error=exc.message)
    except Exception as exc:  # a probe must never break the drill: what it could not read is reported
        return ProductionState(source, instance, "", _now(), error=f"{type(exc).__name__}: {exc}")


def _redis(config: Config, name: str) -> ProductionState:
    from bdr.runtime import redis_runtime

    instance = config.redis_instance(name)
    client = redis_runtime(instance).client(timeout=10.0, retries=1)
    server = client.info("server")
    keyspace = client.info("keyspace")
    stats = client.info("stats")
    counts = {db: int(facts.get("keys", 0)) for db, facts in keyspace.items() if isinstance(facts, dict)}
    return ProductionState(
        "redis", name, instance.url, _now(), pid=int(server.get("process_id", 0)) or None,
        run_id=str(server.get("run_id", "")), uptime_seconds=int(server.get("uptime_in_seconds", 0)),
        version=str(server.get("redis_version", "")), counts=counts, expired=int(stats.get("expired_keys", 0)),
        evicted=int(stats.get("evicted_keys", 0)),
    )


def _qdrant(config: Config, name: str) -> ProductionState:
    from bdr.engines.qdrant.client import connect, list_collections, target_of

    target = target_of(config, name)
    instance = config.qdrant_instance(name)
    address = instance.url or f"embedded at {config.resolve(str(instance.path))}"
    with connect(target) as client:
        counts = {c: int(client.count(c, exact=True).count) for c in list_collections(client, target)}
    version = "server" if instance.url else "no process of its own: the engine lives in the application"
    return ProductionState("qdrant", name, address, _now(), version=version, counts=counts)


def _observed(config: Config, source: str, name: str) -> ProductionState:
    from bdr.drill import observed

    at = _now()
    read = observed.read_prometheus(config, name) if source == "prometheus" else observed.read_grafana(config, name)
    counts = read["counts"]
    assert isinstance(counts, dict)
    return ProductionState(source, name, str(read["address"]), at, run_id=str(read.get("run_id", "")),
                           version=str(read.get("version", "")), counts={str(k): int(v) for k, v in counts.items()})


def _config(config: Config) -> ProductionState:
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
    return ProductionState("config", config.files.name, str(root), _now(), counts=counts, files=files)


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
    out = [p for p in found if not _matches(str(p.relative_to(root)), exclude)]
    return sorted(out)


def compare(before: ProductionState, after: ProductionState) -> Verification:
    """The proof that production was only read (see the module docstring)."""
    name = f"{before.source}/{before.instance} untouched"
    if before.error or after.error:
        return Verification(VerificationKind.PRODUCTION, name, False,
                            f"production could not be read ({before.error or after.error}): not proven untouched",
                            skipped=True)
    problems: list[str] = []
    facts: list[str] = []
    if before.source == "redis":
        if before.pid != after.pid or before.run_id != after.run_id:
            problems.append(f"Redis is another process now (pid {before.pid} → {after.pid}, run id "
                            f"{before.run_id[:8]} → {after.run_id[:8]}): it was restarted")
        elif (after.uptime_seconds or 0) < (before.uptime_seconds or 0):
            problems.append("its uptime went down: it was restarted")
        else:
            facts.append(f"same process (pid {after.pid}, run id {after.run_id[:8]}), not restarted "
                         f"(uptime {before.uptime_seconds}s → {after.uptime_seconds}s)")
        expired = (after.expired - before.expired) + (after.evicted - before.evicted)
        fell = before.total - after.total
        if fell > max(0, expired):
            problems.append(f"{fell} fewer keys ({before.total} → {after.total}), more than the {expired} Redis "
                            "expired or evicted meanwhile")
        elif fell > 0:
            facts.append(f"keys {before.total} → {after.total}: {fell} expired by their TTL (expired/evicted "
                         f"counters +{expired})")
        else:
            facts.append(_grown("keys", before.total, after.total))
    elif before.source == "qdrant":
        gone = sorted(set(before.counts) - set(after.counts))
        if gone:
            problems.append(f"collection(s) gone: {', '.join(gone)}")
        fewer = [f"{c} {before.counts[c]} → {after.counts[c]}" for c in before.counts
                 if c in after.counts and after.counts[c] < before.counts[c]]
        if fewer:
            problems.append(f"fewer points: {', '.join(fewer)}")
        if not problems:
            facts.append(f"{len(after.counts)} collection(s); " + _grown("points", before.total, after.total))
    elif before.source == "prometheus":
        if before.run_id != after.run_id:
            problems.append(f"Prometheus started again meanwhile (start time {before.run_id} → {after.run_id})")
        else:
            facts.append(f"same process (started {after.run_id}), not restarted; head series "
                         f"{before.total} → {after.total} (scraping goes on)")
    elif before.source == "grafana":
        gone = sorted(set(before.counts) - set(after.counts))
        if gone:
            problems.append(f"dashboard(s) gone: {', '.join(gone[:5])}")
        else:
            facts.append(f"dashboards {len(before.counts)} → {len(after.counts)}, none gone (read-only)")
    else:
        changed = sorted(p for p in set(before.files) | set(after.files) if before.files.get(p) != after.files.get(p))
        if changed:
            problems.append(f"file(s) changed meanwhile: {', '.join(changed[:5])}"
                            + (f" and {len(changed) - 5} more" if len(changed) > 5 else ""))
        else:
            facts.append(f"{len(after.files)} file(s) unchanged (sha256; secrets by size, mode and mtime)")
    if problems:
        return Verification(VerificationKind.PRODUCTION, name, False, "; ".join(problems))
    return Verification(VerificationKind.PRODUCTION, name, True, "; ".join(facts))


def _grown(what: str, before: int, after: int) -> str:
    if after == before:
        return f"{what} equal ({after})"
    return f"{what} {before} → {after}: only grown (+{after - before}, written by the application)"


__all__ = ["ProductionState", "compare", "config_files", "probe"]
