"""Scheduling: the ``schedule:`` of bdr.yaml as systemd timers or crontab lines (``bdr schedule``).

:mod:`.jobs` expands the schedule into concrete jobs (one backup per instance, the off-site
copy, prune, verify of each backed-up instance, the monthly live drill), each with the exact
``bdr`` command line it runs. :mod:`.calendar` turns a cron expression into systemd
``OnCalendar=`` lines with the same runs, :mod:`.systemd` and :mod:`.crontab` render the
units and the crontab, and :mod:`.install` writes them (atomically, removing the units of
jobs that left the schedule) and optionally enables the timers.
"""

from __future__ import annotations

from bdr.schedule.jobs import Job, backup_groups, jobs_for

__all__ = ["Job", "backup_groups", "jobs_for"]
