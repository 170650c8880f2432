"""``bdr s3``: the off-site bucket's lifecycle (archive and expiry of old sets) and thawing archived sets.

    bdr s3 lifecycle show  [--remote s3://bucket/prefix]   the rules bdr.yaml asks for (JSON)
    bdr s3 lifecycle apply [--remote ...]                   put them, keeping the bucket's other rules
    bdr s3 lifecycle check [--remote ...]                   exit 1 and list differences if they drifted
    bdr s3 thaw BACKUP     [--remote ...] [--days 7]        restore a GLACIER set's objects for reading
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from bdr.cli.app import App, json_option, pass_app
from bdr.errors import CheckFailed, UsageError
from bdr.repository import Repository
from bdr.storage import lifecycle as s3_lifecycle
from bdr.storage.lifecycle import RESTORE_TIERS, RuleShape, ThawState

if TYPE_CHECKING:
    from bdr.storage.s3 import S3Storage


def _storage(app: App, remote: str | None) -> S3Storage:
    from bdr.storage.s3 import open_s3  # imports boto3: only when an s3 command runs

    url = remote or app.config.remote.url
    if not url:
        raise UsageError(
            detail="no off-site repository: give --remote s3://bucket/prefix or set remote.url in bdr.yaml"
        )
    return open_s3(url, settings=app.config.remote)


def remote_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option("--remote", metavar="URL",
                        help="Off-site repository, s3://bucket/prefix (default: remote.url in bdr.yaml).")(func)


@click.group("s3")
def s3_group() -> None:
    """Off-site repository on S3: lifecycle rules and thawing archived sets."""


@s3_group.group("lifecycle")
def lifecycle_group() -> None:
    """The bucket lifecycle derived from bdr.yaml (remote.archive_after_days, expire_after_days,
    abort_uploads_after_days)."""


@lifecycle_group.command("show")
@remote_option
@json_option
@pass_app
def lifecycle_show(app: App, remote: str | None) -> None:
    """Print the lifecycle rules the policy asks for (nothing is sent to the bucket)."""
    storage = _storage(app, remote)
    policy = s3_lifecycle.policy_for(storage)
    rules = policy.rules()
    if app.json_output:
        app.emit_json({"bucket": storage.bucket, "prefix": policy.key_prefix, "rules": rules})
        return
    app.line(f"# lifecycle rules for s3://{storage.bucket}/{policy.key_prefix} (apply: bdr s3 lifecycle apply)")
    for rule in rules:
        app.line(f"#   {rule['ID']}: {RuleShape.of(rule).describe()}")
    if not app.quiet:
        app.out.print_json(json.dumps({"Rules": rules}))


@lifecycle_group.command("apply")
@remote_option
@json_option
@pass_app
def lifecycle_apply(app: App, remote: str | None) -> None:
    """Put the policy's rules into the bucket; rules bdr did not write are kept as they are."""
    storage = _storage(app, remote)
    policy = s3_lifecycle.policy_for(storage)
    rules = s3_lifecycle.apply(storage)
    ours = [str(r["ID"]) for r in rules if policy.owns(r)]
    kept = [str(r.get("ID", "")) for r in rules if not policy.owns(r)]
    warnings = s3_lifecycle.foreign_overlaps(rules, policy)
    if app.json_output:
        app.emit_json({"bucket": storage.bucket, "prefix": policy.key_prefix, "applied": ours, "kept": kept,
                       "warnings": warnings})
        return
    app.line(f"lifecycle of s3://{storage.bucket}/{policy.key_prefix} applied: {', '.join(ours)}")
    if kept:
        app.line(f"kept {len(kept)} other rule(s): {', '.join(kept)}")
    for warning in warnings:
        app.warn(warning)


@lifecycle_group.command("check")
@remote_option
@json_option
@pass_app
def lifecycle_check(app: App, remote: str | None) -> None:
    """Compare the bucket's rules with the policy; exit 1 with the differences when they do not match."""
    storage = _storage(app, remote)
    result = s3_lifecycle.check(storage)
    if app.json_output:
        app.emit_json(result.to_dict())
    else:
        for difference in result.differences:
            app.line(f"  [red]✘[/] {difference}")
        for warning in result.warnings:
            app.warn(warning)
        if result.ok:
            app.line(f"[green]lifecycle of s3://{result.bucket}/{result.prefix} matches bdr.yaml[/]")
    if not result.ok:
        raise CheckFailed(detail=f"lifecycle of s3://{result.bucket}/{result.prefix} differs from bdr.yaml in "
                          f"{len(result.differences)} rule(s); run `bdr s3 lifecycle apply`")


@s3_group.command("thaw")
@click.argument("backup", metavar="BACKUP")
@remote_option
@click.option("--days", type=click.IntRange(1, 365), default=7, show_default=True,
              help="How long the restored copies stay readable.")
@click.option("--tier", type=click.Choice(RESTORE_TIERS), default="Standard", show_default=True,
              help="Restore speed (and price): Expedited minutes, Standard hours, Bulk up to 48 h.")
@json_option
@pass_app
def thaw_command(app: App, backup: str, remote: str | None, days: int, tier: str) -> None:
    """Make an archived (GLACIER / DEEP_ARCHIVE) backup set readable again; run again to see progress."""
    storage = _storage(app, remote)
    repo = Repository(storage)
    found = repo.get(backup)
    members = [found] + [repo.get(child) for child in found.manifest.children]
    keys = [key for member in members for key in repo.object_keys(member)]
    results = s3_lifecycle.thaw(storage, keys, days=days, tier=tier)
    ready = all(r.state in (ThawState.READABLE, ThawState.RESTORED) for r in results)
    if app.json_output:
        app.emit_json({"backup": found.id, "ready": ready, "objects": [r.to_dict() for r in results]})
        return
    app.table(f"thaw of {found.id}", ["object", "class", "state", "readable until"],
              [(r.key, r.storage_class, str(r.state), r.expiry or "-") for r in results])
    if ready:
        app.line(f"[green]{found.id} is readable: restore it with --remote {storage.url}[/]")
    else:
        app.line(f"{found.id} is being restored by S3 ({tier}); run `bdr s3 thaw {found.id}` again later")


def register(cli: click.Group) -> None:
    cli.add_command(s3_group)
