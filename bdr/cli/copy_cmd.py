"""``bdr copy SET --remote [URL] | --to DIR``: an existing set sent off-site (or to another disk), no new snapshot."""

from __future__ import annotations

import click

from bdr.api.copies import CopyOutcome, CopyRun, copy_sets
from bdr.cli.app import App, json_option, pass_app, size_text, wait_lock_option
from bdr.cli.options import SOURCES, key_option
from bdr.copy import Mode
from bdr.errors import UsageError


def describe(outcome: CopyOutcome, destination: str) -> str:
    """``copied ID to DEST: re-encrypted, 2 object(s), 1.2 MiB; checked ...``, or that it was there already."""
    record = outcome.record
    if outcome.mode is Mode.ALREADY_THERE:
        return (f"{outcome.id} is already in {destination} (checked {record.checked_at[:19].replace('T', ' ')} "
                "UTC): nothing to copy")
    return (f"[green]copied[/] {outcome.id} to {destination}: {outcome.mode}, {record.objects} object(s), "
            f"{size_text(record.stored_bytes)}; checked: every stored object re-hashed against the manifest")


def render(app: App, run: CopyRun) -> None:
    """One line per set (members of a system set indented), then what ``latest`` skipped."""
    for skipped in run.skipped:
        app.warn(f"latest skipped {skipped.describe()}")
    if run.note:
        app.warn(run.note)
    if app.json_output:
        app.emit_json(run.to_dict())
        return
    if not run.outcomes:
        app.line(f"nothing to copy: {run.destination} holds every good set of {run.source}")
        return

    def show(outcome: CopyOutcome, indent: str) -> None:
        for member in outcome.members:
            show(member, indent + "  ")
        app.line(indent + describe(outcome, run.destination))

    for outcome in run.outcomes:
        show(outcome, "")


@click.command("copy")
@click.argument("backup", metavar="[SET]", required=False)
@click.option("--source", "-s", type=click.Choice(SOURCES), help="With latest: the newest set of this source.")
@click.option("--instance", "-i", metavar="NAME", help="With latest: the newest set of this instance (default: the "
              "source's default instance).")
@click.option("--remote", metavar="URL", is_flag=False, flag_value="", default=None,
              help="Copy off-site, to s3://bucket/prefix (default URL: remote.url in bdr.yaml).")
@click.option("--to", "to", metavar="DIR", type=click.Path(file_okay=False),
              help="Copy to another local repository (a second disk).")
@click.option("--from", "from_location", metavar="DIR|URL",
              help="The repository the sets are in (default: repository in bdr.yaml).")
@click.option("--all-missing", is_flag=True, help="Copy every good set the destination does not hold yet.")
@click.option("--encrypt", is_flag=True, help="Encrypt plain sets on their way (off-site they are unless "
              "--allow-plaintext).")
@key_option
@click.option("--allow-plaintext", is_flag=True, help="Allow a plain set to go off-site unencrypted.")
@wait_lock_option
@json_option
@pass_app
def copy_command(app: App, backup: str | None, source: str | None, instance: str | None, remote: str | None,
                 to: str | None, from_location: str | None, all_missing: bool, encrypt: bool, key_file: str | None,
                 allow_plaintext: bool) -> None:
    """Copy SET to another repository without taking a new snapshot; check the copy there.

    \b
    SET is a set id (or unique prefix) or `latest` (of --source and --instance); --all-missing
    copies every good set the destination lacks. An encrypted set goes as it is; a plain set is
    encrypted on its way off-site (--allow-plaintext: not). The copy keeps the set's id, so
    `bdr list` shows it in both repositories and `bdr status` counts it as a copy of that backup.
    \b
    Off-site:          bdr copy latest --source redis --remote
    Another disk:      bdr copy latest --source redis --to /mnt/backup2/bdr
    Catch up:          bdr copy --all-missing --remote s3://bucket/bdr
    """
    if instance and not source:
        raise UsageError(detail="--instance needs --source (an instance of which source?)")
    label = "every missing set" if all_missing else backup
    with app.progress(f"copying {label}"):
        run = copy_sets(app.config, backup, source=source, instance=instance, from_location=from_location,
                        remote=remote, to=to, all_missing=all_missing, key_file=key_file, encrypt=encrypt,
                        allow_plaintext=allow_plaintext, on_step=app.print_step)
    render(app, run)


def register(cli: click.Group) -> None:
    cli.add_command(copy_command)
