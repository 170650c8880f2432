"""``bdr archive``: continuous archiving of Redis for point-in-time restore.

``bdr archive redis [--instance NAME]`` runs the archiver in the foreground until SIGTERM or
Ctrl-C (the unit ``bdr schedule`` writes runs it as a ``Type=simple`` service); ``bdr archive
list`` shows what is recoverable to a point in time; ``bdr archive prune`` deletes the segments
no base can use any more.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import click

from bdr.cli.app import App, json_option, pass_app
from bdr.cli.options import repository_options
from bdr.errors import UsageError
from bdr.util.durations import format_duration


@contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM, SIGINT and SIGHUP ask the archiver to seal, deliver and exit (a second one too: it is already)."""
    previous: dict[int, Any] = {}

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def _settings_name(app: App, instance: str | None) -> str:
    config = app.config
    if instance is None and len(config.archive) == 1:
        return next(iter(config.archive))
    return config.archive_settings(instance).name


@click.group("archive")
def archive_group() -> None:
    """Continuous archiving of Redis: every write, for restores to any second (restore --to-time).

    \b
      bdr archive redis --instance production      run the archiver (foreground, until stopped)
      bdr archive list                              the recoverable windows, lag, segments, bases
      bdr archive prune --dry-run                   segments no base can use any more
    """


@archive_group.command("redis")
@click.option("--instance", "-i", metavar="NAME", help="The instance of archive.redis in bdr.yaml (default: the "
              "only one, else the default instance).")
@json_option
@pass_app
def archive_redis(app: App, instance: str | None) -> None:
    """Archive the writes of a Redis instance continuously, as a replica does; runs until stopped.

    \b
    It takes a full sync as its first base (a backup set), then writes the command stream in
    sealed, checksummed, time-indexed segments (every segment_seconds or segment_bytes of
    archive.redis.NAME) to the repository and/or remote.url, encrypted like backups. After
    a restart or a dropped link it resumes with PSYNC where the master's backlog allows,
    else takes a new base and says so. SIGTERM or Ctrl-C: the open segment is sealed and
    delivered, then it exits.
    """
    from bdr.engines.redis.archive.archiver import Archiver
    from bdr.engines.redis.archive.destinations import destinations_for

    config = app.config
    name = _settings_name(app, instance)
    settings = config.archive_settings(name)
    destinations = destinations_for(config, settings)
    stop = threading.Event()
    archiver = Archiver(config, name, destinations, stop)
    every = format_duration(settings.segment_seconds)
    app.note(f"Archiving [bold]redis {name}[/] ({config.redis_instance(name).url}) into "
             f"{', '.join(d.repo.url for d in destinations)}: segments every {every} or {settings.segment_bytes} "
             "bytes; stop with Ctrl-C or SIGTERM")
    with _stopping_on_signals(stop):
        progress = archiver.run()
    summary = {"instance": name, "segments_sealed": progress.segments_sealed,
               "segments_delivered": progress.segments_delivered, "bases_taken": progress.bases_taken,
               "new_bases": progress.new_bases, "stream": progress.replid, "offset": progress.sealed}
    if app.json_output:
        app.emit_json(summary)
    else:
        app.line(f"archiver of redis {name} stopped: {progress.segments_sealed} segment(s) sealed, "
                 f"{progress.segments_delivered} delivered, {progress.bases_taken} base(s) taken"
                 + (f" ({progress.new_bases} because the stream could not be continued)" if progress.new_bases else ""))


@archive_group.command("list")
@click.option("--instance", "-i", metavar="NAME", help="Only this archived instance.")
@repository_options
@json_option
@pass_app
def archive_list(app: App, instance: str | None, destination: str | None, remote: str | None) -> None:
    """What each archived instance can be restored to: its windows, lag, segments and bases."""
    from bdr.api.inputs import open_repository
    from bdr.engines.redis.archive.report import archive_status

    config = app.config
    names = [_settings_name(app, instance)] if instance or len(config.archive) == 1 else list(config.archive)
    if not names:
        raise UsageError(detail=f"{config.source_label} archives nothing: add archive: redis: NAME: {{}} to it")
    repo = open_repository(config, destination, remote) if destination or remote else None
    found = [archive_status(config, config.archive_settings(n), repo) for n in names]
    if app.json_output:
        app.emit_json([s.to_dict() for s in found])
        return
    for status in found:
        lag = "-" if status.lag_seconds is None else format_duration(status.lag_seconds)
        archiver = status.archiver or {}
        state = "running" if status.running else "not running"
        app.line(f"redis {status.instance} in {status.repository}: archiver {state}"
                 + (f" ({archiver.get('state')})" if status.running else "") + f", lag {lag}, {status.segments} "
                 f"segment(s), {status.stream_bytes} bytes, {status.bases} base(s), {status.new_bases} new base(s)")
        rows = [(w.describe(), format_duration((w.to_us - w.from_us) / 1e6), w.replid[:12], ", ".join(w.bases[-3:]))
                for w in status.windows]
        app.table(f"recoverable windows of redis {status.instance}", ["from - to (UTC)", "length", "stream",
                                                                        "bases"], rows)
        for problem in status.problems():
            app.warn(problem)


@archive_group.command("prune")
@click.option("--instance", "-i", metavar="NAME", help="Only this archived instance.")
@repository_options
@click.option("--dry-run", "-n", is_flag=True, help="Say what would be deleted; delete nothing.")
@json_option
@pass_app
def archive_prune(app: App, instance: str | None, destination: str | None, remote: str | None,
                  dry_run: bool) -> None:
    """Delete the segments no base can use: before the oldest base set of their stream, or older than keep."""
    from bdr.api.inputs import open_repository
    from bdr.engines.redis.archive.retention import prune_archive
    from bdr.engines.redis.archive.window import us_of
    from bdr.repository.manifest import utcnow

    config = app.config
    names = [_settings_name(app, instance)] if instance or len(config.archive) == 1 else list(config.archive)
    repo = open_repository(config, destination, remote)
    report = []
    for name in names:
        found = prune_archive(repo, name, us_of(utcnow()), config.archive_settings(name).keep, dry_run)
        report.append({"instance": name, "repository": repo.url, "dry_run": dry_run,
                       "segments": [{"name": p.segment.name.name, "reason": p.reason} for p in found]})
        if not app.json_output:
            verb = "would delete" if dry_run else "deleted"
            app.line(f"redis {name}: {verb} {len(found)} segment(s) in {repo.url}"
                     + (" (dry run, nothing changed)" if dry_run else ""))
            for item in found[:20]:
                app.line(f"  {item.segment.name.name}: {item.reason}")
    if app.json_output:
        app.emit_json(report)


def register(cli: click.Group) -> None:
    cli.add_command(archive_group)
