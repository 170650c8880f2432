"""``bdr verify BACKUP``: prove a set is intact (and, with --restore-test, that it restores).

The manifest's own digest (and MAC, with the key) are checks of their own; a damaged set
is verified as far as it reads and fails.
"""

from __future__ import annotations

import click

from bdr import api
from bdr.cli.app import App, json_option, pass_app
from bdr.cli.options import key_option, repository_options
from bdr.errors import CheckFailed


@click.command("verify")
@click.argument("backup", metavar="BACKUP")
@click.option("--restore-test", is_flag=True, help="Also load the set into a temporary instance and compare.")
@repository_options
@key_option
@json_option
@pass_app
def verify_command(app: App, backup: str, restore_test: bool, destination: str | None, remote: str | None,
                   key_file: str | None) -> None:
    """Check BACKUP's manifest digest and MAC, every checksum, the datastore's own checkers, optionally a restore
    test."""
    with app.progress(f"verifying {backup}"):
        report = api.verify(app.config, backup, restore_test=restore_test, destination=destination,
                            remote=remote, key_file=key_file)
    for skipped in report.skipped:
        app.warn(skipped)
    if app.json_output:
        app.emit_json(report.to_dict())
    else:
        for check in report.checks:
            mark = "[green]✔[/]" if check.ok else "[red]✘[/]"
            app.line(f"  {mark} {check.name}: {check.detail}")
        app.line(f"[green]{report.backup_id} is good[/]" if report.ok else f"[red]{report.backup_id} FAILED[/]")
    if not report.ok:
        raise CheckFailed(detail=f"backup {report.backup_id} failed verification")


def register(cli: click.Group) -> None:
    cli.add_command(verify_command)
