"""``bdr list``: the backup sets of a repository, newest first, damaged ones marked DAMAGED with the reason."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape

from bdr.api.listing import Listing, list_repository
from bdr.cli.app import App, json_option, pass_app
from bdr.cli.backup_cmd import _size
from bdr.cli.options import SOURCES, repository_options
from bdr.repository import BackupSet, DamagedSet
from bdr.repository.manifest import to_iso


def _keys(facts: dict[str, object]) -> str:
    """What the set holds, in the datastore's unit: Redis keys, Qdrant points, config files, metric series,
    dashboards."""
    keyspace = facts.get("keyspace")
    if isinstance(keyspace, dict) and keyspace:
        shards = f" in {facts['shard_count']} shards" if facts.get("shard_count") else ""
        return f"{sum(int(v['keys']) for v in keyspace.values())} keys{shards}"
    collections = facts.get("collections")
    if isinstance(collections, dict) and collections:
        points = sum(int(c.get("points", 0)) for c in collections.values() if isinstance(c, dict))
        return f"{points} points"
    if isinstance(facts.get("file_count"), int):
        return f"{facts['file_count']} files"
    if isinstance(facts.get("series"), int) and isinstance(facts.get("samples"), int):
        return f"{facts['series']} series, {facts['samples']} samples"
    if isinstance(facts.get("dashboard_count"), int):
        return f"{facts['dashboard_count']} dashboards"
    exports = facts.get("exports")
    if isinstance(exports, list):
        return f"{len(exports)} dashboard export(s)"
    return "-"


def _when(entry: BackupSet | DamagedSet) -> str:
    """Sort key: when a set finished (a damaged one: as far as it is known)."""
    if isinstance(entry, BackupSet):
        return entry.manifest.finished_at
    created = entry.created
    return to_iso(created) if created is not None else ""


def _good_json(s: BackupSet) -> dict[str, Any]:
    return {
        "id": s.id, "source": s.source, "instance": s.manifest.instance, "time": s.manifest.finished_at,
        "data_bytes": s.manifest.data_size, "stored_bytes": s.manifest.stored_size,
        "compressed": s.manifest.compressed, "encrypted": s.manifest.encrypted,
        "verified": s.verified, "verified_at": s.verification.at if s.verification else None,
        "tags": list(s.tags), "location": s.location, "holds": _keys(dict(s.manifest.facts)), "damaged": None,
    }


def _damaged_json(d: DamagedSet) -> dict[str, Any]:
    created = d.created
    return {
        "id": d.id, "source": d.source, "instance": d.instance, "time": to_iso(created) if created else None,
        "data_bytes": None, "stored_bytes": None, "compressed": None, "encrypted": None,
        "verified": False, "verified_at": None, "tags": list(d.manifest.tags) if d.manifest else [],
        "location": d.location, "holds": None, "damaged": d.reason, "path": d.path,
    }


def _good_row(s: BackupSet) -> tuple[str, ...]:
    return (s.id, s.manifest.instance, s.manifest.finished_at[:19].replace("T", " "), _size(s.manifest.stored_size),
            _keys(dict(s.manifest.facts)), "yes" if s.manifest.compressed else "no",
            "yes" if s.manifest.encrypted else "no",
            ("yes" if s.verified else "FAILED") if s.verification else "-", ",".join(s.tags))


def _damaged_row(d: DamagedSet) -> tuple[str, ...]:
    created = d.created
    return (d.id, d.instance or "?", to_iso(created)[:19].replace("T", " ") if created else "?", "-", "-", "-", "-",
            "[red]DAMAGED[/]", f"[red]{escape(d.reason)}[/]")


def render(app: App, listing: Listing) -> None:
    entries: list[BackupSet | DamagedSet] = sorted([*listing.sets, *listing.damaged], key=_when, reverse=True)
    if app.json_output:
        app.emit_json([_good_json(e) if isinstance(e, BackupSet) else _damaged_json(e) for e in entries])
        return
    if not entries:
        app.line("no backup sets yet: run `bdr backup redis`")
        return
    rows = [_good_row(e) if isinstance(e, BackupSet) else _damaged_row(e) for e in entries]
    app.table(f"backup sets in {listing.repository}",
              ["id", "instance", "time (UTC)", "size", "holds", "zstd", "enc", "verified", "tags / damage"], rows)
    for damaged in listing.damaged:
        app.warn(f"{damaged.id} is DAMAGED: {escape(damaged.reason)}; bdr will not restore, sweep or prune it")


@click.command("list")
@click.argument("source", type=click.Choice(SOURCES), required=False)
@repository_options
@click.option("--no-safety", is_flag=True, help="Hide the safety backups taken before restores.")
@json_option
@pass_app
def list_command(app: App, source: str | None, destination: str | None, remote: str | None,
                 no_safety: bool) -> None:
    """List backup sets: complete ones, and damaged ones marked DAMAGED with the reason.

    Sets still being written (or left by a crashed run, swept by the next backup) never show.
    """
    render(app, list_repository(app.config, source, destination, remote, include_safety=not no_safety))


def register(cli: click.Group) -> None:
    cli.add_command(list_command)
