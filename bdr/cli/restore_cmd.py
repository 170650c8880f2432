"""``bdr restore SOURCE BACKUP``: everything, or a selection, back into a live instance."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from bdr import api
from bdr.cli.app import App, json_option, pass_app
from bdr.cli.options import SOURCES, key_option, repository_options
from bdr.durations import format_duration
from bdr.errors import CheckFailed, UsageError


def _selection(keys: str | None, db: int | None, collection: str | None, rename: str | None,
               filter_json: str | None, paths: tuple[str, ...], to: str | None) -> dict[str, Any]:
    selection: dict[str, Any] = {}
    if keys:
        selection.update(keys=keys, db=db)
    elif db is not None:
        raise UsageError(detail="--db only applies with --keys")
    if collection:
        selection["collection"] = collection
    if rename:
        if not collection:
            raise UsageError(detail="--as needs --collection")
        selection["as"] = rename
    if filter_json:
        try:
            selection["filter"] = json.loads(filter_json)
        except ValueError as exc:
            raise UsageError(detail=f"--filter is not valid JSON: {exc}") from exc
    if paths:
        selection["paths"] = list(paths)
    if to:
        selection["root"] = to
    return selection


@click.command("restore")
@click.argument("source", type=click.Choice(SOURCES))
@click.argument("backup", metavar="BACKUP")
@click.option("--target", "-t", metavar="NAME", help="Instance in bdr.yaml to restore into (default: production).")
@repository_options
@click.option("--keys", metavar="PATTERN", help="redis: restore only keys matching PATTERN (e.g. 'user:*').")
@click.option("--db", type=int, metavar="N", help="redis: with --keys, only database N.")
@click.option("--collection", metavar="NAME", help="qdrant: restore only this collection.")
@click.option("--as", "rename", metavar="NAME", help="qdrant: restore --collection under this name.")
@click.option("--filter", "filter_json", metavar="JSON", help="qdrant: only points matching this payload filter.")
@click.option("--path", "paths", multiple=True, metavar="GLOB", help="config: only these paths (repeatable).")
@click.option("--to", metavar="DIR", help="config: restore under DIR instead of the configured root.")
@click.option("--conflict", type=click.Choice(["skip", "replace", "fail"]), default="fail", show_default=True,
              help="Selective restore: what to do with items that exist in the target.")
@click.option("--dry-run", is_flag=True, help="Show what would happen; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation on a terminal.")
@key_option
@json_option
@pass_app
def restore_command(app: App, source: str, backup: str, target: str | None, destination: str | None,
                    remote: str | None, keys: str | None, db: int | None, collection: str | None,
                    rename: str | None, filter_json: str | None, paths: tuple[str, ...], to: str | None,
                    conflict: str, dry_run: bool, yes: bool, key_file: str | None) -> None:
    """Restore BACKUP (an id, 'latest', a set directory, or an old script's directory/.tar.gz).

    \b
    A full restore runs: safety backup, stop, replace, start, verify; a failure in the last
    three rolls back to the safety backup (exit 10).
    \b
      bdr restore redis latest
      bdr restore redis redis-20250124T020000Z-1a2b3c --target test
      bdr restore redis latest --keys 'user:*' --conflict skip --dry-run
      bdr restore redis ./backups/redis/redis_backup_20250124_020000.tar.gz
    """
    selection = _selection(keys, db, collection, rename, filter_json, paths, to)
    where = target or "the default instance"
    if not (yes or dry_run or app.json_output) and sys.stdin.isatty():
        what = "matching items of" if selection else "ALL data of"
        click.confirm(f"Restore {backup} over {what} {source} {where}? A safety backup is taken first",
                      abort=True, err=True)
    app.note(f"Restoring [bold]{source}[/] from {backup} into {where}{' (dry run)' if dry_run else ''}")
    result = api.restore(
        app.config, source, backup, target=target, destination=destination, remote=remote, selection=selection,
        conflict=conflict, dry_run=dry_run, key_file=key_file, on_step=app.print_step,
    )
    if app.json_output:
        app.emit_json(result.to_dict())
    else:
        for check in result.checks:
            mark = "[green]✔[/]" if check.ok else "[red]✘[/]"
            app.line(f"  {mark} {check.name}: {check.detail}")
        if result.counts:
            app.line("  " + ", ".join(f"{k}: {v}" for k, v in result.counts.items()))
        if result.safety_id:
            app.line(f"  safety backup: {result.safety_id} (bdr restore {source} {result.safety_id} to undo)")
        verdict = "[green]restored[/]" if result.ok else "[red]restore finished with failed checks[/]"
        app.line(f"{verdict} {result.ref} into {result.target} in {format_duration(result.seconds)}")
    if not result.ok:
        raise CheckFailed(detail="verification after the restore failed; see the checks above")


def register(cli: click.Group) -> None:
    cli.add_command(restore_command)
