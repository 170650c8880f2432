"""A realistic drill run for the report tests: eight scenarios (ten cases), one breached, one error, one skipped.

The numbers are those of a small-scale run on a laptop; :func:`sample_history` adds the
past runs the trend is drawn from (in one of them an *earlier* case of
``accidental_deletion`` breached: the trend must show it under its own key).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bdr.engines.base import StepStatus
from bdr.report.history import HistoryEntry, entry_of
from bdr.report.records import (
    DrillResult,
    DrillStep,
    Outcome,
    RunReport,
    Scope,
    ScopeKind,
    StandIn,
    SystemTested,
    TargetCheck,
    Verification,
)
from bdr.repository.manifest import to_iso

RUN_START = datetime(2026, 11, 25, 6, 0, 0, tzinfo=UTC)
RUN_ID = "drill-20261125T060000Z"
RTO = {"redis_restart": 60.0, "redis_corruption": 300.0, "redis_local_restore": 300.0, "qdrant_restore": 900.0,
       "complete_data_loss": 900.0, "accidental_deletion": 300.0, "offsite_restore": 1800.0}
RPO = {"sessions": 3600.0, "rbac": 86400.0, "embeddings": 86400.0, "config": 86400.0, "metrics": 7 * 86400.0}
SHA = "9f2c4e71d0b8a36f5e1c2d9a8b7f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5"


def _steps(start: datetime, spec: list[tuple[str, float, float, str, bool]]) -> list[DrillStep]:
    steps = []
    for name, offset, seconds, detail, ok in spec:
        began = start + timedelta(seconds=offset)
        steps.append(DrillStep(name=name, started_at=to_iso(began),
                               finished_at=to_iso(began + timedelta(seconds=seconds)), seconds=seconds,
                               status=StepStatus.OK if ok else StepStatus.FAILED, detail=detail, offset=offset))
    return steps


def _result(scenario: str, title: str, start_offset: float, length: float, **fields: Any) -> DrillResult:
    start = RUN_START + timedelta(seconds=start_offset)
    steps = _steps(start, fields.pop("steps", []))
    fault = next((s for s in steps if s.name == "fault injected"), None)
    verified = next((s for s in steps if s.name == "data verified"), None)
    case = fields.pop("case", "")
    fields.setdefault("sources", ["redis"])
    fields.setdefault("planned", [f"{c.kind} {c.name}" for c in fields.get("checks", []) if c.kind in ("rto", "rpo")])
    return DrillResult(
        scenario=scenario, title=title, case=case,
        nodeid=f"drills/scenarios/test_{scenario}.py::test_{case or scenario}",
        runtime="process", started_at=to_iso(start), finished_at=to_iso(start + timedelta(seconds=length)),
        steps=steps, fault_at=fault.started_at if fault else None,
        verified_at=verified.started_at if verified else None, **fields)


def sample_results() -> list[DrillResult]:
    return [
        _result("redis_restart", "Redis restart after kill -9", 0, 6.2, steps=[
            ("fault injected", 1.10, 0.0, "kill -9 redis-server while the application writes", True),
            ("detected", 1.11, 0.004, "PING fails", True),
            ("restart", 1.12, 0.61, "redis-server started with its own configuration", True),
            ("service answering", 1.73, 0.35, "PING answered, loading finished", True),
            ("verify", 2.08, 0.02, "1 530 keys after, 1 512 before the writer's last writes", True),
            ("data verified", 2.10, 0.0, "data verified", True),
        ], checks=[
            TargetCheck("rto", "redis_restart", RTO["redis_restart"], 1.0, ""),
            TargetCheck("rpo", "sessions", RPO["sessions"], 0.412, "AOF everysec"),
            TargetCheck("rpo", "rbac", RPO["rbac"], 0.398, "AOF everysec"),
            TargetCheck("loss window", "sessions (appendfsync everysec)", 2.0, 0.412, "no acknowledged write lost"),
        ], evidence={"keys_before": 1512, "keys_after": 1530, "acknowledged_writes": {"sessions": 38, "rbac": 38},
                     "redis": {"version": "7.2.4", "port": 41873, "appendonly": True, "appendfsync": "everysec"}}),
        _result("redis_corruption", "Redis AOF corruption repaired with redis-check-aof", 6.5, 9.8, steps=[
            ("scheduled backup", 0.3, 0.84, "redis-20261125T060007Z-3fa1c2", True),
            ("fault injected", 1.4, 0.0, "last 4 KiB of the AOF overwritten with garbage", True),
            ("detected", 1.41, 0.8, "redis-server refuses to start: Bad file format reading the append only file",
             True),
            ("repair", 2.21, 1.9, "redis-check-aof --fix truncated 4096 bytes", True),
            ("service answering", 4.11, 0.4, "PING answered", True),
            ("verify", 4.51, 0.3, "digest matches the backup for 1 498 of 1 498 keys", True),
            ("data verified", 4.81, 0.0, "data verified", True),
        ], checks=[
            TargetCheck("rto", "redis_corruption", RTO["redis_corruption"], 3.41, ""),
            TargetCheck("rpo", "sessions", RPO["sessions"], 1.2, "writes after the torn record"),
        ], evidence={"backup_id": "redis-20261125T060007Z-3fa1c2", "manifest_sha256": SHA,
                     "truncated_bytes": 4096, "repair_tool": "redis-check-aof 7.2.4"}),
        _result("redis_local_restore", "Redis restore from the latest local backup", 16.5, 12.4, steps=[
            ("scheduled backup", 0.2, 1.35, "redis-20261125T060017Z-8c0d55", True),
            ("fault injected", 2.0, 0.0, "redis-server killed and its data directory deleted", True),
            ("detected", 2.01, 0.01, "PING fails; data directory empty", True),
            ("restore", 2.02, 4.6, "safety backup 1.20s, stop 0.10s, replace 0.80s, start 2.10s, verify 0.40s",
             True),
            ("service answering", 6.62, 0.05, "", True),
            ("verify", 6.67, 0.33, "keys: 1 530 restored; digest: matches the manifest", True),
            ("data verified", 7.0, 0.0, "data verified", True),
        ], checks=[
            TargetCheck("rto", "redis_local_restore", RTO["redis_local_restore"], 5.0, ""),
            TargetCheck("rpo", "sessions", RPO["sessions"], 2.31, "newest backup"),
            TargetCheck("rpo", "rbac", RPO["rbac"], 2.31, "newest backup"),
        ], evidence={
            "backup_id": "redis-20261125T060017Z-8c0d55", "manifest_sha256": SHA,
            "digest": "5b1e0c9d7a3f2e8b",
            "restore_steps": [
                {"name": "safety backup", "seconds": 1.2, "status": "ok", "detail": "redis-20261125T060019Z-safety"},
                {"name": "stop", "seconds": 0.1, "status": "ok", "detail": ""},
                {"name": "replace", "seconds": 0.8, "status": "ok", "detail": "dump.rdb 2.1 MB"},
                {"name": "start", "seconds": 2.1, "status": "ok", "detail": ""},
                {"name": "verify", "seconds": 0.4, "status": "ok", "detail": "1530 keys"},
            ]}),
        _result("complete_data_loss", "Complete data loss: rebuild everything from offsite backups", 29.2, 1105.0,
                outcome=Outcome.FAILED,
                failure="RTO complete_data_loss: achieved 17m32s, target 15m00s (BREACHED)",
                steps=[
                    ("scheduled backups", 0.5, 14.0, "redis, qdrant, config, secrets", True),
                    ("fault injected", 15.0, 0.0, "every data directory and volume deleted", True),
                    ("detected", 15.02, 0.5, "Redis down, Qdrant collection missing", True),
                    ("restore secrets", 15.6, 42.0, "age key from the vault", True),
                    ("restore config", 57.6, 12.0, "12 files", True),
                    ("restore redis", 69.6, 388.0, "from s3://bdr-offsite (throttled to 10 MB/s)", True),
                    ("restore qdrant", 457.6, 580.0, "collection agent_memory, 100 000 points", True),
                    ("service answering", 1037.6, 3.0, "", True),
                    ("verify", 1040.6, 26.8, "all digests match the manifests", True),
                    ("data verified", 1067.4, 0.0, "data verified", True),
                ], checks=[
                    TargetCheck("rto", "complete_data_loss", RTO["complete_data_loss"], 1052.4,
                                "offsite download throttled"),
                    TargetCheck("rpo", "sessions", RPO["sessions"], 1810.0, "last offsite copy"),
                    TargetCheck("rpo", "embeddings", RPO["embeddings"], 1810.0, "last offsite copy"),
                ], evidence={"backup_ids": ["redis-20261125T055000Z-aa01", "qdrant-20261125T055000Z-aa02",
                                            "config-20261125T055000Z-aa03"],
                             "offsite": {"bucket": "bdr-offsite", "endpoint": "http://127.0.0.1:39201",
                                         "bytes_downloaded": 5_221_337_088, "secret_access_key": "hunter2"},
                             "versions": {"redis_server": "7.2.4", "qdrant_edge": "0.9.0"}}),
        _result("accidental_deletion", "Accidental deletion: user:* keys in Redis", 1135.0, 8.1,
                case="deleted_redis_keys", steps=[
            ("scheduled backup", 0.2, 0.9, "redis-20261125T061855Z-77aa10", True),
            ("fault injected", 1.3, 0.0, "DEL of 300 user:* keys by mistake", True),
            ("detected", 1.31, 0.2, "300 user:* keys missing", True),
            ("selective restore", 1.51, 2.4, "bdr restore redis latest --keys 'user:*'", True),
            ("verify", 3.91, 0.2, "300 keys back, the others untouched", True),
            ("data verified", 4.11, 0.0, "data verified", True),
        ], checks=[
            TargetCheck("rto", "redis_local_restore", RTO["redis_local_restore"], 2.81, "selective restore",
                        (("detect", 0.21), ("restore", 2.4), ("verify", 0.2))),
        ], evidence={"backup_id": "redis-20261125T061855Z-77aa10", "restored_keys": 300, "pattern": "user:*",
                     "untouched_digest": "0d9e8f7a6b5c4d3e"}),
        _result("accidental_deletion", "Accidental deletion: a Qdrant collection dropped", 1143.2, 3.1,
                case="dropped_qdrant_collection", sources=["qdrant"], steps=[
            ("scheduled backup", 0.1, 0.4, "qdrant-20261125T061903Z-aa5512", True),
            ("fault injected", 0.6, 0.0, "collection 'memories' deleted by mistake", True),
            ("detected", 0.61, 0.01, "collection missing", True),
            ("restore", 0.62, 1.9, "bdr restore qdrant latest --collection memories", True),
            ("verify", 2.52, 0.3, "300 points back; 'documents' unchanged", True),
            ("data verified", 2.82, 0.0, "data verified", True),
        ], checks=[TargetCheck("rto", "qdrant_restore", RTO["qdrant_restore"], 2.22, "selective restore")],
            evidence={"backup_id": "qdrant-20261125T061903Z-aa5512"}),
        _result("accidental_deletion", "Accidental deletion: one tenant's points", 1146.4, 3.4,
                case="deleted_points_matching_a_filter", sources=["qdrant"], steps=[
            ("scheduled backup", 0.1, 0.4, "qdrant-20261125T061906Z-aa5513", True),
            ("fault injected", 0.6, 0.0, "100 points of tenant 'acme' deleted by mistake", True),
            ("detected", 0.61, 0.01, "100 points gone", True),
            ("restore", 0.62, 2.1, "bdr restore qdrant latest --collection documents --filter ...", True),
            ("verify", 2.72, 0.3, "100 points back; the other 200 unchanged", True),
            ("data verified", 3.02, 0.0, "data verified", True),
        ], checks=[TargetCheck("rto", "qdrant_restore", RTO["qdrant_restore"], 2.42, "selective restore")],
            evidence={"backup_id": "qdrant-20261125T061906Z-aa5513"}),
        _result("monthly_restore_test", "Monthly restore test into the test environment", 1150.0, 7.6, steps=[
            ("latest backup", 0.2, 1.1, "redis-20261125T061904Z-c0ffee", True),
            ("test start", 1.4, 0.0, "monthly test begins: nothing is broken; restore the latest backup into the "
             "test target", True),
            ("backup check", 1.41, 1.2, "manifest: ok; checksums: 3 files ok; restore-test: loads", True),
            ("restore into test", 2.61, 2.5, "safety backup 0.4s, replace 0.9s, start 1.0s", True),
            ("verify test target", 5.11, 0.3, "digest 5b1e0c9d7a3f2e8b equals the manifest", True),
            ("production untouched", 5.41, 0.2, "production digest unchanged (77f0a1b2c3d4e5f6)", True),
            ("data verified", 5.61, 0.0, "data verified", True),
        ], checks=[TargetCheck("rto", "redis_local_restore", RTO["redis_local_restore"], 4.21,
                               "restore into the test target")],
            verifications=[
                Verification("content", "redis/production fingerprint", True,
                             "redis/production 1530 keys, DEBUG DIGEST 77f0a1b2c3d4e5f6: equal before and after"),
                Verification("restore", "digest", False, "DEBUG DIGEST refused by the server", skipped=True),
            ],
            evidence={"backup_id": "redis-20261125T061904Z-c0ffee", "backup_digest": "5b1e0c9d7a3f2e8b",
                      "verify": [{"check": "manifest", "ok": True, "detail": "signature and schema"},
                                 {"check": "checksums", "ok": True, "detail": "3 files"},
                                 {"check": "restore-test", "ok": True, "detail": "loads in a scratch redis"}],
                      "production_digest": "77f0a1b2c3d4e5f6", "test_digest": "5b1e0c9d7a3f2e8b"}),
        _result("backup_freshness", "Backup freshness: every schedule inside its window", 1158.0, 0.4,
                outcome=Outcome.ERROR, planned=["rpo sessions", "rpo rbac"],
                failure="bdr.errors.ConfigError: configuration error in bdr.yaml: schedules.redis: <script>x</script> "
                        "is not a cron expression",
                steps=[], checks=[], evidence={}),
        _result("offsite_restore", "Offsite restore from S3", 1158.5, 0.0, outcome=Outcome.SKIPPED,
                planned=["rto offsite_restore", "rpo sessions"],
                failure="Skipped: moto server not available (pip install 'moto[server]')", steps=[], checks=[],
                evidence={}),
    ]


def sample_report(results: list[DrillResult] | None = None) -> RunReport:
    return RunReport(
        run_id=RUN_ID,
        started_at=to_iso(RUN_START),
        finished_at=to_iso(RUN_START + timedelta(seconds=1153.2)),
        results=sample_results() if results is None else results,
        environment={
            "bdr_version": "0.1.0", "python": "3.11.2", "platform": "Linux-6.1.0-amd64-x86_64-with-glibc2.36",
            "host": "dr-runner-01", "user": "ci", "runtime": "process", "scale": "small",
            "policy_file": "/srv/agent/bdr.yaml", "policy_sha256": SHA, "ci": True,
            "redis_server": "Redis server v=7.2.4 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1",
            "qdrant_client": "1.12.1", "qdrant_edge": "0.9.0", "redis_py": "5.2.1",
        },
        policy={"rto": dict(RTO), "rpo": dict(RPO)},
        scope=Scope(ScopeKind.SANDBOX,
                    "Sandbox: 10 scenario case(s) of the runbook on services the drill suite started",
                    systems=(SystemTested("redis/production", "sandbox production", "runtime process, version 7.2.4",
                                          "1 530 Redis keys"),),
                    stand_ins=(StandIn("a Qdrant server", "the embedded Qdrant engine (qdrant-client local mode)"),),
                    rto_measures="fault injected → data verified"),
        operator="ci",
    )


def sample_history(runs: int = 9) -> list[HistoryEntry]:
    """Past runs, a day apart, before the sample run; the RTOs drift up (complete_data_loss breaches twice)."""
    entries = []
    for day in range(runs, 0, -1):
        report = sample_report()
        report.run_id = f"drill-{(RUN_START - timedelta(days=day)):%Y%m%dT%H%M%SZ}"
        report.started_at = to_iso(RUN_START - timedelta(days=day))
        factor = 0.6 + 0.05 * (runs - day) + (0.25 if day in (3, 6) else 0.0)
        for result in report.results:
            result.checks = [TargetCheck(c.kind, c.name, c.target_seconds,
                                         None if c.achieved_seconds is None else c.achieved_seconds * factor, c.note)
                             for c in result.checks]
            if day == 6 and result.case == "dropped_qdrant_collection":  # an earlier case breached that run
                result.checks = [TargetCheck("rto", "qdrant_restore", RTO["qdrant_restore"], 1234.5, "")]
            met = result.targets_met
            result.outcome = Outcome.PASSED if met and result.outcome == Outcome.FAILED else result.outcome
        entries.append(entry_of(report))
    return entries
