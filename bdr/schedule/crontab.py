"""The scheduled jobs as crontab lines (``bdr schedule --cron``), for hosts without systemd.

The system format of ``/etc/cron.d/bdr`` (five fields, a user, the command). Each line runs
the job, then rewrites the metrics textfile whatever its outcome (``;``). A job that takes the
repository lock waits for it (``--wait-lock``) rather than failing when runs overlap. Unlike a
``Persistent=true`` timer, cron never catches up a run missed while the host was off.
Commands are quoted for ``/bin/sh`` and cron's ``%`` is escaped.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from bdr.schedule.jobs import Job
from bdr.schedule.systemd import MARKER, Invocation, UnitFile

DEFAULT_CRON_DIR = Path("/etc/cron.d")
CRON_FILE = "bdr"
"""cron.d ignores file names with a dot: the file is plain ``bdr``."""
PATH_LINE = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _shell(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv).replace("%", "\\%")


def line(job: Job, how: Invocation) -> str:
    command = f"cd {shlex.quote(str(how.workdir))} && {_shell(how.argv(job.args, job.wait_lock))}"
    if how.metrics:
        command += f"; {_shell(how.argv(['metrics', 'write']))}"
    return f"{job.cron} {how.user or 'root'} {command}"


def crontab(jobs: Sequence[Job], how: Invocation, source: str) -> UnitFile:
    lines = [MARKER, f"# from the schedule: of {source}: edit bdr.yaml and run `bdr schedule --cron --install` "
             "again, not this file", "# secrets: password_file / encryption.key_file in bdr.yaml (cron passes no "
             "environment file)", "SHELL=/bin/sh", PATH_LINE, ""]
    for job in jobs:
        if job.kind == "archive":  # a service, not a job: cron cannot keep it running
            lines += [f"# {job.description} ({job.entry}): a long-running service; run it under systemd (bdr "
                      f"schedule without --cron) or your supervisor: {_shell(how.argv(job.args))}"]
            continue
        lines += [f"# {job.description} (schedule.{job.entry})", line(job, how)]
    return UnitFile(CRON_FILE, "\n".join(lines) + "\n")
