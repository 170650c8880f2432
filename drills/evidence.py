"""The drill records, for the suite and what imported them from here: they live in :mod:`bdr.report.records`.

The product owns the report (sandbox and live drills write the same records); the suite
imports them from there. This module only re-exports them.
"""

from __future__ import annotations

from bdr.report.records import (
    JSON_SCHEMA_VERSION,
    DrillResult,
    DrillStep,
    Outcome,
    RunReport,
    TargetCheck,
    Verification,
)

__all__ = ["JSON_SCHEMA_VERSION", "DrillResult", "DrillStep", "Outcome", "RunReport", "TargetCheck", "Verification"]
