"""Top-level pytest configuration: the shared fixtures of the test suites.

The drill suite's own plugin (``drills.plugin``) is registered through the ``bdr_drills``
pytest11 entry point of the installed package; its fixtures (``stack``, ``drill``,
``dr_policy``) and options (``--dr-*``) are available everywhere.
"""

pytest_plugins = ["tests.fixtures", "tests.s3_fixtures", "tests.docker_fixtures", "tests.cluster"]
