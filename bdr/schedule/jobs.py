"""The jobs a ``schedule:`` asks for, each with the exact ``bdr`` command it runs.

An entry of ``schedule:`` (:class:`~bdr.config.ScheduleEntry`) expands to jobs:

==================  ==========================================================================
``redis``           ``bdr backup redis --instance NAME`` for *every* Redis instance of bdr.yaml
                    (``backup: false`` ones, restore targets such as ``test``, left out), unless
                    that instance has an entry of its own
``redis/NAME``      ``bdr backup redis --instance NAME``, on its own schedule
``qdrant[/NAME]``   the same for Qdrant; ``config``: ``bdr backup config``; ``all``: ``bdr backup all``
``offsite[/SRC]``   the off-site copy (SRC ``all`` by default; URL: the entry's ``remote``, else
                    ``remote.url``): ``bdr copy latest --source SRC [--instance NAME] --remote URL``
                    when the schedule also backs SRC (that instance) up locally: the newest local
                    set copied, one backup in two places; else ``bdr backup SRC --also-remote URL``:
                    one snapshot written to the local repository and copied off-site
``prune``           ``bdr prune``
``verify``          ``bdr verify latest --source S --instance I`` for every backed-up instance
                    (``--restore-test`` with ``restore_test: true``)
``drill``           ``bdr drill --live``: the monthly proof that the real backups restore
``archive.redis``   ``bdr archive redis --instance NAME`` for every instance of ``archive.redis``: a
                    long-running service (kind ``archive``, no cron: no timer, restarted by its
                    manager), not a ``schedule:`` entry
==================  ==========================================================================

Jobs that take the repository lock wait for it (``--wait-lock``) instead of failing when an
earlier run still holds it: by default for the time until their next run, at most
:data:`MAX_WAIT_LOCK`. :func:`backup_groups` are the (source, instance) pairs the backups
cover: what ``bdr status`` expects to be fresh.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bdr.config import Config, ScheduleEntry
from bdr.errors import ConfigError
from bdr.lint.schedule import CronError, cadence, parse_cron
from bdr.sources import ALL, CATALOGUE, instanced_names, source_names

MAX_WAIT_LOCK = 3600.0
"""The longest a scheduled job waits for the repository lock by default."""
SYSTEM_INSTANCE = "system"
_UNIT_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class Job:
    """One scheduled job: when it runs and the bdr command line it runs."""

    name: str
    """Unit stem without the ``bdr-`` prefix: ``backup-redis-production``, ``offsite-all``, ``prune``."""
    entry: str
    """The key of ``schedule:`` it comes from."""
    kind: str
    cron: str
    args: tuple[str, ...]
    """The bdr arguments after the global options: ``("backup", "redis", "--instance", "production")``."""
    description: str
    wait_lock: float | None = None
    """Seconds to wait for the repository lock (None: the job does not take it)."""
    source: str | None = None
    instance: str | None = None
    offsite: bool = False

    @property
    def unit(self) -> str:
        return f"bdr-{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.unit, "entry": self.entry, "kind": self.kind, "cron": self.cron,
                "args": list(self.args), "description": self.description, "wait_lock_seconds": self.wait_lock,
                "source": self.source, "instance": self.instance, "offsite": self.offsite}


def _safe(name: str) -> str:
    return _UNIT_SAFE.sub("_", name)


def instances_of(config: Config, source: str) -> list[str]:
    """The instances of ``source`` bdr backs up (``backup: false`` ones left out)."""
    if source == ALL:
        return [SYSTEM_INSTANCE]
    found = CATALOGUE.find(source)
    return found.backed_up(config) if found is not None else []


def _and(names: tuple[str, ...]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


def _known(config: Config, source: str) -> list[str]:
    found = CATALOGUE.find(source)
    return found.instances(config) if found is not None and found.instanced else []


def _check_instance(config: Config, entry: ScheduleEntry, source: str, instance: str) -> None:
    where = f"schedule.{entry.key}"
    if source not in instanced_names():
        raise ConfigError(path=config.source_label, detail=f"{where}: only {_and(instanced_names())} have named "
                          f"instances (write schedule.{source})")
    known = _known(config, source)
    if instance not in known:
        raise ConfigError(path=config.source_label, detail=f"{where}: no {source} instance {instance!r} "
                          f"(known: {', '.join(known) or 'none'})")
    if instance not in instances_of(config, source):
        raise ConfigError(path=config.source_label, detail=f"{where}: {source}.{instance} says backup: false "
                          "(a restore target): remove the entry or the setting")


def _wait(entry: ScheduleEntry) -> float:
    if entry.wait_lock is not None:
        return entry.wait_lock
    try:
        found = cadence([parse_cron(entry.cron)])
    except CronError:
        return MAX_WAIT_LOCK
    return min(found.worst_gap, MAX_WAIT_LOCK) if found else MAX_WAIT_LOCK


def _check_cron(config: Config, entry: ScheduleEntry) -> None:
    try:
        parse_cron(entry.cron)
    except CronError as exc:
        raise ConfigError(path=config.source_label, detail=f"schedule.{entry.key}: {exc}") from exc


def _backups(config: Config, entry: ScheduleEntry, own: set[tuple[str, str]]) -> list[Job]:
    source = entry.source
    if source not in source_names(with_all=True):
        raise ConfigError(path=config.source_label, detail=f"schedule.{entry.key}: bdr does not know this job; "
                          f"known: {', '.join(source_names(with_all=True))} (backups), redis/NAME, qdrant/NAME, "
                          "offsite, offsite/SOURCE, prune, verify, drill")
    if entry.instance is not None:
        _check_instance(config, entry, source, entry.instance)
        names = [entry.instance]
    else:
        names = [n for n in instances_of(config, source) if (source, n) not in own]
    offsite = entry.kind == "offsite"
    remote = entry.remote or config.remote.url
    if offsite and not remote:
        raise ConfigError(path=config.source_label, detail=f"schedule.{entry.key} sends backups off-site: set "
                          "remote.url in bdr.yaml (or remote: s3://bucket/prefix in the entry)")
    local = _local_backups(config) if offsite else set()
    jobs = []
    for name in names:
        copy = offsite and (source, name) in local
        args = ["copy", "latest", "--source", source] if copy else ["backup", source]
        if source in instanced_names():
            args += ["--instance", name]
        if entry.compress and not copy:
            args.append("--compress")
        if offsite:
            assert remote is not None
            args += ["--remote", remote] if copy else ["--also-remote", remote]
        label = source if source not in instanced_names() else f"{source}-{name}"
        what = {"all": "the whole system (Redis, Qdrant, configuration)", "config": "the configuration files"}.get(
            source, f"{source} {name}")
        jobs.append(Job(
            name=f"{'offsite' if offsite else 'backup'}-{_safe(label)}", entry=entry.key, kind=entry.kind,
            cron=entry.cron, args=tuple(args),
            description=(f"bdr: off-site copy of the newest backup of {what}" if copy
                         else f"bdr: back up {what}" + (", locally and off-site" if offsite else "")),
            wait_lock=_wait(entry), source=source, instance=name, offsite=offsite,
        ))
    return jobs


def _local_backups(config: Config) -> set[tuple[str, str]]:
    """The (source, instance) pairs the schedule's local backup entries cover: what an off-site job can copy."""
    groups: set[tuple[str, str]] = set()
    for entry in config.schedule:
        if entry.kind == "backup" and entry.source in source_names(with_all=True):
            names = [entry.instance] if entry.instance is not None else instances_of(config, entry.source)
            groups |= {(entry.source, name) for name in names}
    return groups


