"""``bdr verify BACKUP``: prove a set is intact (and, with --restore-test, that it restores).

The manifest's own digest (and MAC, with the key) are checks of their own; a damaged set
is verified as far as it reads and fails.
"""

from __future__ import annotations

import click

from bdr import api
from bdr.cli.app import App, json_option, pass_app
from bdr.cli.options import SOURCES, key_option, repository_options
from bdr.errors import CheckFailed, UsageError


@click.command("verify")
@click.argument("backup", metavar="BACKUP")
@click.option("--source", "-s", type=click.Choice(SOURCES), help="With latest: the newest set of this source.")
@click.option("--instance", "-i", metavar="NAME", help="With latest: the newest set of this instance (default: the "
              "source's default instance).")
@click.option("--restore-test", is_flag=True, help="Also load the set into a temporary instance and compare.")
@repository_options
@key_option
@json_option
@pass_app
def verify_command(app: App, backup: str, source: str | None, instance: str | None, restore_test: bool,
                   destination: str | None, remote: str | None, key_file: str | None) -> None:
    """Check BACKUP's manifest digest and MAC, every checksum, the datastore's own checkers, optionally a restore
    test.

    BACKUP is a set id (or unique prefix), a set directory, or `latest`: the newest good set (of
    --source and --instance), skipping damaged sets and sets whose last verify failed.
    """
    if instance and not source:
        raise UsageError(detail="--instance needs --source (an instance of which source?)")
    with app.progress(f"verifying {backup}"):
        report = api.verify(app.config, backup, source=source, instance=instance, restore_test=restore_test,
                            destination=destination, remote=remote, key_file=key_file)
    for skipped in report.skipped:
        app.warn(f"latest {skipped}")
    if app.json_output:
        app.emit_json(report.to_dict())
    else:
        for check in report.checks:
            mark = "[dim]-[/]" if check.skipped else ("[green]✔[/]" if check.ok else "[red]✘[/]")
            note = " [yellow](not verified)[/]" if check.skipped else ""
            app.line(f"  {mark} {check.name}: {check.detail}{note}")
        app.line(f"[green]{report.backup_id} is good[/]" if report.ok else f"[red]{report.backup_id} FAILED[/]")
    if not report.ok:
        raise CheckFailed(detail=f"backup {report.backup_id} failed verification")


def register(cli: click.Group) -> None:
    cli.add_command(verify_command)
