"""Grafana in a live drill: the dashboards of the live grafana.db (opened read-only) before and after.

The set itself is restored into a scratch directory and checked there (:mod:`bdr.drill.observed`).
"""

from __future__ import annotations

from bdr.config import Config
from bdr.drill.production import ProductionState, now, observed_state
from bdr.drill.profiles import Findings, Profile


def probe(config: Config, name: str) -> ProductionState:
    from bdr.drill import observed

    at = now()
    return observed_state("grafana", name, observed.read_grafana(config, name), at)


def compare(before: ProductionState, after: ProductionState) -> Findings:
    gone = sorted(set(before.counts) - set(after.counts))
    if gone:
        return [f"dashboard(s) gone: {', '.join(gone[:5])}"], []
    return [], [f"dashboards {len(before.counts)} → {len(after.counts)}, none gone (read-only)"]


def state_text(state: ProductionState) -> str:
    return f"{len(state.counts)} dashboard(s) in {state.address} (opened read-only)"


OBSERVED_IN = "a scratch directory (grafana.db and its files), removed afterwards"

PROFILE = Profile(probe=probe, compare=compare, state_text=state_text, example_check="dashboard_exists: UID",
                  observed_in=OBSERVED_IN)
