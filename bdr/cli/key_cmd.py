"""``bdr key generate|id``: the encryption key of backup sets."""

from __future__ import annotations

from pathlib import Path

import click

from bdr.cli.app import App, json_option, pass_app


@click.group("key")
def key_group() -> None:
    """Make and identify encryption keys (AES-256, kept in a 0600 file)."""


@key_group.command("generate")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace an existing key file (sets made with it become unreadable).")
@json_option
@pass_app
def generate(app: App, path: str, force: bool) -> None:
    """Write a new random key to PATH with mode 0600 and print its key id."""
    from bdr.crypto import generate_key_file

    key_id = generate_key_file(Path(path), force=force)
    if app.json_output:
        app.emit_json({"path": path, "key_id": key_id})
        return
    app.line(f"wrote {path} (key id {key_id}); set encryption.key_file in bdr.yaml and keep a copy off this host")


@key_group.command("id")
@click.option("--key-file", metavar="FILE", help="Key file (default: the configured key).")
@pass_app
def key_id(app: App, key_file: str | None) -> None:
    """Print the id of the configured key (the id manifests record)."""
    from bdr.crypto import load_cipher

    cipher = load_cipher(app.config.encryption, key_file=key_file, required=True)
    assert cipher is not None
    click.echo(cipher.key_id)


def register(cli: click.Group) -> None:
    cli.add_command(key_group)
