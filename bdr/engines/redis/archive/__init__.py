"""Continuous archiving of Redis and restores to any second (``bdr archive redis``, ``restore --to-time``).

pgBackRest and Barman archive PostgreSQL's WAL so a database can be brought back to any moment;
this package does the same for Redis with what Redis already has: replication. The archiver is
a replica (:mod:`.protocol`): a full sync gives it a **base** (an RDB, stored as an ordinary
backup set: :mod:`.bases`), then the master streams every write as RESP commands, which the
archiver stores unchanged in **segments** (:mod:`.segment`), sealed every few seconds,
checksummed and indexed by time, through the repository's storage (local and/or S3, encrypted
like sets: :mod:`.layout`). A local spool makes it survive being killed (:mod:`.spool`); it
resumes with ``PSYNC`` where the master's backlog allows and takes a new base otherwise
(:mod:`.archiver`, :mod:`.workers`).

A restore to ``T`` (:mod:`.restore`) takes the newest base whose window holds ``T``
(:mod:`.window`), assembles base + stream up to ``T`` as an AOF directory and lets a temporary
redis-server load it (:mod:`.replay`), then installs the result through the runbook as any
restore. What is recoverable, the lag and the archiver's health feed ``bdr status``, the
metrics and an alert (:mod:`.report`, :mod:`.metrics`); old segments go with their bases
(:mod:`.retention`).

Modules: :mod:`.scanner` (command boundaries), :mod:`.segment`, :mod:`.layout`,
:mod:`.bases`, :mod:`.window`, :mod:`.replay`, :mod:`.restore`, :mod:`.protocol`,
:mod:`.spool`, :mod:`.archiver`, :mod:`.workers`, :mod:`.destinations`, :mod:`.retention`,
:mod:`.report`, :mod:`.metrics`.
"""
