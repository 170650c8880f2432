"""``bdr find PATTERN``: which backup sets hold a key (or a collection, or a file), newest first."""

from __future__ import annotations

import click
from rich.markup import escape

from bdr.api.inputs import open_repository
from bdr.api.keys import cipher_for_reading
from bdr.cli.app import App, json_option, pass_app
from bdr.cli.options import key_option, repository_options
from bdr.inspect.find import candidates, search


@click.command("find")
@click.argument("pattern")
@click.option("--source", "-s", type=click.Choice(("redis", "qdrant", "config")),
              help="Only sets of this source (default: every source).")
@click.option("--instance", "-i", metavar="NAME", help="Only sets of this instance.")
@click.option("--db", type=click.IntRange(min=0), metavar="N", help="redis: only database N.")
@click.option("--last", type=click.IntRange(min=1), metavar="N", help="Look at the newest N sets only.")
@repository_options
@key_option
@json_option
@pass_app
def find_command(app: App, pattern: str, source: str | None, instance: str | None, db: int | None,
                 last: int | None, destination: str | None, remote: str | None, key_file: str | None) -> None:
    """The sets holding a Redis key, a Qdrant collection or a file matching PATTERN (a glob), newest first.

    \b
      bdr find 'user:42'                    which backups still have that key
      bdr find 'session:*' --last 5         in the five newest sets
      bdr find 'memories*' -s qdrant        a collection (or alias)
      bdr find '*.env' -s config            a file

    Redis sets are fetched (checked) and their RDB parsed, one at a time; nothing live is read.
    """
    repo = open_repository(app.config, destination, remote)
    catalog = repo.catalog(source)
    sets = candidates(catalog.sets, instance, last)
    cipher = cipher_for_reading(app.config, key_file)
    with app.progress(f"searching {len(sets)} set(s) for {pattern}"):
        hits = list(search(repo, sets, pattern, cipher=cipher, db=db))
    for damaged in catalog.damaged:
        app.warn(f"not searched: {damaged.id} is damaged ({escape(damaged.reason)})")
    if app.json_output:
        app.emit_json({"pattern": pattern, "searched": len(sets), "sets": [h.to_dict() for h in hits],
                       "not_searched": [d.to_dict() for d in catalog.damaged]})
        return
    if not hits:
        app.line(f"no set of the {len(sets)} searched in {repo.url} holds {escape(pattern)}")
        return
    app.table(f"{len(hits)} of {len(sets)} set(s) hold {escape(pattern)}, newest first",
              ["set", "instance", "time (UTC)", "matches", "examples"],
              [(h.backup.id + (" (safety)" if "safety" in h.backup.tags else ""), h.backup.manifest.instance,
                h.backup.manifest.finished_at[:19].replace("T", " "),
                f"{h.matches}" + (f" ({h.detail})" if h.detail else ""), escape(", ".join(h.examples)))
               for h in hits])


def register(cli: click.Group) -> None:
    cli.add_command(find_command)
