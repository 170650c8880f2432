"""The state of an instance's archive, as ``bdr status``, ``bdr archive list`` and the metrics show it.

Two sources, each for what it knows: the **repository** (what a restore can use: the recoverable
windows, from the sealed segments and the bases, :mod:`.window`) and the **archiver's status file**
in its spool (whether it runs, is connected, how far behind the master it is). The archive's
**lag** is the time since the newest moment a restore reaches (the end of the newest window, or
what the running archiver has delivered since): the data a total loss would cost now, the RPO of
an archived instance. ``bdr status`` fails (exit 1) when it is over ``archive.redis.NAME.max_lag``,
when the archiver is not running, or when there is no window yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bdr.config import ArchiveSettings, Config
from bdr.engines.redis.archive.bases import bases_of
from bdr.engines.redis.archive.layout import list_segments
from bdr.engines.redis.archive.spool import read_status
from bdr.engines.redis.archive.window import Window, iso_us, us_of, windows
from bdr.errors import BdrError
from bdr.repository import Repository
from bdr.repository.manifest import utcnow
from bdr.repository.retention import policy_span
from bdr.util.durations import format_duration


@dataclass(frozen=True, slots=True)
class ArchiveStatus:
    """One archived instance: its windows in a repository, and its archiver."""

    instance: str
    repository: str
    max_lag: float
    windows: tuple[Window, ...] = ()
    segments: int = 0
    stream_bytes: int = 0
    bases: int = 0
    archiver: dict[str, Any] | None = None
    now_us: int = 0
    error: str | None = None

    @property
    def running(self) -> bool:
        return bool(self.archiver and self.archiver.get("running"))

    @property
    def covered_us(self) -> int | None:
        """The newest moment a restore reaches (the repository's, or the running archiver's when newer)."""
        found = [w.to_us for w in self.windows[-1:]]
        if self.running and self.windows and self.archiver and self.archiver.get("covered_until_us"):
            found.append(int(self.archiver["covered_until_us"]))
        return max(found) if found else None

    @property
    def lag_seconds(self) -> float | None:
        covered = self.covered_us
        return None if covered is None else max(0.0, (self.now_us - covered) / 1e6)

    @property
    def lag_bytes(self) -> int | None:
        value = (self.archiver or {}).get("lag_bytes")
        return int(value) if isinstance(value, int) and self.running else None

    @property
    def new_bases(self) -> int:
        return int((self.archiver or {}).get("new_bases") or 0)

    def problems(self) -> list[str]:
        who = f"archive of redis/{self.instance}"
        out = []
        if self.error:
            out.append(f"{who}: {self.repository} cannot be read: {self.error}")
            return out
        if not self.running:
            out.append(f"{who}: the archiver is not running (start it: bdr archive redis --instance {self.instance}, "
                       f"or systemctl start bdr-archive-redis-{self.instance})")
        if not self.windows:
            out.append(f"{who}: nothing is recoverable to a point in time yet (no base joins the stream)")
        elif (lag := self.lag_seconds) is not None and lag > self.max_lag:
            out.append(f"{who}: lags {format_duration(lag)} behind, more than max_lag {policy_span(self.max_lag)} "
                       f"(the newest moment a restore reaches is {iso_us(self.covered_us or 0)})")
        return out

    def to_dict(self) -> dict[str, Any]:
        archiver = self.archiver or {}
        return {
            "instance": self.instance, "repository": self.repository, "max_lag_seconds": self.max_lag,
            "windows": [w.to_dict() for w in self.windows], "segments": self.segments,
            "stream_bytes": self.stream_bytes, "bases": self.bases,
            "covered_until": iso_us(self.covered_us) if self.covered_us else None,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "lag_bytes": self.lag_bytes, "running": self.running, "new_bases": self.new_bases,
            "archiver": {k: archiver.get(k) for k in ("state", "pid", "host", "connected", "catching_up", "stream",
                                                       "master_offset", "received_offset", "delivered_offset",
                                                       "segments_pending", "last_new_base", "last_error",
                                                       "updated_at")} if archiver else None,
            "problems": self.problems(), "error": self.error,
        }


def archive_status(config: Config, settings: ArchiveSettings, repo: Repository | None = None,
                   now: datetime | None = None) -> ArchiveStatus:
    """The status of ``settings.name``'s archive in ``repo`` (default: the first place it is archived to)."""
    now_us = us_of(now or utcnow())
    if repo is None:
        repo = (Repository.open(config.remote.url, settings=config.remote) if settings.to[0] == "s3"
                and config.remote.url else Repository.open(config.repository_path()))
    archiver = read_status(config.archive_spool(settings.name))
    try:
        segments = list_segments(repo, settings.name)
        bases = bases_of(repo, settings.name)
    except BdrError as exc:
        return ArchiveStatus(settings.name, repo.url, settings.max_lag, archiver=archiver, now_us=now_us,
                             error=exc.message)
    found = windows(segments, bases)
    return ArchiveStatus(settings.name, repo.url, settings.max_lag, tuple(found), len(segments),
                         sum(s.name.size for s in segments), len({w for b in found for w in b.bases}), archiver,
                         now_us)


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    """Every archived instance of the policy."""

    archives: tuple[ArchiveStatus, ...] = field(default=())

    def problems(self) -> list[str]:
        return [p for a in self.archives for p in a.problems()]


def archive_statuses(config: Config, now: datetime | None = None) -> list[ArchiveStatus]:
    """The status of every instance of ``archive.redis`` (none: an empty list)."""
    return [archive_status(config, settings, now=now) for settings in config.archive.values()]
