"""The ``bdr`` command line: one module per command group (``*_cmd.py``), joined in :mod:`bdr.cli.main`."""
