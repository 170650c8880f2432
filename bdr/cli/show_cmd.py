"""``bdr show SET``: what a backup set holds, its checks, and where its copies are.

Per Redis database the keys by prefix (the top N), their types, the share with a TTL, the
memory they take and the biggest keys; per Qdrant collection the points, vectors and payload
indexes; the files of a configuration set (a secret is named, never shown). The set is read
from the repository (checked against its manifest) through bdr's RDB parser and, for sizes,
a private temporary redis-server: never the production instance.
"""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape

from bdr.api.verification import manifest_checks
from bdr.cli.app import App, json_option, pass_app, size_text
from bdr.cli.options import SOURCES, key_option, repository_options
from bdr.errors import UsageError
from bdr.inspect import files as files_view
from bdr.inspect import qdrant as qdrant_view
from bdr.inspect import redis as redis_view
from bdr.inspect.content import DEFAULT_SEPARATOR, Content, FilesContent, MetricsContent, QdrantContent, RedisContent
from bdr.inspect.fetch import OpenedSet, copies_of, fetched, open_set
from bdr.repository import BackupSet


def set_summary(backup: BackupSet) -> dict[str, Any]:
    m = backup.manifest
    return {"id": m.id, "source": m.source, "instance": m.instance, "method": m.method, "started_at": m.started_at,
            "finished_at": m.finished_at, "data_bytes": m.data_size, "stored_bytes": m.stored_size,
            "compressed": m.compressed, "encrypted": m.encrypted, "tags": list(m.tags), "host": m.host,
            "bdr_version": m.bdr_version, "repository": backup.repository, "location": backup.location,
            "children": list(m.children)}


def checks_of(opened: OpenedSet) -> list[dict[str, Any]]:
    """The manifest's own checks, the last ``bdr verify``, and the content fingerprint the manifest records."""
    backup = opened.backup
    out: list[dict[str, Any]] = [
        {"name": c.name, "ok": None if not c.ok and c.detail.startswith("not checked") else c.ok, "detail": c.detail}
        for c in manifest_checks(backup.manifest, opened.cipher)
    ]
    v = backup.verification
    if v is None:
        out.append({"name": "verify", "ok": None, "detail": f"never verified: run `bdr verify {backup.id}`"})
    else:
        kind = "with a restore test" if v.restore_test else "checksums and checkers"
        out.append({"name": "verify", "ok": v.ok, "detail": f"{'passed' if v.ok else 'FAILED'} at {v.at} ({kind})"
                    + (f": {v.detail}" if v.detail else "")})
    facts = backup.manifest.facts
    content = facts.get("content")
    if isinstance(content, dict) and content.get("value"):
        out.append({"name": "content digest", "ok": True, "detail": f"{content.get('algorithm')} {content['value']}"})
    elif facts.get("content_unavailable"):
        out.append({"name": "content digest", "ok": None, "detail": f"not recorded: {facts['content_unavailable']}"})
    return out


def read_content(opened: OpenedSet, *, separator: str = DEFAULT_SEPARATOR, sizes: bool = True,
                 biggest: int = 10) -> Content | None:
    """What the set holds (None for a whole-system or Redis cluster set: show its members)."""
    backup = opened.backup
    source = backup.source
    if backup.manifest.children:
        return None
    if source == "redis":
        with fetched(opened) as files:
            return redis_view.read_set(files, backup.manifest.facts, separator=separator, sizes=sizes,
                                       biggest=biggest)
    if source == "qdrant":
        return qdrant_view.from_facts(backup.manifest.facts)
    if source == "config":
        return files_view.from_manifest(backup.manifest)
    if source == "prometheus":
        return MetricsContent.from_facts(backup.manifest.facts)
    return None


def _pct(part: int | None, whole: int) -> str:
    return "-" if part is None or not whole else f"{100 * part / whole:.1f}%"


def render_redis(app: App, content: RedisContent, top: int) -> None:
    if not content.dbs:
        app.line("  no keys")
    for number in sorted(content.dbs):
        db = content.dbs[number]
        types = ", ".join(f"{t} {n}" for t, n in sorted(db.types.items(), key=lambda x: -x[1]))
        ttl = f"{db.expires} with a TTL ({_pct(db.expires, db.keys)})" if db.expires is not None else "TTLs not read"
        expired = f"; {db.expired} expired since the backup" if db.expired else ""
        rows = [(escape(p.prefix), p.keys, _pct(p.keys, db.keys), "-" if p.with_ttl is None else p.with_ttl,
                 "-" if p.bytes is None else size_text(p.bytes),
                 ", ".join(f"{t} {n}" for t, n in sorted(p.types.items())))
                for p in db.top_prefixes(top)]
        more = len(db.prefixes) - len(rows)
        app.table(f"db {number}: {db.keys} keys, {ttl}; {types}{expired}",
                  ["prefix", "keys", "share", "with TTL", "memory", "types"], rows)
        if more > 0:
            app.line(f"  ... and {more} more prefix(es) (--top {len(db.prefixes)} shows all)")
        if db.biggest:
            app.line("  biggest keys: " + "; ".join(f"{escape(b.key)} ({b.type}, {size_text(b.bytes)})"
                                                    for b in db.biggest))
    app.line(f"  read from {content.how}", style="dim")


def render_qdrant(app: App, content: QdrantContent) -> None:
    rows = [(escape(c.name), "?" if c.points is None else c.points, "; ".join(v.describe() for v in c.vectors) or "-",
             ", ".join(f"{f} ({t})" for f, t in c.indexes.items()) or "-")
            for c in (content.collections[n] for n in sorted(content.collections))]
    app.table(f"{len(rows)} collection(s), {content.points} points", ["collection", "points", "vectors",
                                                                      "payload indexes"], rows)
    if content.aliases:
        app.line("  aliases: " + ", ".join(f"{a} -> {c}" for a, c in sorted(content.aliases.items())))
    app.line(f"  read from {content.how}", style="dim")


