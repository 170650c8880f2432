"""``bdr repair redis``: check damaged data files on a copy; fix them only with --yes."""

from __future__ import annotations

import click

from bdr.api.repairs import repair
from bdr.cli.app import App, json_option, pass_app
from bdr.engines.redis.repair import FileState, RepairReport, Verdict
from bdr.errors import CheckFailed, RepairImpossible

MARKS = {FileState.OK: "[green]✔[/]", FileState.NOT_CHECKED: "[dim]-[/]"}


def _show(app: App, report: RepairReport) -> None:
    loads = "AOF" if report.loads_from == "aof" else "RDB"
    state = "running" if report.running else "not running"
    app.line(f"Redis [bold]{report.instance}[/] ({state}, loads its {loads} from {report.data_dir}); "
             "checked on a copy of its files")
    app.table(None, ("", "file", "role", "loaded", "state", "size", "detail"), [
        (MARKS.get(f.state, "[red]✘[/]"), f.path, f.role, "yes" if f.loaded else "no", f.state, f.size, f.detail)
        for f in report.findings
    ])


@click.group("repair")
def repair_group() -> None:
    """Check a service's damaged data files and repair them, or say which restore to run."""


@repair_group.command("redis")
@click.option("--target", "-t", metavar="NAME", help="Instance in bdr.yaml (default: production).")
@click.option("--yes", "-y", is_flag=True,
              help="Apply the repair: stop the server, fix, keep the originals in <dir>/bdr-repair-<time>/, start.")
@json_option
@pass_app
def repair_redis(app: App, target: str | None, yes: bool) -> None:
    """Run redis-check-rdb/redis-check-aof on a copy of the data files and report what a fix would lose.

    \b
    Exit codes: 0 nothing to repair, or repaired (--yes); 1 damage found, not repaired
    (run again with --yes); 11 not repairable: restore from a backup.
    \b
      bdr repair redis                 # check, change nothing
      bdr repair redis --yes           # repair when it can be repaired
      bdr repair redis --target test --json
    """
    with app.progress("checking the data files"):
        report = repair(app.config, "redis", target, apply=yes)
    if app.json_output:
        app.emit_json(report.to_dict())
    else:
        _show(app, report)
    if report.verdict is Verdict.IMPOSSIBLE:
        raise RepairImpossible(detail=report.advice())
    if report.verdict is Verdict.HEALTHY:
        app.line(f"[green]{report.advice()}[/]")
        return
    if not report.applied:
        app.line(report.advice())
        app.line(f"Run `bdr repair redis --target {report.instance} --yes` to apply it: the server is stopped, "
                 f"the original files are kept in {report.data_dir}/bdr-repair-<time>/, and it is started again.")
        raise CheckFailed(detail=f"the data files of Redis {report.instance} are damaged and were not repaired "
                          "(nothing was changed)")
    app.line(f"[green]repaired[/] Redis {report.instance}: it answers with {report.facts.get('keys', '?')} keys; "
             f"the original files are kept in {report.moved_aside}")


def register(cli: click.Group) -> None:
    cli.add_command(repair_group)
