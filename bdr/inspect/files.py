"""What a configuration set holds, from its manifest; and what the live configuration root holds now.

The manifest lists every file with its size, mode and sha256; a secret (``.env``) is listed
with its size and a keyed digest (``secret_digests``: HMAC under the backup key), never its
content and never a plain hash that could be guessed back. Shown, a secret is only named.
The live side walks ``files.root`` with the same patterns as a backup
(:func:`bdr.engines.files.selection.collect`) and hashes the plain files; a secret is
compared through the key (its keyed digest) when the key is at hand, else by size only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from bdr.config import Config
from bdr.inspect.content import FileItem, FilesContent
from bdr.repository import ObjectCipher
from bdr.repository.manifest import Manifest

CHUNK = 1 << 20


def from_manifest(manifest: Manifest) -> FilesContent:
    digests: Mapping[str, Any] = manifest.facts.get("secret_digests") or {}
    content = FilesContent(root=manifest.facts.get("root"), how="the set's manifest")
    for entry in manifest.files:
        digest = digests.get(entry.path)
        content.files[entry.path] = FileItem(entry.path, entry.size, entry.secret, entry.mode,
                                             None if entry.secret else entry.sha256,
                                             str(digest) if entry.secret and digest else None)
    return content


def live(config: Config, cipher: ObjectCipher | None) -> FilesContent:
    """The files a backup would take now, hashed (secrets: keyed digest with ``cipher``, else size only)."""
    from bdr.engines.files.engine import root_of
    from bdr.engines.files.selection import collect

    root = root_of(config)
    collected = collect(root, config.files, check_readable=False)
    content = FilesContent(root=str(root), how=f"the live configuration under {root}")
    for relative in collected.files:
        path = root / relative
        try:
            stat = path.stat()
            data = path.read_bytes() if relative in collected.secrets else None
            sha = None if data is not None else _sha256(path)
        except OSError:
            continue
        secret = relative in collected.secrets
        digest = cipher.digest(data) if secret and cipher is not None and data is not None else None
        content.files[relative] = FileItem(relative, stat.st_size, secret, stat.st_mode, sha, digest)
    return content


def _sha256(path: Any) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def secret_changed(before: FileItem, after: FileItem, cipher: ObjectCipher | None) -> bool | None:
    """Whether a secret differs: by its keyed digests (same key), else by size; None: cannot tell."""
    if before.secret_digest and after.secret_digest:
        if before.secret_digest == after.secret_digest:
            return False
        if before.secret_digest.split(":")[:2] == after.secret_digest.split(":")[:2]:
            return True
    if before.size != after.size:
        return True
    return None
