"""``bdr lint``: the configuration that protects the data, checked against the recovery targets.

The package reads redis.conf (:mod:`bdr.formats.redis_conf`), docker-compose files
(:mod:`~bdr.lint.compose`), bdr.yaml and crontabs (:mod:`~bdr.lint.schedule`), computes
what a crash and a total loss can cost each data type (:mod:`~bdr.lint.persistence`,
:mod:`~bdr.lint.windows`), and reports findings (:mod:`~bdr.lint.findings`) as text, JSON or
SARIF (:mod:`~bdr.lint.sarif`). :mod:`~bdr.lint.changes` maps files changed since a git ref
to the drills they can affect (``bdr drill --changed-since``). :func:`~bdr.lint.runner.run_lint`
runs it all.
"""
