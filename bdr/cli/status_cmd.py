"""``bdr status``: the age of the newest backups, their copies, and the 3-2-1 rule; exit 1 when stale."""

from __future__ import annotations

import click

from bdr.cli.app import App, json_option, pass_app
from bdr.cli.options import SOURCES
from bdr.monitoring.status import Health, SourceStatus, StatusReport, check, status
from bdr.repository.retention import policy_span
from bdr.util.durations import format_duration

HEALTH_STYLE = {Health.OK: "[green]ok[/]", Health.STALE: "[red]STALE[/]", Health.MISSING: "[red]MISSING[/]",
                Health.UNVERIFIED: "[red]UNVERIFIED[/]", Health.UNCHECKED: "[dim]not checked[/]"}


def _holding(group: SourceStatus, location: str) -> str:
    ages = [format_duration(c.age_seconds) for c in group.holdings if c.location == location]
    return ", ".join(ages) if ages else "-"


def _print(app: App, report: StatusReport) -> None:
    locations = list(dict.fromkeys(v.location for v in report.repositories))
    rows = []
    for g in report.sources:
        newest = g.newest
        rows.append((
            g.source, g.instance,
            newest.backup.id if newest else "-",
            f"{format_duration(newest.age_seconds)} / {policy_span(g.max_age)}" if newest
            else f"- / {policy_span(g.max_age)}",
            (format_duration(g.last_verified_seconds) + " ago" if g.last_verified_seconds is not None
             else "never") + (f" / {policy_span(g.max_verify_age)}" if g.expected else ""),
            *(_holding(g, loc) for loc in locations),
            ("[green]yes[/]" if g.rule_321.ok else "[yellow]no[/]") if g.expected else "-",
            HEALTH_STYLE[g.health],
        ))
    app.table(f"backup status at {report.at:%Y-%m-%d %H:%M:%S} UTC",
              ["source", "instance", "newest set", "age / max", "verified / max",
               *(f"newest in {loc}" for loc in locations), "3-2-1", "status"], rows)
    for view in report.repositories:
        state = f"[red]cannot read: {view.error}[/]" if view.error else f"{len(view.sets)} set(s)"
        app.line(f"  {view.location:<5} {view.url} ({view.medium}{', off-site' if view.offsite else ''}): {state}")
    for g in report.sources:
        if g.expected and not g.rule_321.ok:
            app.line(f"  3-2-1 {g.source}/{g.instance}: {g.rule_321.reason}", style="yellow")
    for view in report.repositories:
        for damaged in view.damaged:
            app.line(f"  DAMAGED {damaged.id} in {view.url}: {damaged.reason}", style="red")
    for archive in report.archives:
        lag = "-" if archive.lag_seconds is None else format_duration(archive.lag_seconds)
        window = (f"recoverable {archive.windows[0].describe().split(' to ')[0]} to "
                  f"{archive.windows[-1].describe().split(' to ')[1]} ({len(archive.windows)} window(s))"
                  if archive.windows else "nothing recoverable to a point in time yet")
        state = "archiver running" if archive.running else "[red]archiver NOT running[/]"
        app.line(f"  archive redis/{archive.instance}: {window}, lag {lag} / {policy_span(archive.max_lag)}, {state}")
    for line in report.interrupted:
        app.line(f"  INTERRUPTED {line}", style="bold red")
    for line in report.settings_left:
        app.line(f"  {line}", style="yellow")


@click.command("status")
@click.argument("source", type=click.Choice(SOURCES), required=False)
@click.option("--instance", "-i", metavar="NAME", help="Instance of SOURCE (default: the configured default).")
@click.option("--destination", "-d", "destinations", metavar="DIR", multiple=True,
              type=click.Path(file_okay=False), help="Another local repository to count (repeatable), "
              "e.g. a second disk.")
@click.option("--remote", metavar="URL", help="Off-site repository (default: remote.url in bdr.yaml).")
@click.option("--require-321", is_flag=True, help="Also exit 1 when the 3-2-1 rule does not hold.")
@json_option
@pass_app
def status_command(app: App, source: str | None, instance: str | None, destinations: tuple[str, ...],
                   remote: str | None, require_321: bool) -> None:
    """How old the newest backups are, where their copies are, whether 3-2-1 holds.

    Every instance the schedule backs up is checked (not only the default ones; instances
    with backup: false, restore targets, are not). Exit 1 when the newest good backup of one
    is older than max_backup_age (default 24h) or missing, or when none of its sets passed
    `bdr verify` within max_verify_age (default 7d); with --require-321 also when the 3-2-1
    rule (3 copies with the live data, 2 media, 1 off-site) does not hold. Exit 13 while a
    restore is interrupted.
    """
    with app.progress("reading the repositories"):
        report = status(app.config, destinations=destinations, remote=remote, source=source, instance=instance)
    if app.json_output:
        app.emit_json(report.to_dict())
    else:
        _print(app, report)
    check(report, require_321=require_321)


def register(cli: click.Group) -> None:
    cli.add_command(status_command)
