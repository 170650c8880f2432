"""``bdr key generate|id``: the encryption key of backup sets and secrets.

A key is 32 random bytes in a file only its owner can read. Manifests record the key's *id*
(16 hex digits of an HMAC of the key), so ``bdr key id`` tells which key a set needs
without showing the key. Keep a copy of the key away from the backups: without it, the
encrypted sets and every configuration set's secrets cannot be restored.
"""

from __future__ import annotations

from pathlib import Path

import click

from bdr.cli.app import App, json_option, pass_app
from bdr.cli.options import key_option


@click.group("key")
def key_group() -> None:
    """Make and identify encryption keys (AES-256, kept in a 0600 file)."""


@key_group.command("generate")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True,
              help="Replace an existing key file; the old key is kept beside it as PATH.<key id>.old.")
@json_option
@pass_app
def generate(app: App, path: str, force: bool) -> None:
    """Write a new random key to PATH (mode 0600) and print its key id.

    \b
      bdr key generate /etc/bdr/backup.key
    then set encryption.key_file: /etc/bdr/backup.key in bdr.yaml and keep a copy off this host.
    """
    from bdr.crypto import generate_key_file

    key_id, kept = generate_key_file(Path(path), force=force)
    if app.json_output:
        app.emit_json({"path": path, "key_id": key_id, "previous_key": str(kept) if kept else None})
        return
    app.line(f"wrote {path} (key id {key_id}, mode 0600)")
    if kept is not None:
        app.line(f"the previous key is kept as {kept}: sets encrypted with it need it to be restored")
    app.line("set encryption.key_file in bdr.yaml and keep a copy of the key off this host")


@key_group.command("id")
@key_option
@json_option
@pass_app
def key_id(app: App, key_file: str | None) -> None:
    """Print the id of the configured key: the one manifests record (bdr list --json shows key_id)."""
    from bdr.crypto import load_cipher
    from bdr.crypto.keys import find_key_source

    cipher = load_cipher(app.config.encryption, key_file=key_file, required=True)
    source = find_key_source(app.config.encryption, key_file)
    assert cipher is not None and source is not None
    if app.json_output:
        app.emit_json({"key_id": None if cipher.is_passphrase else cipher.key_id, "source": source.kind,
                       "where": source.where})
        return
    if cipher.is_passphrase:
        app.line(f"a passphrase from {source.where}: its key id is salted, one per backup run, so no single id "
                 "names it; `bdr verify BACKUP` tells whether it opens a set")
        return
    click.echo(cipher.key_id)


def register(cli: click.Group) -> None:
    cli.add_command(key_group)
