"""``bdr diff SET [SET2 | live]``: what changed between two sets, or between a set and the live service.

Without SET2 the set is compared with the one taken before it (same source and instance).
Redis: keys added, removed and changed per database and prefix (changed: the content hash
of bdr's RDB parser differs; against ``live`` the values are not read, only the key names,
by ``SCAN``). Qdrant: collections added and removed, point counts, content and schema.
Configuration: files added, removed and changed (secrets compared by their keyed digest,
never shown). Exit 0 whatever the difference: it is information, not a check.
"""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape

from bdr.cli.app import App, json_option, pass_app
from bdr.cli.show_cmd import inspect_options, set_summary, warn_latest
from bdr.errors import RepositoryError, UsageError
from bdr.inspect import files as files_view
from bdr.inspect import qdrant as qdrant_view
from bdr.inspect import redis as redis_view
from bdr.inspect.content import DEFAULT_SEPARATOR
from bdr.inspect.diff import Diff, FilesDiff, QdrantDiff, RedisDiff, files_diff, qdrant_diff, redis_diff
from bdr.inspect.fetch import OpenedSet, fetched, open_set

LIVE = "live"


def _previous(opened: OpenedSet) -> OpenedSet:
    """The good set of the same source and instance taken just before ``opened`` (safety backups left out)."""
    backup = opened.backup
    older = [b for b in opened.repository.sets(backup.source, include_safety=False)
             if b.manifest.instance == backup.manifest.instance and b.created < backup.created]
    if not older:
        raise RepositoryError(detail=f"no set of {backup.source} {backup.manifest.instance} older than {backup.id} "
                              f"in {opened.repository.url} to compare it with: give SET2, or live")
    return OpenedSet(opened.repository, older[0], opened.cipher)


def _redis_keys(opened: OpenedSet) -> redis_view.KeyMap:
    names = ("dump.rdb",) if any(o.name == "dump.rdb" for o in opened.backup.manifest.objects) else ()
    with fetched(opened, names=names) as files:
        return redis_view.set_keys(files)


def compute(app: App, before: OpenedSet, after: OpenedSet | None, separator: str) -> tuple[Diff, str]:
    """The diff from ``before`` to ``after`` (None: the live service), and what the after side is."""
    backup = before.backup
    source = backup.source
    if after is not None and after.backup.source != source:
        raise UsageError(detail=f"{backup.id} holds {source} data and {after.backup.id} {after.backup.source}: "
                         "diff compares two sets of the same source")
    label = after.backup.id if after is not None else f"live {source} {backup.manifest.instance}"
    if source == "redis":
        old = _redis_keys(before)
        if after is None:
            instance = app.config.redis_instance(backup.manifest.instance)
            new = redis_view.scan_keys(instance, with_types=False)
            label = f"live Redis {instance.name} ({instance.url})"
        else:
            new = _redis_keys(after)
        return redis_diff(old, new, separator), label
    if source == "qdrant":
        old_q = qdrant_view.from_facts(backup.manifest.facts)
        if after is None:
            new_q = qdrant_view.live(app.config, backup.manifest.instance)
            label = new_q.how.removeprefix("the ")
        else:
            new_q = qdrant_view.from_facts(after.backup.manifest.facts)
        return qdrant_diff(old_q, new_q), label
    if source == "config":
        old_f = files_view.from_manifest(backup.manifest)
        new_f = files_view.live(app.config, before.cipher) if after is None \
            else files_view.from_manifest(after.backup.manifest)
        if after is None:
            label = new_f.how.removeprefix("the ")
        return files_diff(old_f, new_f, before.cipher), label
    if source != "all":
        raise UsageError(detail=f"bdr diff compares redis, qdrant and config sets; {backup.id} is a {source} set "
                         f"(bdr show {backup.id} says what it holds)")
    raise UsageError(detail=f"{backup.id} is a whole-system set: diff its members (bdr show {backup.id} lists them)")


