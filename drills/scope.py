"""The scope statement of a sandbox run: what the drills tested, and what stood in for what.

A sandbox run proves bdr itself: the services are ones the drill suite starts (Redis
production and test instances, an embedded Qdrant, a configuration directory) with a
synthetic workload of the chosen scale. It does not prove that the user's own backups
restore: that is ``bdr drill --live``. The statement says so, names the stand-ins (moto's
S3 server when no remote is configured, the embedded Qdrant engine for a Qdrant server,
local processes or containers for the production hosts), and what the RTO leaves out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bdr.report.records import DrillResult, Scope, ScopeKind, StandIn, SystemTested
from drills.stack import Scale

RTO_MEASURES = ("from the fault being injected (or, where nothing is broken, the test start) until the recovered "
                "data was verified; split into detect (a scripted check: the drill knows its fault), restore and "
                "verify")
RTO_EXCLUDES = ("detection and decision time: the time a real incident takes to be noticed, escalated and decided "
                "on is not measured; the drill detects its own fault at once")


def _services(results: Sequence[DrillResult]) -> dict[str, Any]:
    for result in results:
        services = result.evidence.get("services")
        if isinstance(services, dict) and services:
            return services
    return {}


def sandbox_scope(results: Sequence[DrillResult], runtime: str, scale: Scale) -> Scope:
    volume = f"{scale.redis_keys:,} Redis keys, {scale.vectors:,} vectors (+ the memories collection)".replace(",", " ")
    systems: list[SystemTested] = []
    for name, facts in _services(results).items():
        role = "sandbox production" if name.endswith("/production") else "sandbox test target"
        detail = ", ".join(f"{k} {v}" for k, v in facts.items() if k in ("runtime", "version", "engine", "image"))
        systems.append(SystemTested(name, role, detail or str(facts), volume if "redis/production" in name
                                    or "qdrant" in name else ""))
    systems.append(SystemTested("config", "sandbox configuration directory",
                                ".env (0600), redis.conf, docker-compose.yml, nginx.conf, monitoring/", "5 files"))
    stand_ins = [StandIn("a Qdrant server", "the embedded Qdrant engine (qdrant-client local mode)"),
                 StandIn("the production hosts", "redis-server processes on 127.0.0.1" if runtime == "process"
                         else "containers on this host's network (127.0.0.1)")]
    remotes = {str(r.evidence.get("remote")) for r in results if r.evidence.get("remote")}
    for remote in sorted(remotes):
        if "moto" in remote:
            stand_ins.append(StandIn("Amazon S3 (the off-site repository)", remote))
    offsite = [r for r in results if r.scenario == "offsite_restore"]
    if offsite and not remotes:
        stand_ins.append(StandIn("Amazon S3 (the off-site repository)",
                                 "moto's S3 server on 127.0.0.1 when bdr.yaml names no remote "
                                 "(the off-site scenario did not get as far as recording which)"))
    return Scope(
        kind=ScopeKind.SANDBOX,
        summary=(f"Sandbox: {len(results)} scenario case(s) of the runbook on services the drill suite started for "
                 f"this run ({runtime}, scale {scale.name}). This proves that bdr recovers them within the targets; "
                 "it does not prove that this installation's own backups restore (that is bdr drill --live)."),
        systems=tuple(systems),
        stand_ins=tuple(stand_ins),
        rto_measures=RTO_MEASURES,
        rto_excludes=RTO_EXCLUDES,
        notes=("Faults are injected on purpose (kill -9, deleted data, a torn AOF, a lost host); the workload and "
               "the acknowledged writes are synthetic.",),
    )
