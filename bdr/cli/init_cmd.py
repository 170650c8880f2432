"""``bdr init``: write a commented example bdr.yaml to start from (or one filled in from compose), or its schema.

``bdr init --schema [FILE]`` writes the JSON Schema of bdr.yaml (:func:`bdr.config.shape.json_schema`,
from the same models that check the file), to standard output when no FILE is named, so an
editor checks the file as it is typed (``# yaml-language-server: $schema=bdr.schema.json``).
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import click
import yaml

from bdr.cli.app import App, pass_app
from bdr.errors import UsageError
from bdr.storage.local import translate_os_error


def example_config() -> str:
    return resources.files("bdr").joinpath("data/bdr.example.yaml").read_text()


def from_compose(compose: Path, app: App) -> str:
    """The example with its ``redis:`` and ``qdrant:`` sections replaced by the compose file's services."""
    from bdr.formats.compose import instances_from_compose, read_compose

    for warning in read_compose(compose).warnings:
        app.warn(warning)
    sections = instances_from_compose(compose)
    if not sections:
        raise UsageError(detail=f"{compose} has no Redis or Qdrant service; write the instances by hand")
    lines = example_config().splitlines(keepends=True)
    kept: list[str] = []
    skipping = False
    for line in lines:
        top = line[:1] not in (" ", "#", "\n") and ":" in line
        if top:
            skipping = line.split(":", 1)[0] in sections
        if not skipping:
            kept.append(line)
    generated = yaml.safe_dump(sections, sort_keys=False, default_flow_style=False)
    header = f"# redis/qdrant instances read from {compose} by `bdr init --from-compose`: review them.\n"
    return "".join(kept).rstrip() + "\n\n" + header + generated


def schema_text() -> str:
    from bdr.config.shape import json_schema

    return json.dumps(json_schema(), indent=2) + "\n"


def write_file(target: Path, text: str) -> None:
    """``text`` into ``target`` through a temporary file beside it: a reader sees the old file or the new one."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise translate_os_error(exc, target) from exc


@click.command("init")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--from-compose", "compose", type=click.Path(exists=True, dir_okay=False),
              help="Fill the Redis and Qdrant instances in from a docker compose file.")
@click.option("--schema", is_flag=True,
              help="Write the JSON Schema of bdr.yaml instead (to PATH, or to standard output), for editors.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@pass_app
def init_command(app: App, path: str | None, compose: str | None, schema: bool, force: bool) -> None:
    """Write a commented example policy file (default: ./bdr.yaml), or with --schema its JSON Schema."""
    if schema and compose:
        raise UsageError(detail="--schema and --from-compose do not go together: the schema is the same for every file")
    if schema and path is None:
        click.echo(schema_text(), nl=False)
        return
    target = Path(path or "bdr.yaml")
    if target.exists() and not force:
        raise UsageError(detail=f"{target} exists; use --force to overwrite it")
    if schema:
        write_file(target, schema_text())
        app.line(f"wrote {target}: point your editor at it (# yaml-language-server: $schema={target.name})")
        return
    write_file(target, from_compose(Path(compose), app) if compose else example_config())
    app.line(f"wrote {target}: edit the instances, then run `bdr backup redis`")


def register(cli: click.Group) -> None:
    cli.add_command(init_command)
