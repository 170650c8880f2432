"""The configuration engine: the backend's config files, and its secrets, always encrypted.

What it backs up is ``files:`` in bdr.yaml: glob patterns and directories relative to a
root (``docker-compose*.yml``, ``nginx.conf``, ``redis.conf``, ``monitoring/``) and the
secrets (``.env``, and any file ``files.secrets`` names). The plain files go into one
``data.tar.zst``; the secrets into their own ``secrets.tar.zst``, encrypted even when the set
is not (without a key the backup is refused, never written in the clear). The manifest lists
every file with its size and mode; plain files with their sha256, secrets with an HMAC keyed
by the encryption key instead (a plain hash of a guessable secret would let anyone holding
the manifest test guesses).

A restore reads and checks the set before touching anything, then plans per file (``new``,
``changed`` with line counts, ``unchanged``; a secret is only ever ``changed``; files the
backup does not hold are *left alone*, never deleted). ``--dry-run`` stops there. Otherwise it
backs up the files it is about to overwrite (a safety set), writes each file atomically
with its mode (secrets 0600), never outside the root (:mod:`.place`), compares every restored
file with the backup, and on any failure puts the old files back.

Modules: :mod:`.selection` (patterns to files), :mod:`.incoming` (a set's or an old runbook's
files, checked), :mod:`.plan` (the per-file diff), :mod:`.place` (safe writes under the root),
:mod:`.engine` (the ``Engine``).
"""

from __future__ import annotations

from bdr.engines.files.engine import ENGINE, FilesEngine

__all__ = ["ENGINE", "FilesEngine"]
