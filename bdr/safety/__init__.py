"""Crash safety: the restore journal, failpoints for crash tests, signals deferred during rollbacks."""
