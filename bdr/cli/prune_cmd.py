"""``bdr prune``: apply the retention table of bdr.yaml to a repository, showing why each set stays."""

from __future__ import annotations

import click
from rich.markup import escape

from bdr import api
from bdr.cli.app import App, json_option, pass_app, wait_lock_option
from bdr.cli.options import SOURCES, repository_options
from bdr.repository.retention import PruneResult, RetentionPolicy, prune


def _warn_damaged(app: App, result: PruneResult) -> None:
    for damaged in result.damaged:
        app.warn(f"not pruning {damaged.id}: it is damaged ({escape(damaged.reason)}); bdr never deletes a damaged "
                 f"set: check it with `bdr verify {damaged.id}`")


def _print(app: App, result: PruneResult) -> None:
    _warn_damaged(app, result)
    if not result.decisions:
        app.line(f"no backup sets in {result.repository}: nothing to prune")
        return
    rows = [
        (d.id, d.backup.manifest.instance, d.backup.manifest.finished_at[:19].replace("T", " "),
         "keep" if d.keep else ("[yellow]would delete[/]" if result.dry_run else "[red]delete[/]"),
         "; ".join(d.reasons) if d.keep else d.note)
        for d in result.decisions
    ]
    app.table(f"retention in {result.repository} ({result.location}): {'; '.join(result.rules)}",
              ["id", "instance", "time (UTC)", "action", "why"], rows)
    if result.dry_run:
        app.line(_dry_run_line(result))
        return
    app.line(f"{len(result.to_keep)} set(s) kept, {len(result.deleted)} deleted")
    for set_id in result.spared:
        app.warn(f"{set_id} was not deleted: a restore started reading it")


def _dry_run_line(result: PruneResult) -> str:
    doomed = result.to_delete
    return (f"would keep {len(result.to_keep)} set(s) and delete {len(doomed)}"
            + (f": {', '.join(d.id for d in doomed)}" if doomed else "") + " (dry run, nothing changed)")


@click.command("prune")
@click.option("--source", "-s", type=click.Choice(SOURCES), help="Only this source (default: all of them).")
@click.option("--instance", "-i", metavar="NAME", help="Only this instance of the source.")
@repository_options
@click.option("--dry-run", "-n", is_flag=True, help="Show what would be kept and deleted; delete nothing.")
@wait_lock_option
@json_option
@pass_app
def prune_command(app: App, source: str | None, instance: str | None, destination: str | None,
                  remote: str | None, dry_run: bool) -> None:
    """Delete the backup sets no retention rule keeps (bdr.yaml `retention:`).

    Per source and instance, a calendar rule keeps the newest set of each hour/day/ISO
    week/month of its window, at the locations it names (local, s3). Never deleted: the
    newest good set, the newest verified set, sets a restore is reading, members of a kept
    whole-system set, and damaged sets (listed with a warning). Deletes under the repository lock.
    """
    repo = api.open_repository(app.config, destination, remote)
    policy = RetentionPolicy.from_config(app.config)
    with app.progress("deciding what to keep" if dry_run else "pruning"):
        result = prune(repo, policy, source=source, instance=instance, dry_run=dry_run)
    if result.deleted:
        from bdr.monitoring.metrics import refresh

        refresh(app.config)
    if app.json_output:
        data = result.to_dict()
        if dry_run:
            data["would_delete"] = [d.id for d in result.to_delete]
            data["summary"] = _dry_run_line(result)
        app.emit_json(data)
        return
    _print(app, result)


def register(cli: click.Group) -> None:
    cli.add_command(prune_command)
