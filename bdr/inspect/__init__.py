"""Looking inside backup sets: what a set holds (``bdr show``), what changed (``bdr diff``), where a key is
(``bdr find``).

A set is always read from the repository, checked against its manifest as it is fetched
(:mod:`.fetch`), and looked at offline: a Redis set through bdr's RDB parser (every key with
its type and content hash) and, for what the file alone cannot tell (memory size, TTL per
key), a private temporary redis-server loaded from the set, never the production instance;
a Qdrant set through the schema facts and point counts of its manifest; a configuration set
through its manifest's file list (secret files are named, never shown or hashed in the
output). Only ``bdr diff SET live`` reads a live service, and only to list what it holds
(``SCAN``, collection counts, file hashes), never to change it.

:mod:`.content` holds the typed views, :mod:`.redis`, :mod:`.qdrant` and :mod:`.files` read
them, :mod:`.diff` compares two, :mod:`.find` searches sets newest first.
"""

from __future__ import annotations
