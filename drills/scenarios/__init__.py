"""The runbook's disaster-recovery scenarios, one or more modules each.

Which module plays which scenario (the names ``bdr drill --scenario``, ``--list``, the
reports and ``--changed-since`` use) is :mod:`bdr.drill.catalogue`: a new ``test_*.py``
here must be named there, or a unit test fails.
"""
