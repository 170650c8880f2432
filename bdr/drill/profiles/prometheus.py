"""Prometheus in a live drill: its head series and start time before and after (it must not have restarted).

The set itself is restored into scratch space and opened by a temporary Prometheus
(:mod:`bdr.drill.observed`), never into the production server.
"""

from __future__ import annotations

from bdr.config import Config
from bdr.drill.production import ProductionState, now, observed_state
from bdr.drill.profiles import Findings, Profile


def probe(config: Config, name: str) -> ProductionState:
    from bdr.drill import observed

    at = now()
    return observed_state("prometheus", name, observed.read_prometheus(config, name), at)


def compare(before: ProductionState, after: ProductionState) -> Findings:
    if before.run_id != after.run_id:
        return [f"Prometheus started again meanwhile (start time {before.run_id} → {after.run_id})"], []
    return [], [f"same process (started {after.run_id}), not restarted; head series {before.total} → {after.total} "
                "(scraping goes on)"]


def state_text(state: ProductionState) -> str:
    return f"started {state.run_id}, {state.total} head series ({state.address})"


OBSERVED_IN = ("a temporary prometheus on a free 127.0.0.1 port over the restored blocks, killed and removed "
               "afterwards")

PROFILE = Profile(probe=probe, compare=compare, state_text=state_text, example_check="min_series: 1000",
                  state_fields=frozenset({"run_id"}), observed_in=OBSERVED_IN)
