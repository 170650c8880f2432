"""``bdr restore SOURCE BACKUP``: everything, or a selection, back into a live instance."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from bdr import api
from bdr.cli.app import App, json_option, pass_app
from bdr.cli.options import SOURCES, key_option, repository_options, restore_prompt
from bdr.engines.base import RestoreResult
from bdr.engines.selection import Conflict
from bdr.errors import CheckFailed, UsageError
from bdr.util.durations import format_duration


def _filter(filter_json: str | None) -> Any:
    if not filter_json:
        return None
    try:
        return json.loads(filter_json)
    except ValueError as exc:
        raise UsageError(detail=f"--filter is not valid JSON: {exc}") from exc


@click.command("restore")
@click.argument("source", type=click.Choice(SOURCES))
@click.argument("backup", metavar="BACKUP", required=False)
@click.option("--target", "-t", metavar="NAME", help="Instance in bdr.yaml to restore into (default: production).")
@repository_options
@click.option("--keys", metavar="PATTERN", help="redis: restore only keys matching PATTERN (e.g. 'user:*').")
@click.option("--db", type=int, metavar="N", help="redis: with --keys, only database N.")
@click.option("--node", metavar="HOST:PORT", help="redis cluster: bring this lost node back as a replica of its "
              "shard.")
@click.option("--collection", metavar="NAME", help="qdrant: restore only this collection.")
@click.option("--as", "rename", metavar="NAME", help="qdrant: restore --collection under this name.")
@click.option("--filter", "filter_json", metavar="JSON", help="qdrant: only points matching this payload filter.")
@click.option("--path", "paths", multiple=True, metavar="GLOB", help="config: only these paths (repeatable).")
@click.option("--to", metavar="DIR", help="config: restore under DIR instead of the configured root.")
@click.option("--dashboard", metavar="UID", help="grafana: import only this dashboard through the HTTP API "
              "(needs grafana.NAME.url); the database is left alone.")
@click.option("--conflict", type=click.Choice([str(c) for c in Conflict]), default=str(Conflict.FAIL),
              show_default=True, help="Selective restore: what to do with items that exist in the target.")
@click.option("--dry-run", is_flag=True, help="Show what would happen; change nothing.")
@click.option("--to-time", metavar="TIME", help="redis: the data as it was at TIME (2026-12-02T14:04:59Z, or latest), "
              "from a base set and the archived stream (bdr archive redis); BACKUP, if given, is the base.")
@click.option("--resume", is_flag=True, help="Finish a restore that was interrupted (no BACKUP needed).")
@click.option("--abort", is_flag=True, help="Roll back a restore that was interrupted (no BACKUP needed).")
@click.option("--force", is_flag=True, help="With --abort: roll back even if the restored instance has taken "
              "writes since it was started (they are lost).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation on a terminal.")
@key_option
@json_option
@pass_app
def restore_command(app: App, source: str, backup: str | None, target: str | None, destination: str | None,
                    remote: str | None, keys: str | None, db: int | None, node: str | None, collection: str | None,
                    rename: str | None, filter_json: str | None, paths: tuple[str, ...], to: str | None,
                    dashboard: str | None, conflict: str, dry_run: bool, to_time: str | None, resume: bool,
                    abort: bool, force: bool, yes: bool, key_file: str | None) -> None:
    """Restore BACKUP (an id, 'latest', a set directory, or an old script's directory/.tar.gz).

    \b
    Every restore runs: fetch, check (before anything live is touched), safety backup,
    stop, replace, start, verify; a failure rolls back (exit 10; 12 if the rollback fails
    too). Each step is journaled first: a restore that was killed is finished with
    --resume or rolled back with --abort.
    \b
      bdr restore redis latest
      bdr restore redis redis-20250124T020000Z-1a2b3c --target test
      bdr restore redis latest --keys 'user:*' --conflict skip --dry-run
      bdr restore redis --to-time 2026-12-02T14:04:59Z --dry-run
      bdr restore redis ./backups/redis/redis_backup_20250124_020000.tar.gz
      bdr restore redis --resume          (or --abort) after an interrupted restore
      bdr restore redis latest --node 10.0.0.5:7001   (a lost cluster node back)
      bdr restore grafana latest --dashboard agents-overview   (one dashboard, by uid)
    """
    if resume or abort:
        if resume and abort:
            raise UsageError(detail="--resume finishes an interrupted restore, --abort rolls it back: choose one")
        if backup is not None:
            raise UsageError(detail=f"--{'resume' if resume else 'abort'} takes no BACKUP: the journal knows which "
                             "set was being restored")
        app.note(f"{'Resuming' if resume else 'Rolling back'} the interrupted restore of [bold]{source}[/]"
                 f"{' into ' + target if target else ''}")
        result = api.resume(app.config, source, target=target, abort=abort, force=force, key_file=key_file,
                            on_step=app.print_step)
        _report(app, source, result)
        return
    if force:
        raise UsageError(detail="--force only applies with --abort")
    if backup is None and to_time is None:
        raise UsageError(detail="which backup? give an id, 'latest' or a path (or --to-time TIME, or --resume/--abort "
                         "for an interrupted restore)")
    if dashboard and source != "grafana":
        raise UsageError(detail="--dashboard is for bdr restore grafana")
    selection = api.selection_for(source, keys=keys, db=db, node=node, collection=collection, rename_as=rename,
                                  filter=_filter(filter_json), paths=paths, root=to, dashboard=dashboard)
    where = target or "the default instance"
    if not (yes or dry_run or app.json_output) and sys.stdin.isatty():
        click.confirm(restore_prompt(app.config, source, backup or f"the archive at {to_time}", target,
                                     not selection.empty, destination, remote), abort=True, err=True)
    what = f"the archive at {to_time}" + (f" (base {backup})" if backup else "") if to_time else backup
    app.note(f"Restoring [bold]{source}[/] from {what} into {where}{' (dry run)' if dry_run else ''}")
    result = api.restore(
        app.config, source, backup, target=target, destination=destination, remote=remote, selection=selection,
        conflict=conflict, dry_run=dry_run, key_file=key_file, on_step=app.print_step, to_time=to_time,
    )
    _report(app, source, result)


def _report(app: App, source: str, result: RestoreResult) -> None:
    for skipped in result.facts.get("skipped_damaged", ()):
        app.warn(f"latest skipped {skipped}")
    if app.json_output:
        app.emit_json(result.to_dict())
    else:
        for check in result.checks:
            mark = "[dim]-[/]" if check.skipped else ("[green]✔[/]" if check.ok else "[red]✘[/]")
            note = " [yellow](not verified)[/]" if check.skipped else ""
            app.line(f"  {mark} {check.name}: {check.detail}{note}")
        if result.counts:
            app.line("  " + ", ".join(f"{k}: {v}" for k, v in result.counts.items()))
        target = f" --target {result.target}" if source == "redis" else ""
        aborted = result.facts.get("resumed", {}).get("action") == "abort"
        if result.safety_id and not result.dry_run and not aborted:
            app.line(f"  safety backup: {result.safety_id} (`bdr restore {source} {result.safety_id}{target}` "
                     "undoes it)")
        if result.dry_run:
            verdict = "[cyan]dry run[/]: nothing changed;"
        elif aborted:
            verdict = "[yellow]rolled back[/]"
        else:
            verdict = "[green]restored[/]" if result.ok else "[red]restore finished with failed checks[/]"
        app.line(f"{verdict} {result.ref} into {result.target} in {format_duration(result.seconds)}")
    if not result.ok:
        raise CheckFailed(detail="verification after the restore failed; see the checks above")


def register(cli: click.Group) -> None:
    cli.add_command(restore_command)
