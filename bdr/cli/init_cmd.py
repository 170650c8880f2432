"""``bdr init``: write a commented example bdr.yaml to start from."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import click

from bdr.cli.app import App, pass_app
from bdr.errors import UsageError
from bdr.storage.local import translate_os_error


def example_config() -> str:
    return resources.files("bdr").joinpath("data/bdr.example.yaml").read_text()


@click.command("init")
@click.argument("path", default="bdr.yaml", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@pass_app
def init_command(app: App, path: str, force: bool) -> None:
    """Write a commented example policy file (default: ./bdr.yaml)."""
    target = Path(path)
    if target.exists() and not force:
        raise UsageError(detail=f"{target} exists; use --force to overwrite it")
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(example_config())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise translate_os_error(exc, target) from exc
    app.line(f"wrote {target}: edit the instances, then run `bdr backup redis`")


def register(cli: click.Group) -> None:
    cli.add_command(init_command)
