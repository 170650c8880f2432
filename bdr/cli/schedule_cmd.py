"""``bdr schedule``: the ``schedule:`` of bdr.yaml as systemd timers (default) or crontab lines (``--cron``).

Prints the units (or the crontab) by default; ``--install`` writes them into ``--dir``
(``/etc/systemd/system``, or ``/etc/cron.d`` with ``--cron``) and removes the units of jobs
that left the schedule; nothing is enabled without ``--enable`` (``systemctl daemon-reload``
and ``systemctl enable --now`` of each timer).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from bdr.cli.app import App, json_option, pass_app
from bdr.errors import UsageError
from bdr.schedule.crontab import DEFAULT_CRON_DIR, crontab
from bdr.schedule.install import install
from bdr.schedule.jobs import jobs_for
from bdr.schedule.systemd import DEFAULT_ENVIRONMENT_FILE, DEFAULT_UNIT_DIR, Invocation, UnitFile, lock_span, units


def bdr_argv(explicit: str | None) -> tuple[str, ...]:
    """How the jobs run bdr: ``--bdr``, else this very bdr (its absolute path), else ``python -m bdr.cli.main``."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_absolute():
            raise UsageError(detail=f"--bdr {explicit}: give the absolute path of the bdr executable")
        return (str(path),)
    candidates = [Path(sys.argv[0]) if Path(sys.argv[0]).name == "bdr" else None, Path(sys.executable).parent / "bdr"]
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            return (str(candidate.resolve()),)
    return (sys.executable, "-m", "bdr.cli.main")


def _live_drill() -> bool:
    """Whether this bdr has ``bdr drill --live`` (else the sandbox drills are what a drill job runs)."""
    from bdr.cli.drill_cmd import drill_command

    return any("--live" in getattr(p, "opts", ()) for p in drill_command.params)


def _print(app: App, files: list[UnitFile], cron: bool) -> None:
    for unit in files:
        if not cron:
            click.echo(f"# --- {unit.name}")
        click.echo(unit.text, nl=not unit.text.endswith("\n"))
    if not app.quiet:
        click.echo(f"# install: bdr schedule{' --cron' if cron else ''} --install{'' if cron else ' [--enable]'}",
                   err=True)


@click.command("schedule")
@click.option("--cron", is_flag=True, help="Crontab lines (/etc/cron.d/bdr) instead of systemd units.")
@click.option("--install", "do_install", is_flag=True, help="Write them (default dir: /etc/systemd/system, "
              "or /etc/cron.d with --cron).")
@click.option("--dir", "directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
              help="Where --install writes.")
@click.option("--enable", is_flag=True, help="With --install: systemctl daemon-reload, then enable --now each timer.")
@click.option("--bdr", "bdr_path", metavar="PATH", help="The bdr executable the jobs run (default: this one).")
@click.option("--user", metavar="USER", help="Run the jobs as USER (default: root).")
@click.option("--environment-file", metavar="FILE", default=DEFAULT_ENVIRONMENT_FILE, show_default=True,
              help="systemd: an optional file of VAR=value lines for the jobs (REDIS_PASSWORD, BDR_KEY, AWS_...); "
              "'' for none.")
@json_option
@pass_app
def schedule_command(app: App, cron: bool, do_install: bool, directory: Path | None, enable: bool,
                     bdr_path: str | None, user: str | None, environment_file: str) -> None:
    """Turn `schedule:` of bdr.yaml into systemd timers (or crontab lines) that run bdr.

    \b
    Each backup (one per instance), the off-site copy, prune, verify and the monthly
    `bdr drill --live` becomes a oneshot service with a timer (Persistent=true: a run
    missed while the host was down happens at boot). Jobs wait for the repository lock
    (--wait-lock) instead of failing when runs overlap; the metrics textfile is rewritten
    after every run, failed or not.
    \b
      bdr schedule                          print the units
      bdr schedule --install --enable       write them to /etc/systemd/system and start the timers
      bdr schedule --cron --install         /etc/cron.d/bdr instead
    """
    if enable and not do_install:
        raise UsageError(detail="--enable needs --install (it enables the timers it writes)")
    if enable and cron:
        raise UsageError(detail="--enable is for systemd timers; cron reads /etc/cron.d by itself")
    if directory is not None and not do_install:
        raise UsageError(detail="--dir is where --install writes: add --install")
    config = app.config
    jobs = jobs_for(config, live_drill=_live_drill())
    if not jobs:
        raise UsageError(detail=f"{config.source_label} schedules nothing: add schedule: to it "
                         "(e.g. redis: \"*/30 * * * *\")")
    source = str(config.path) if config.path else "the embedded defaults"
    if config.path is None:
        app.warn("no bdr.yaml: the jobs run with the embedded defaults (repository ./backups in "
                 f"{Path.cwd()}); write one with `bdr init` and pass --config")
    how = Invocation(bdr=bdr_argv(bdr_path), config=config.path, workdir=config.base_dir().resolve(),
                     metrics=bool(config.metrics_textfile), user=user, environment_file=environment_file or None)
    files = [crontab(jobs, how, source)] if cron else units(jobs, how, source)
    if not do_install:
        if app.json_output:
            app.emit_json({"format": "cron" if cron else "systemd", "jobs": [j.to_dict() for j in jobs],
                           "files": [{"name": f.name, "text": f.text} for f in files]})
            return
        _print(app, files, cron)
        return
    target = directory or (DEFAULT_CRON_DIR if cron else DEFAULT_UNIT_DIR)
    done = install(files, target, enable=enable, systemd=not cron)
    if app.json_output:
        app.emit_json({"format": "cron" if cron else "systemd", "jobs": [j.to_dict() for j in jobs],
                       **done.to_dict()})
        return
    for job in jobs:
        wait = f", waits up to {lock_span(job.wait_lock)} for the lock" if job.wait_lock else ""
        app.line(f"  {job.unit:<34} `{job.cron}`  bdr {shlex.join(job.args)}{wait}")
    app.line(f"{len(done.written)} file(s) written to {target}, {len(done.unchanged)} unchanged"
             + (f", {len(done.removed)} removed (no longer scheduled): "
                f"{', '.join(p.name for p in done.removed)}" if done.removed else ""))
    if cron:
        app.line("cron reads it by itself; check with `bdr lint --crontab " + str(target / files[0].name) + "`")
    elif done.enabled:
        app.line(f"enabled and started: {', '.join(done.enabled)}; see them with `systemctl list-timers 'bdr-*'`")
    else:
        timers = " ".join(f.name for f in files if f.name.endswith(".timer"))
        app.line(f"not enabled yet: systemctl daemon-reload && systemctl enable --now {timers}")


def register(cli: click.Group) -> None:
    cli.add_command(schedule_command)