def backup_groups(config: Config, jobs: list[Job] | None = None) -> list[tuple[str, str]]:
    """The (source, instance) pairs the scheduled backups cover, in schedule order (for ``bdr status``)."""
    found = jobs if jobs is not None else jobs_for(config, strict=False)
    groups = [(j.source, j.instance) for j in found if j.kind in ("backup", "offsite") and j.source and j.instance]
    return list(dict.fromkeys((s, i) for s, i in groups if s is not None and i is not None))


def jobs_for(config: Config, *, live_drill: bool = True, strict: bool = True) -> list[Job]:
    """Every job of ``config.schedule``; :class:`ConfigError` naming the entry for one bdr cannot run.

    ``strict=False`` skips entries that do not expand (a misspelt source, a bad cron line) instead of
    raising: what ``bdr status`` needs to know which backups to expect (``bdr lint`` reports the rest).
    ``live_drill``: this bdr has ``bdr drill --live`` (else the sandbox drills are scheduled).
    """
    own = {(e.source, e.instance) for e in config.schedule if e.takes_backup and e.instance is not None}
    jobs: list[Job] = []
    verifies: list[ScheduleEntry] = []
    for entry in config.schedule:
        try:
            _check_cron(config, entry)
            if entry.takes_backup:
                jobs += _backups(config, entry, own)
            elif entry.kind == "prune":
                jobs.append(Job("prune", entry.key, "prune", entry.cron, ("prune",),
                                "bdr: delete the backup sets no retention rule keeps", wait_lock=_wait(entry)))
            elif entry.kind == "verify":
                verifies.append(entry)
            elif entry.kind == "drill":
                drill = ("drill", "--live") if live_drill else ("drill",)
                jobs.append(Job("drill", entry.key, "drill", entry.cron, drill,
                                "bdr: disaster-recovery drill" + (" of the real backups" if live_drill else ""),
                                wait_lock=_wait(entry)))
        except ConfigError:
            if strict:
                raise
    groups = backup_groups(config, jobs)
    for entry in verifies:
        for source, instance in groups:
            args = ["verify", "latest", "--source", source]
            if source in instanced_names():
                args += ["--instance", instance]
            if entry.restore_test:
                args.append("--restore-test")
            label = source if source not in instanced_names() else f"{source}-{instance}"
            jobs.append(Job(f"verify-{_safe(label)}", entry.key, "verify", entry.cron, tuple(args),
                            f"bdr: verify the newest backup of {source} {instance}", source=source,
                            instance=instance))
    for name in config.archive:
        jobs.append(Job(f"archive-redis-{_safe(name)}", f"archive.redis.{name}", "archive", "",
                        ("archive", "redis", "--instance", name),
                        f"bdr: archive the writes of redis {name} continuously (point-in-time restore)",
                        source="redis", instance=name))
    names = [j.name for j in jobs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice and strict:
        raise ConfigError(path=config.source_label, detail=f"schedule: two jobs would be unit bdr-{twice[0]} "
                          "(an instance scheduled by two entries, or instance names that differ only in "
                          "characters a unit name cannot hold)")
    return jobs
