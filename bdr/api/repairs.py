"""``bdr repair``: check a service's data files on a copy, and repair them when that is possible.

A registry maps a source to its repairer; only Redis has one (Qdrant and configuration files
are restored, never patched). See :mod:`bdr.engines.redis.repair` for what is checked and
what a repair may lose.
"""

from __future__ import annotations

from collections.abc import Callable

from bdr.config import Config
from bdr.engines.redis.repair import RepairReport, Verdict, apply_repair, inspect_damage
from bdr.errors import UsageError


def _repair_redis(config: Config, target: str | None, apply: bool) -> RepairReport:
    instance = config.redis_instance(target)
    report = inspect_damage(instance)
    if apply and report.verdict is Verdict.FIXABLE:
        report = apply_repair(instance, report)
    return report


REPAIRERS: dict[str, Callable[[Config, str | None, bool], RepairReport]] = {"redis": _repair_redis}


def repair(config: Config, source: str, target: str | None = None, apply: bool = False) -> RepairReport:
    """Check ``target``'s data files (on a copy); with ``apply``, repair what can be repaired."""
    try:
        repairer = REPAIRERS[source]
    except KeyError:
        raise UsageError(detail=f"bdr can repair only {', '.join(REPAIRERS)} data files, not {source!r}; "
                         "restore it from a backup instead") from None
    return repairer(config, target, apply)
