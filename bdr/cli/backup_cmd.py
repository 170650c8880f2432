"""``bdr backup SOURCE``: take a backup set of one source (:mod:`bdr.sources`), or of all of them."""

from __future__ import annotations

import click

from bdr import api
from bdr.cli.app import App, json_option, pass_app, size_text, wait_lock_option
from bdr.cli.copy_cmd import describe
from bdr.cli.options import SOURCES, key_option, repository_options, with_redis_url
from bdr.util.durations import format_duration

_size = size_text


@click.command("backup")
@click.argument("source", type=click.Choice(SOURCES))
@click.option("--instance", "-i", metavar="NAME", help="Instance named in bdr.yaml (default: production).")
@repository_options
@click.option("--compress", is_flag=True, help="Store the set as one zstd-compressed tar stream.")
@click.option("--keep", type=click.IntRange(min=1), metavar="N", help="Then delete all but the N newest sets.")
@click.option("--method", metavar="M", help="redis: rdb | replication; qdrant: logical | snapshot | volume.")
@click.option("--encrypt", is_flag=True, help="Encrypt the set (AES-256-GCM).")
@key_option
@click.option("--allow-plaintext", is_flag=True, help="Allow an unencrypted off-site (--remote) copy.")
@click.option("--also-local", is_flag=True, help="With --remote: the same snapshot in the local repository too.")
@click.option("--also-remote", metavar="URL", is_flag=False, flag_value="", default=None,
              help="The same snapshot off-site too, copied there (default URL: remote.url in bdr.yaml).")
@click.option("--redis-url", metavar="URL", help="Redis to back up (no password: use $REDIS_PASSWORD).")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Label the set (repeatable).")
@click.option("--collection", "collections", multiple=True, metavar="NAME",
              help="qdrant: back up only this collection (repeatable; default all).")
@wait_lock_option
@json_option
@pass_app
def backup_command(app: App, source: str, instance: str | None, destination: str | None, remote: str | None,
                   compress: bool, keep: int | None, method: str | None, encrypt: bool, key_file: str | None,
                   allow_plaintext: bool, also_local: bool, also_remote: str | None, redis_url: str | None,
                   tags: tuple[str, ...], collections: tuple[str, ...]) -> None:
    """Back up SOURCE (one of the sources, or all) into the repository.

    \b
    Replaces scripts/backup-redis.sh:  bdr backup redis --compress --keep 30
    Off-site:                          bdr backup redis --remote s3://bucket/redis
    Prometheus (a TSDB snapshot):      bdr backup prometheus --compress
    One snapshot, local and off-site:  bdr backup redis --also-remote s3://bucket/redis
    """
    config = with_redis_url(app.config, redis_url, instance)
    app.note(f"Backing up [bold]{source}[/] ...")
    with app.progress(f"backing up {source}"):
        outcome = api.backup(
            config, source, instance=instance, destination=destination, remote=remote, compress=compress,
            keep=keep, method=method, encrypt=encrypt, key_file=key_file, allow_plaintext=allow_plaintext,
            tags=tags, options={"collections": list(collections)} if collections else None, on_step=app.print_step,
            also_local=also_local, also_remote=also_remote,
        )
    if app.json_output:
        app.emit_json(outcome.to_dict())
        return
    m = outcome.manifest
    app.line(f"[green]backup {m.id}[/] written to {outcome.repository}")
    details = [
        f"{len(m.files)} file(s), {_size(m.data_size)} of data, {_size(m.stored_size)} stored",
        f"{'compressed' if m.compressed else 'uncompressed'}, {'encrypted' if m.encrypted else 'not encrypted'}",
        f"took {format_duration(outcome.seconds)}",
    ]
    keyspace = m.facts.get("keyspace")
    if isinstance(keyspace, dict) and keyspace:
        details.append(f"{sum(int(v['keys']) for v in keyspace.values())} keys")
    if isinstance(m.facts.get("dashboard_count"), int):
        details.append(f"{m.facts['dashboard_count']} dashboards, {m.facts.get('folder_count', 0)} folders, "
                       f"{m.facts.get('datasource_count', 0)} data sources, {m.facts.get('alert_rule_count', 0)} "
                       "alert rules")
    app.line("  " + "; ".join(details))
    for run in outcome.copies:
        for copied in run.outcomes:
            app.line("  " + describe(copied, run.destination))
    if outcome.pruned:
        app.line(f"  pruned {len(outcome.pruned)} older set(s): {', '.join(outcome.pruned)}")


def register(cli: click.Group) -> None:
    cli.add_command(backup_command)
