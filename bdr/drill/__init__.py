"""``bdr drill --live``: the monthly restore test of the user's own backups, on the user's own system.

The sandbox drills (``drills/``) prove that bdr works; this proves that *these* backups
restore within *these* targets. For each source (Redis, Qdrant, configuration) the newest
good set of the production instance is taken from the repository (local, or ``--remote``,
which then times the download too), restored into the instance named ``test`` (or into a
temporary one bdr starts and removes; configuration files into a scratch root), never
into production, and measured:

- RTO: every step of the restore, the fetch included, against the target for that source
  (``redis_local_restore``, ``qdrant_restore``, ``config_restore``);
- RPO achieved: the age of the restored set's snapshot at the start of the drill, per data
  type, against the RPO targets;
- content: the restored data against the manifest (Redis content digest and key sample,
  Qdrant content hash, file sha256);
- the application checks of bdr.yaml (``drill.<source>.checks``);
- production untouched: its process and live counts before and after.

A failed check or a missed target is a BREACH (exit 1). The run is written through
:mod:`bdr.report` like the sandbox drills (HTML, JSON, JUnit, history), with its scope
marked live, and stored as evidence in the repository (:mod:`bdr.repository.evidence`).

Modules: :mod:`.settings` (the ``drill:`` section of bdr.yaml), :mod:`.live` (the
orchestration, the same for every source), :mod:`.profiles` (one module per source: how
production is read and compared, the restore target, the content proof, what the report
says of it), :mod:`.targets` (test targets, refused when production), :mod:`.production`
(a read of production), :mod:`.checks` (the application checks), :mod:`.observed`
(monitoring sets in scratch space). Only :mod:`bdr.api` and the runtimes are used to touch
services; this package never imports the test suite.
"""
