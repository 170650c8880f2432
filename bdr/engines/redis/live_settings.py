"""Settings bdr changes on a live Redis for a moment, recorded first and always put back.

A backup of an AOF instance switches automatic rewrites off while it copies the AOF
(``auto-aof-rewrite-percentage 0``); a replication backup sets
``repl-diskless-sync-delay 0``. Before such a change the previous values are written to a
record in the restore journal's directory (fsynced); they are put back when the block
ends, however it ends. If bdr is killed in between, the record stays, and the next bdr
run on that instance puts the values back (:func:`put_back_leftovers`) and says so, so a
kill can never leave a production server configured the way bdr needed it for a moment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path

import redis

from bdr.clients import redis_client
from bdr.config import RedisInstance
from bdr.repository.manifest import to_iso, utcnow
from bdr.safety.failpoints import failpoint
from bdr.safety.journal import write_durably
from bdr.util.host import pid_alive, process_start_time

logger = logging.getLogger(__name__)

SETTINGS_DIR = "settings"


def _records(journal_root: Path, instance: str) -> list[Path]:
    folder = journal_root / SETTINGS_DIR
    return sorted(folder.glob(f"redis-{instance}-*.json")) if folder.is_dir() else []


@contextlib.contextmanager
def changed_settings(client: redis.Redis, instance: RedisInstance, changes: Mapping[str, str],
                     journal_root: Path) -> Iterator[dict[str, str]]:
    """Set ``changes`` on the live server for the block; the previous values are recorded and put back."""
    previous: dict[str, str] = {}
    for name in changes:
        value = client.config_get(name).get(name)
        if value is not None:
            previous[name] = str(value)
    folder = journal_root / SETTINGS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / f"redis-{instance.name}-{os.getpid()}.json"
    write_durably(record, json.dumps({
        "instance": instance.name, "url": instance.url, "pid": os.getpid(), "host": socket.gethostname(),
        "process_start": process_start_time(os.getpid()), "at": to_iso(utcnow()), "previous": previous,
    }, indent=2).encode())
    try:
        for name, value in changes.items():
            if name in previous:
                client.config_set(name, value)
        failpoint("backup.settings.changed")
        yield previous
    finally:
        try:
            for name, value in previous.items():
                client.config_set(name, value)
        except redis.RedisError as exc:
            logger.warning("could not put back %s on Redis %s (%s); the next bdr run will", ", ".join(previous),
                           instance.name, exc)
        else:
            record.unlink(missing_ok=True)


def _writer_gone(data: Mapping[str, object]) -> bool:
    if data.get("host") != socket.gethostname():
        return False
    pid = data.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return True
    start = data.get("process_start")
    return start is not None and process_start_time(pid) != start


def put_back_leftovers(instance: RedisInstance, journal_root: Path) -> list[str]:
    """Put back settings a killed bdr run left changed on ``instance``; what was done, one line each."""
    done: list[str] = []
    for record in _records(journal_root, instance.name):
        try:
            data = json.loads(record.read_bytes())
        except (OSError, ValueError) as exc:
            logger.warning("unreadable settings record %s: %s", record, exc)
            continue
        if not _writer_gone(data):
            continue
        previous = {str(k): str(v) for k, v in dict(data.get("previous") or {}).items()}
        try:
            client = redis_client(instance, timeout=10.0, retries=0)
            for name, value in previous.items():
                client.config_set(name, value)
        except redis.RedisError as exc:
            logger.warning("settings changed by a killed bdr run (pid %s) on Redis %s are not put back yet: %s",
                           data.get("pid"), instance.name, exc)
            continue
        record.unlink(missing_ok=True)
        line = (f"put back {', '.join(f'{k} {v!r}' for k, v in previous.items())} on Redis {instance.name}: a bdr run "
                f"(pid {data.get('pid')}, {data.get('at')}) was killed while it had changed them")
        logger.warning("%s", line)
        done.append(line)
    return done


def leftovers(journal_root: Path) -> list[dict[str, object]]:
    """Records of settings still changed by a dead bdr run (for ``bdr status``)."""
    folder = journal_root / SETTINGS_DIR
    out: list[dict[str, object]] = []
    for record in sorted(folder.glob("redis-*.json")) if folder.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(record.read_bytes())
            if _writer_gone(data):
                out.append(data)
    return out
