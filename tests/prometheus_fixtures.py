"""A real Prometheus for the tests (:mod:`drills.prometheus`), and the mark that skips without one."""

from __future__ import annotations

import pytest

from drills.prometheus import MISSING, PROMETHEUS, PrometheusServer, running_prometheus

needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason=MISSING)

__all__ = ["PrometheusServer", "needs_prometheus", "running_prometheus"]
