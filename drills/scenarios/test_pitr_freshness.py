"""Runbook: the RPO table, for a continuously archived Redis: its RPO is the archive lag, not the backup schedule.

The freshness drill (:mod:`drills.scenarios.test_backup_freshness`) holds each data type's worst
case, the longest gap between scheduled backups plus one backup, against its RPO. A Redis archived
by ``bdr archive redis`` loses in a total loss only what the archive has not delivered yet: this
case measures that lag on a running archiver while the application writes (``bdr status`` and
the metric ``backup_archive_covered_timestamp`` report the same number), holds the worst sample
against the RPO of sessions and RBAC, and checks that ``bdr lint`` counts the archive the same way.
"""

from __future__ import annotations

import time

import pytest

from bdr import api
from bdr.lint.windows import ArchiveWindow
from bdr.util.durations import format_duration
from drills.archiver import ArchiverProcess
from drills.recorder import Drill
from drills.stack import Stack

SAMPLES = 30


@pytest.mark.drill("backup_freshness", title="Backup freshness: an archived Redis's RPO is its archive lag",
                   case="archive_lag", sources=("redis",), objectives=("rpo sessions", "rpo rbac"))
def test_an_archived_redis_is_held_to_its_archive_lag(stack: Stack, drill: Drill) -> None:
    archiver = ArchiverProcess(stack.config, stack.root / "archiver", segment_seconds=1.0, max_lag=60.0).start()
    try:
        archiver.wait_streaming()
        config = archiver.config
        settings = config.archive["production"]
        drill.start("freshness check begins (nothing is broken: the archive's lag is what is tested)")
        stack.start_writer()
        lags: list[float] = []
        with drill.step("measure the archive lag", "bdr status (archive redis/production: lag ...)") as step:
            for _ in range(SAMPLES):
                time.sleep(0.1)
                lag = api.archive_status(config, settings.name).lag_seconds
                assert lag is not None, "the archive has no recoverable window"
                lags.append(lag)
            median = sorted(lags)[len(lags) // 2]
            every = format_duration(settings.segment_seconds)
            step.detail = (f"{len(lags)} samples while writing: median {format_duration(median)}, worst "
                              f"{format_duration(max(lags))} (segments every {every}, max_lag "
                              f"{format_duration(settings.max_lag)})")
        with drill.step("the policy's bound", "bdr lint") as step:
            window = ArchiveWindow("redis", "production", settings.max_lag, settings.segment_seconds)
            assert max(lags) <= window.seconds, "the measured lag exceeds what bdr lint and the alert assume"
            step.detail = window.basis
        drill.verified("archive lag measured")
        for data_type in ("sessions", "rbac"):
            drill.check("rpo", data_type, drill.policy.rpo(data_type), max(lags),
                        note=f"worst archive lag of {len(lags)} samples (bound: max_lag "
                        f"{format_duration(settings.max_lag)})")
        drill.evidence.update(archive_lag_seconds=lags, max_lag_seconds=settings.max_lag,
                              segment_seconds=settings.segment_seconds, archiver=archiver.status())
        drill.assert_targets()
    finally:
        archiver.stop()
