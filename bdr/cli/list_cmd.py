"""``bdr list``: the backup sets of a repository, newest first."""

from __future__ import annotations

import click

from bdr import api
from bdr.cli.app import App, json_option, pass_app
from bdr.cli.backup_cmd import _size
from bdr.cli.options import SOURCES, repository_options


def _keys(facts: dict[str, object]) -> str:
    """What the set holds, in the datastore's unit: Redis keys, Qdrant points, config files."""
    keyspace = facts.get("keyspace")
    if isinstance(keyspace, dict) and keyspace:
        return f"{sum(int(v['keys']) for v in keyspace.values())} keys"
    collections = facts.get("collections")
    if isinstance(collections, dict) and collections:
        points = sum(int(c.get("points", 0)) for c in collections.values() if isinstance(c, dict))
        return f"{points} points"
    if isinstance(facts.get("file_count"), int):
        return f"{facts['file_count']} files"
    return "-"


@click.command("list")
@click.argument("source", type=click.Choice(SOURCES), required=False)
@repository_options
@click.option("--no-safety", is_flag=True, help="Hide the safety backups taken before restores.")
@json_option
@pass_app
def list_command(app: App, source: str | None, destination: str | None, remote: str | None,
                 no_safety: bool) -> None:
    """List complete backup sets (incomplete ones never show)."""
    sets = api.list_sets(app.config, source, destination, remote, include_safety=not no_safety)
    if app.json_output:
        app.emit_json([
            {
                "id": s.id, "source": s.source, "instance": s.manifest.instance, "time": s.manifest.finished_at,
                "data_bytes": s.manifest.data_size, "stored_bytes": s.manifest.stored_size,
                "compressed": s.manifest.compressed, "encrypted": s.manifest.encrypted,
                "verified": s.verified, "verified_at": s.verification.at if s.verification else None,
                "tags": list(s.tags), "location": s.location, "holds": _keys(dict(s.manifest.facts)),
            }
            for s in sets
        ])
        return
    if not sets:
        app.line("no backup sets yet: run `bdr backup redis`")
        return
    rows = [
        (s.id, s.manifest.instance, s.manifest.finished_at[:19].replace("T", " "), _size(s.manifest.stored_size),
         _keys(dict(s.manifest.facts)), "yes" if s.manifest.compressed else "no",
         "yes" if s.manifest.encrypted else "no",
         ("yes" if s.verified else "FAILED") if s.verification else "-", ",".join(s.tags))
        for s in sets
    ]
    app.table(f"backup sets in {sets[0].repository}",
              ["id", "instance", "time (UTC)", "size", "holds", "zstd", "enc", "verified", "tags"], rows)


def register(cli: click.Group) -> None:
    cli.add_command(list_command)
