"""Top-level pytest configuration: shared fixtures for the unit and integration suites."""

pytest_plugins = ["tests.fixtures"]
