"""The drill suite: disasters injected into real services, recovered with bdr, measured.

A *drill* runs one scenario of the runbook end to end against a live stack (Redis, Qdrant
and a configuration directory, as local processes or containers): it injects the fault,
recovers with exactly what an operator would run (:mod:`bdr.api`), and records each step
with UTC timestamps. From those it computes the achieved RTO (fault injected → data
verified) and, from a writer that kept making acknowledged, timestamped writes, the
achieved RPO per data type (fault time - newest acknowledged write that survived). A
target breached is a test failure with the numbers in its message; every run writes a
compliance report (HTML, JSON, JUnit XML) and appends to the history, through the product's
:mod:`bdr.report` (the same report as the live restore test, ``bdr drill --live``, whose
scope is the user's own backups; this suite's scope is a sandbox that proves bdr itself).

It is a pytest plugin (entry point ``bdr_drills`` → :mod:`drills.plugin`); the scenarios
live in :mod:`drills.scenarios`, one module per runbook section. The product never imports
this package (``bdr drill`` launches pytest with it, lazily).
"""
