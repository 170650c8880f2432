"""Fixtures of the fault-injection suite: Redis as operators start it (``tests/operators.py``)."""

from tests.operators import operators

__all__ = ["operators"]