def _render_redis(app: App, diff: RedisDiff) -> None:
    changed = "not compared (live values are not read)" if diff.changed is None else f"{diff.changed} changed"
    app.line(f"  {diff.added} key(s) added, {diff.removed} removed, {changed}")
    rows = []
    for c in diff.changes:
        if not c.any:
            continue
        examples = "; ".join(f"{sign} {', '.join(c.examples[kind])}" for kind, sign in
                             (("added", "+"), ("removed", "-"), ("changed", "~")) if c.examples.get(kind))
        rows.append((c.db, escape(c.prefix), c.added, c.removed, "-" if c.changed is None else c.changed,
                     c.unchanged if diff.values_compared else "-", escape(examples)))
    if rows:
        app.table(None, ["db", "prefix", "added", "removed", "changed", "unchanged", "examples"], rows)


def _render_qdrant(app: App, diff: QdrantDiff) -> None:
    for gained in diff.added:
        app.line(f"  [green]+[/] collection {escape(gained.name)} ({gained.points} points)")
    for lost in diff.removed:
        app.line(f"  [red]-[/] collection {escape(lost.name)} ({lost.points} points)")
    rows = []
    for c in diff.common:
        delta = "" if c.points_before is None or c.points_after is None else f" ({c.points_after - c.points_before:+d})"
        schema = "; ".join(filter(None, ["vectors changed" if c.vectors_changed else "",
                                         f"+index {', '.join(c.indexes_added)}" if c.indexes_added else "",
                                         f"-index {', '.join(c.indexes_removed)}" if c.indexes_removed else ""]))
        rows.append((escape(c.name), f"{c.points_before} -> {c.points_after}{delta}", c.content, schema or "same"))
    if rows:
        app.table(None, ["collection", "points", "content", "schema"], rows)
    if diff.aliases_changed:
        app.line("  aliases changed")


def _render_files(app: App, diff: FilesDiff) -> None:
    app.line(f"  {diff.count('added')} file(s) added, {diff.count('removed')} removed, {diff.count('changed')} changed,"
             f" {diff.unchanged} unchanged" + (f", {diff.count('unknown')} secret(s) not compared (no key)"
                                               if diff.count("unknown") else ""))
    signs = {"added": "[green]+[/]", "removed": "[red]-[/]", "changed": "[yellow]~[/]", "unknown": "[dim]?[/]"}
    for c in diff.changes:
        app.line(f"  {signs[c.change]} {escape(c.path)}" + (" (secret)" if c.secret else ""))


@click.command("diff")
@click.argument("backup", metavar="SET")
@click.argument("other", metavar="[SET2 | live]", required=False)
@inspect_options
@click.option("--separator", default=DEFAULT_SEPARATOR, show_default=True, help="What ends a key's prefix.")
@json_option
@pass_app
def diff_command(app: App, backup: str, other: str | None, source: str | None, instance: str | None,
                 destination: str | None, remote: str | None, key_file: str | None, separator: str) -> None:
    """What changed from SET to SET2 (default: from the set before SET to SET), or from SET to the live service.

    \b
      bdr diff latest -s redis               since the backup before
      bdr diff redis-2025...-aaa redis-2025...-bbb
      bdr diff latest -s redis live          what changed in production since the backup
    """
    if instance and not source:
        raise UsageError(detail="--instance needs --source (an instance of which source?)")
    config = app.config
    opened = open_set(config, backup, source=source, instance=instance, destination=destination, remote=remote,
                      key_file=key_file)
    warn_latest(app, opened)
    if other == LIVE:
        before, after = opened, None
    elif other is None:
        before, after = _previous(opened), opened
    else:
        before, after = opened, open_set(config, other, source=opened.backup.source,
                                         instance=opened.backup.manifest.instance, destination=destination,
                                         remote=remote, key_file=key_file)
    with app.progress(f"comparing {before.backup.id}"):
        result, label = compute(app, before, after, separator)
    data: dict[str, Any] = {"from": set_summary(before.backup), "to": set_summary(after.backup) if after else LIVE,
                            "to_label": label, "source": before.backup.source, "diff": result.to_dict()}
    if app.json_output:
        app.emit_json(data)
        return
    app.line(f"[bold]{before.backup.id}[/] -> [bold]{escape(label)}[/]: "
             + ("no difference" if result.same else "changed"))
    if isinstance(result, RedisDiff):
        _render_redis(app, result)
    elif isinstance(result, QdrantDiff):
        _render_qdrant(app, result)
    else:
        _render_files(app, result)


def register(cli: click.Group) -> None:
    cli.add_command(diff_command)
