"""An RTO split into its phases: detect, restore, verify.

The RTO clock runs from the fault (or, where nothing is broken, the test start) to the
moment the recovered data was verified. Its phases come from the steps on that clock:

- **detect**: until the last step that notices the fault (``detected``, ``Redis refuses to
  start``). A drill knows its own fault, so this is the scripted check, not the time a
  real monitoring system takes: the report's scope says that detection and decision time
  are excluded;
- **restore**: from there to the first verification step (fetch, restore, restart, the
  service answering);
- **verify**: the verification steps (``verify ...``, application checks, production
  untouched) until the data is verified.

The three add up to the RTO.
"""

from __future__ import annotations

from collections.abc import Sequence

from bdr.report.records import DrillStep

CLOCK_STARTS = ("fault injected", "test start")
VERIFIED = "data verified"
DETECT_STEPS = ("detected", "Redis refuses to start")
VERIFY_STEPS = ("production untouched", "application checks", "content verified")


def is_verify_step(name: str) -> bool:
    return name.startswith("verify") or name in VERIFY_STEPS


def rto_phases(steps: Sequence[DrillStep]) -> tuple[tuple[str, float], ...]:
    """``(("detect", s), ("restore", s), ("verify", s))``; empty without a clock start and a verified mark."""
    start = next((s for s in steps if s.name in CLOCK_STARTS), None)
    end = next((s for s in reversed(steps) if s.name == VERIFIED), None)
    if start is None or end is None or end.offset < start.offset:
        return ()
    inside = [s for s in steps if start.offset <= s.offset <= end.offset and s not in (start, end)]
    detect_end = max((s.offset + s.seconds for s in inside if s.name in DETECT_STEPS), default=start.offset)
    verify_start = min((s.offset for s in inside if is_verify_step(s.name) and s.offset >= detect_end),
                       default=end.offset)
    return (("detect", max(0.0, detect_end - start.offset)), ("restore", max(0.0, verify_start - detect_end)),
            ("verify", max(0.0, end.offset - verify_start)))