def render_files(app: App, content: FilesContent) -> None:
    rows = [(escape(f.path), size_text(f.size), "-" if f.mode is None else f"{f.mode & 0o7777:04o}",
             "secret (encrypted; never shown)" if f.secret else (f.sha256 or "")[:16])
            for f in (content.files[p] for p in sorted(content.files))]
    app.table(f"{len(rows)} file(s) from {content.root or '?'}", ["path", "size", "mode", "sha256"], rows)


def _ms(value: int | None) -> str:
    from datetime import UTC, datetime

    return "?" if value is None else datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def render_metrics(app: App, content: MetricsContent) -> None:
    rows = [(str(b.get("ulid")), _ms(b.get("min_time")), _ms(b.get("max_time")), b.get("series", "?"),
             b.get("samples", "?"), b.get("chunks", "?")) for b in content.blocks]
    app.table(f"{len(rows)} block(s), {'?' if content.series is None else content.series} series, {content.samples} "
              f"samples from {_ms(content.oldest_ms)} to {_ms(content.newest_ms)} UTC (Prometheus {content.version})",
              ["block", "from (UTC)", "to (UTC)", "series", "samples", "chunks"], rows)


def render_content(app: App, content: Content | None, top: int) -> None:
    if isinstance(content, RedisContent):
        render_redis(app, content, top)
    elif isinstance(content, QdrantContent):
        render_qdrant(app, content)
    elif isinstance(content, FilesContent):
        render_files(app, content)
    elif isinstance(content, MetricsContent):
        render_metrics(app, content)


def content_json(content: Content | None, top: int) -> dict[str, Any] | None:
    if content is None:
        return None
    return content.to_dict(top) if isinstance(content, RedisContent) else content.to_dict()


def warn_latest(app: App, opened: OpenedSet) -> None:
    for skipped in opened.skipped:
        app.warn(f"latest skipped {skipped.describe()}")
    if opened.note:
        app.warn(opened.note)


def inspect_options(func: Any) -> Any:
    """``--source``/``--instance`` (whose ``latest``), the repository and the key."""
    func = key_option(func)
    func = repository_options(func)
    func = click.option("--instance", "-i", metavar="NAME", help="With latest: the newest set of this instance "
                        "(default: the source's default instance).")(func)
    func = click.option("--source", "-s", type=click.Choice(SOURCES), help="With latest: the newest set of this "
                        "source.")(func)
    return func


@click.command("show")
@click.argument("backup", metavar="SET")
@inspect_options
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many prefixes per database, and biggest keys (0: all prefixes).")
@click.option("--separator", default=DEFAULT_SEPARATOR, show_default=True, help="What ends a key's prefix.")
@click.option("--no-sizes", is_flag=True, help="Redis: read the RDB only (no temporary redis-server): no memory "
              "sizes, biggest keys or per-prefix TTLs.")
@json_option
@pass_app
def show_command(app: App, backup: str, source: str | None, instance: str | None, destination: str | None,
                 remote: str | None, key_file: str | None, top: int, separator: str, no_sizes: bool) -> None:
    """What SET holds, its checks, and where its copies are.

    \b
    SET: an id (or unique prefix), a set directory, or latest (of --source/--instance).
      bdr show latest --source redis        keys by prefix, types, TTLs, biggest keys
      bdr show qdrant-20250124T020000Z-1a2b  collections, points, vectors, indexes
      bdr show latest -s config              the files (secrets named, never shown)
    """
    if instance and not source:
        raise UsageError(detail="--instance needs --source (an instance of which source?)")
    opened = open_set(app.config, backup, source=source, instance=instance, destination=destination, remote=remote,
                      key_file=key_file)
    warn_latest(app, opened)
    with app.progress(f"reading {opened.backup.id}"):
        content = read_content(opened, separator=separator, sizes=not no_sizes, biggest=top or 10)
        copies, unreadable = copies_of(app.config, opened.backup, (), remote)
    checks = checks_of(opened)
    if app.json_output:
        app.emit_json({"set": set_summary(opened.backup), "checks": checks, "copies": [c.to_dict() for c in copies],
                       "unreadable_repositories": unreadable, "content": content_json(content, top),
                       "skipped": [s.describe() for s in opened.skipped], "note": opened.note})
        return
    s = set_summary(opened.backup)
    app.line(f"[bold]{s['id']}[/]  {s['source']}/{s['instance']}  finished {s['finished_at'][:19].replace('T', ' ')} "
             f"UTC  method {s['method']}" + (f"  tags {','.join(s['tags'])}" if s["tags"] else ""))
    app.line(f"  {size_text(s['data_bytes'])} of data, {size_text(s['stored_bytes'])} stored; "
             f"{'compressed' if s['compressed'] else 'uncompressed'}, "
             f"{'encrypted' if s['encrypted'] else 'not encrypted'}; in {s['repository']}")
    for check in checks:
        mark = {True: "[green]✔[/]", False: "[red]✘[/]", None: "[dim]-[/]"}[check["ok"]]
        app.line(f"  {mark} {check['name']}: {escape(str(check['detail']))}")
    app.line("  copies: " + "; ".join(f"{c.repository} ({c.location}, {c.same if c.same != 'same data' else c.set_id})"
                                      for c in copies))
    for problem in unreadable:
        app.warn(f"could not look for copies in {problem}")
    if s["children"]:
        app.line(f"  members: {', '.join(s['children'])} (bdr show MEMBER for each)")
    render_content(app, content, top)


def register(cli: click.Group) -> None:
    cli.add_command(show_command)
