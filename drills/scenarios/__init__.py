"""The runbook's disaster-recovery scenarios, one module each.

:data:`SCENARIOS` maps each scenario name (used by ``bdr drill --scenario``, the reports and
``bdr lint --changed-since``) to its module.
"""

SCENARIOS: dict[str, str] = {
    "redis_restart": "drills.scenarios.test_redis_restart",
    "redis_corruption": "drills.scenarios.test_redis_corruption",
    "redis_local_restore": "drills.scenarios.test_redis_local_restore",
    "complete_data_loss": "drills.scenarios.test_complete_data_loss",
    "accidental_deletion": "drills.scenarios.test_accidental_deletion",
    "monthly_restore_test": "drills.scenarios.test_monthly_restore_test",
    "backup_freshness": "drills.scenarios.test_backup_freshness",
    "offsite_restore": "drills.scenarios.test_offsite_restore",
    "cluster_master_lost": "drills.scenarios.test_cluster_master_lost",
    "cluster_total_loss": "drills.scenarios.test_cluster_total_loss",
    "cluster_accidental_deletion": "drills.scenarios.test_cluster_accidental_deletion",
}
