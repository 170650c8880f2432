"""Consistent Redis snapshots that cannot lie: BGSAVE + copy, or an RDB over the replication protocol.

``rdb`` (the default): one pipeline reads the server's clock, the key counts (and the
digest where ``DEBUG`` is allowed and cheap) and starts ``BGSAVE``; Redis runs a client's
pipelined commands back to back, so those facts describe exactly the snapshot the fork
writes. The backup is good only if **that** save succeeded: ``rdb_last_bgsave_status`` is
``ok`` and the last successful save is not older than the request; otherwise the backup
fails with Redis's own reason, read from its log (a full disk: "Write error saving DB on
disk: No space left on device"), and the old ``dump.rdb`` is never copied as if it were new.
The file bdr then opens must be as new as the request (its ``ctime``), and its own key
counts, read while it is copied by bdr's RDB parser along with a content digest
(:mod:`.content`), must agree with what Redis said at the request.

When AOF is on, the Redis 7 multi-part AOF directory (manifest, base and incr files) is
copied too, with automatic rewrites switched off meanwhile so a rewrite cannot swap files
under the copy; that live setting is recorded before it is changed and put back on every
exit, and by the next run after a kill (:mod:`.live_settings`).

``replication`` fetches the RDB as a replica would (``REPLCONF rdb-only`` + ``SYNC``, as
``redis-cli --rdb`` does) for when bdr cannot reach the data directory.

``files`` copies whatever is in the data directory of a server that is *down* (the safety
backup before restoring a Redis that refuses to start); it is not a snapshot, and a
restore loads it into a temporary server first.
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bdr.clients import redis_address, redis_client, redis_errors
from bdr.config import RedisInstance
from bdr.engines.base import BackupRequest
from bdr.engines.redis.content import Content, digest_in_background, keyspace_of, record
from bdr.engines.redis.info import (
    DIGEST_UNAVAILABLE,
    Keyspace,
    PersistenceLayout,
    aof_files,
    digest,
    parse_digest,
    rdb_aux,
    rdb_version,
)
from bdr.engines.redis.live_settings import changed_settings, put_back_leftovers
from bdr.engines.redis.target import open_target
from bdr.errors import (
    BackupFailed,
    NothingToBackUp,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
    SnapshotFailed,
    SnapshotNoSpace,
)
from bdr.repository import SetWriter
from bdr.repository.archive import ArchiveMember
from bdr.runtime.process import default_log_file
from bdr.safety.failpoints import failpoint
from bdr.safety.journal import Journal
from bdr.util.waiting import wait_for

logger = logging.getLogger(__name__)

POLL = 0.01
LOCAL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO)
"""errno values of a failed write to a local file (the rest of a replication's OSErrors are the network's)."""
SAVE_ERRORS = re.compile(r"(error|failed|no space|can't|cannot|denied)", re.I)


def _store(writer: SetWriter, files: list[tuple[Path, str]], compress: bool) -> None:
    if compress:
        failpoint("backup.copy")
        writer.add_archive([ArchiveMember(path, name) for path, name in files], compress=True)
    else:
        for path, name in files:
            failpoint("backup.copy")
            writer.add_file(path, name)


def _wait_no_child(client: redis.Redis, timeout: float) -> None:
    def idle() -> bool:
        info = client.info("persistence")
        return not int(info["rdb_bgsave_in_progress"]) and not int(info["aof_rewrite_in_progress"])

    if not wait_for(idle, timeout, POLL):
        raise ServiceTimeout(service="Redis", what="finish its running save/rewrite", seconds=timeout,
                             detail="a BGSAVE or BGREWRITEAOF is still running")


def wants_digest(client: redis.Redis, max_keys: int) -> bool:
    """Whether DEBUG DIGEST is cheap enough here: it blocks the server for its whole run."""
    if max_keys < 0:
        return True
    return max_keys > 0 and Keyspace.from_info(client.info("keyspace")).total_keys <= max_keys


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What was true when bdr asked for the snapshot (the fork sees exactly this)."""

    requested_at: int
    """The server's clock (``TIME``, seconds) when BGSAVE was asked for."""
    keyspace: Keyspace
    digest: str
    rdb_saves: int
    """The server's save counter once the save finished."""
    requested_at_us: int = 0
    """The same moment to the microsecond (``TIME``), for comparing snapshots of several servers."""


def save_failure(client: redis.Redis, stdout_log: Path | None = None) -> str:
    """Redis's own reason for a failed save, from its log when bdr can read it.

    ``stdout_log``: where the server's standard output goes when bdr started it (a server
    with ``logfile ""`` logs there).
    """
    try:
        logfile = str(client.config_get("logfile").get("logfile") or "")
        data_dir = str(client.config_get("dir").get("dir") or ".")
    except redis.RedisError:
        return "rdb_last_bgsave_status is err (see the Redis log)"
    if not logfile and (stdout_log is None or not stdout_log.is_file()):
        return "rdb_last_bgsave_status is err (Redis logs to its standard output: see it for the reason)"
    if not logfile:
        assert stdout_log is not None
        path = stdout_log
    else:
        path = Path(logfile) if Path(logfile).is_absolute() else Path(data_dir) / logfile
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 65536))
            lines = handle.read().decode(errors="replace").splitlines()
    except OSError:
        return f"rdb_last_bgsave_status is err (the Redis log {path} is not readable here)"
    return f"{reason_in_log(lines) or 'rdb_last_bgsave_status is err'} (Redis log {path})"


LOG_LINE = re.compile(r"^\d+:(?P<role>[A-Z]) .+? [#*.-] (?P<text>.*)$")


def reason_in_log(lines: list[str]) -> str | None:
    """Why the last background save failed, in Redis's words: the forked child's error line
    (``Write error saving DB on disk: No space left on device``) after the last "Background saving
    started", else the parent's error line; None when the log does not say."""
    start = max((i for i, line in enumerate(lines) if "Background saving started" in line), default=-1)
    parsed = [m for m in (LOG_LINE.match(line.strip()) for line in lines[start + 1:]) if m]
    errors = [m for m in parsed if SAVE_ERRORS.search(m["text"])]
    child = [m for m in errors if m["role"] == "C"]
    ranked = child or [m for m in errors if "Background saving error" not in m["text"]] or errors
    return ranked[0]["text"].strip() if ranked else None


def snapshot(client: redis.Redis, name: str, timeout: float, with_digest: bool = True,
             stdout_log: Path | None = None) -> Snapshot:
    """Ask for a BGSAVE in one pipeline with the digest and key counts; wait; prove it succeeded.

    A snapshot is good only if *this* save succeeded: ``rdb_last_bgsave_status`` is ``ok``
    and the last successful save (``rdb_last_save_time``) is not older than the request.
    Otherwise :class:`SnapshotFailed` (or :class:`SnapshotNoSpace`) carries Redis's own
    reason, and the old ``dump.rdb`` is never taken for a new backup.
    """
    deadline = time.monotonic() + timeout
    while True:
        _wait_no_child(client, max(1.0, deadline - time.monotonic()))
        pipe = client.pipeline(transaction=False)
        pipe.time()
        pipe.info("persistence")
        if with_digest:
            pipe.execute_command("DEBUG", "DIGEST")
        else:
            pipe.echo(DIGEST_UNAVAILABLE)
        pipe.info("keyspace")
        pipe.bgsave()
        server_time, before, digest_reply, keyspace, started = pipe.execute(raise_on_error=False)
        if not isinstance(started, Exception):
            break
        if "in progress" in str(started) or "child process" in str(started):
            if time.monotonic() > deadline:
                raise ServiceTimeout(service="Redis", what="start BGSAVE", seconds=timeout, detail=str(started))
            continue  # another save/rewrite started meanwhile: wait for it, then take ours
        raise SnapshotFailed(name=name, detail=f"Redis refused BGSAVE: {started}")
    requested_at = int(server_time[0]) if isinstance(server_time, (tuple, list)) else int(time.time())
    requested_us = requested_at * 1_000_000 + (int(server_time[1]) if isinstance(server_time, (tuple, list)) else 0)
    saves_before = int(before["rdb_saves"])

    def finished() -> bool:
        info = client.info("persistence")
        return not int(info["rdb_bgsave_in_progress"]) and int(info["rdb_saves"]) > saves_before

    if not wait_for(finished, max(1.0, deadline - time.monotonic()), POLL):
        raise ServiceTimeout(service="Redis", what="finish BGSAVE", seconds=timeout, detail="still saving")
    info = client.info("persistence")
    if info.get("rdb_last_bgsave_status") != "ok" or int(info.get("rdb_last_save_time", 0)) < requested_at:
        reason = save_failure(client, stdout_log)
        if "space" in reason.lower():
            raise SnapshotNoSpace(name=name, detail=reason, dir=str(client.config_get("dir").get("dir")))
        raise SnapshotFailed(name=name, detail=reason)
    return Snapshot(requested_at, Keyspace.from_info(keyspace),
                    parse_digest(digest_reply) if with_digest else DIGEST_UNAVAILABLE, int(info["rdb_saves"]),
                    requested_us)


def wait_no_aof_rewrite(client: redis.Redis, timeout: float) -> None:
    def no_rewrite() -> bool:
        info = client.info("persistence")
        return not int(info["aof_rewrite_in_progress"]) and not int(info["aof_rewrite_scheduled"])

    if not wait_for(no_rewrite, timeout, POLL):
        raise ServiceTimeout(service="Redis", what="finish its AOF rewrite", seconds=timeout, detail="")


def server_facts(client: redis.Redis) -> dict[str, Any]:
    info = client.info("server")
    return {
        "redis_version": info.get("redis_version"),
        "redis_mode": info.get("redis_mode"),
        "os": info.get("os"),
        "run_id": info.get("run_id"),
    }


def journal_root(request: BackupRequest) -> Path:
    """Where records of live changes go: the restore journal of the local repository."""
    return Journal.at(request.config.repository_path()).root


def check_snapshot_file(name: str, snap: Snapshot, path: Path) -> None:
    """The RDB bdr opened must be at least as new as the snapshot it asked for."""
    created = rdb_aux(path).get("ctime", "")
    if created.isdigit() and int(created) < snap.requested_at - 1:
        raise SnapshotFailed(name=name, detail=f"{path} was written at {created}, before the BGSAVE bdr asked for "
                             f"({snap.requested_at}): it is not this snapshot (is dbfilename/dir what bdr reads?)")


def record_content(facts: dict[str, Any], content: Content, snap: Snapshot, name: str, ours: bool) -> None:
    """Key counts and content digest from the RDB itself; cross-checked with what Redis said at the request."""
    record(facts, content)
    if content.facts is None:
        facts["keyspace"] = snap.keyspace.to_facts()
        return
    from_file = keyspace_of(content.facts)
    facts["keyspace"] = from_file
    total = sum(v["keys"] for v in from_file.values())
    if ours:
        low = snap.keyspace.total_keys - sum(e for _, e in snap.keyspace.dbs.values())
        if not low <= total <= snap.keyspace.total_keys:
            raise SnapshotFailed(name=name, detail=f"the RDB holds {total} keys, Redis had "
                                 f"{snap.keyspace.total_keys} when the snapshot was asked for: it is not this snapshot")


def backup_rdb(request: BackupRequest, writer: SetWriter, instance: RedisInstance) -> None:
    root = journal_root(request)
    put_back_leftovers(instance, root)
    client = redis_client(instance, timeout=max(30.0, instance.save_timeout))
    with redis_errors(instance, "take a snapshot"):
        target = open_target(instance)
        layout = target.layout
        facts = server_facts(client)
        snap = snapshot(client, instance.name, instance.save_timeout,
                        with_digest=wants_digest(client, instance.digest_max_keys),
                        stdout_log=default_log_file(instance))
        failpoint("backup.snapshot.after")
        rdb_path = layout.dir / layout.dbfilename
        try:
            handle = rdb_path.open("rb")
        except FileNotFoundError as exc:
            raise BackupFailed(
                name=instance.name,
                detail=f"{rdb_path} not found after BGSAVE: bdr cannot see the data directory; set data_dir "
                "in bdr.yaml or use --method replication",
            ) from exc
        with handle:
            pinned = Path(f"/proc/self/fd/{handle.fileno()}")
            check_snapshot_file(instance.name, snap, pinned)
            content = digest_in_background(pinned)
            ours = int(client.info("persistence")["rdb_saves"]) == snap.rdb_saves
            if not ours:
                logger.warning("another save finished during the backup of %s; DEBUG DIGEST not recorded",
                               instance.name)
            files: list[tuple[Path, str]] = [(pinned, layout.dbfilename)]
            facts.update(digest=snap.digest if ours else DIGEST_UNAVAILABLE, rdb_saves=snap.rdb_saves,
                         rdb_version=rdb_version(pinned), aof=layout.appendonly, dbfilename=layout.dbfilename,
                         appenddirname=layout.appenddirname, snapshot_requested_at=snap.requested_at,
                         snapshot_requested_at_us=snap.requested_at_us)
            if layout.appendonly and layout.multipart:
                manifest_name = f"{layout.appendfilename}.manifest"
                with changed_settings(client, instance, {"auto-aof-rewrite-percentage": "0"}, root):
                    wait_no_aof_rewrite(client, instance.save_timeout)
                    handles = [p.open("rb") for p in aof_files(layout.dir / layout.appenddirname, manifest_name)]
                    try:
                        files += [
                            (Path(f"/proc/self/fd/{h.fileno()}"), f"{layout.appenddirname}/{Path(h.name).name}")
                            for h in handles
                        ]
                        _store(writer, files, request.compress)
                    finally:
                        for h in handles:
                            h.close()
            else:
                _store(writer, files, request.compress)
            record_content(facts, content.result(), snap, instance.name, ours)
    failpoint("backup.commit")
    writer.facts.update(facts)
    writer.method = "rdb"


def backup_offline(request: BackupRequest, writer: SetWriter, instance: RedisInstance) -> None:
    """Copy the data files of a server that is not running (no snapshot possible)."""
    layout = open_target(instance).layout
    data_dir = layout.dir
    files: list[tuple[Path, str]] = []
    rdb = data_dir / layout.dbfilename
    if rdb.is_file():
        files.append((rdb, layout.dbfilename))
    aof_dir = data_dir / layout.appenddirname
    if aof_dir.is_dir():
        files += [(p, f"{layout.appenddirname}/{p.name}") for p in sorted(aof_dir.iterdir()) if p.is_file()]
    for legacy in {layout.appendfilename, "appendonly.aof"}:
        if (data_dir / legacy).is_file():
            files.append((data_dir / legacy, legacy))
    if not files:
        raise NothingToBackUp(detail=f"Redis {instance.name} is down and {data_dir} holds no data files")
    _store(writer, files, request.compress)
    writer.facts.update(
        digest=DIGEST_UNAVAILABLE, keyspace={}, aof=layout.appendonly, dbfilename=layout.dbfilename,
        appenddirname=layout.appenddirname, rdb_version=rdb_version(rdb), offline=True,
    )
    writer.method = "files"


# --- replication -------------------------------------------------------------------------------


def _resp(*args: str | bytes) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(max(65536, size - len(self.buffer)))
            if not chunk:
                raise ConnectionError("connection closed during the RDB transfer")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def some(self) -> bytes:
        if self.buffer:
            data, self.buffer = self.buffer, b""
            return data
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed during the RDB transfer")
        return chunk


def fetch_rdb(instance: RedisInstance, sink_path: Path, timeout: float) -> int:
    """Fetch an RDB over the replication protocol into ``sink_path``; returns its size."""
    host, port, _ = redis_address(instance.url)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ServiceUnavailable(service="Redis", address=f"{host}:{port}", detail=str(exc)) from exc
    sock: socket.socket = raw
    if instance.tls.enabled or instance.url.startswith("rediss://"):
        context = ssl.create_default_context(cafile=instance.tls.ca_file)
        if instance.tls.cert_file:
            context.load_cert_chain(instance.tls.cert_file, instance.tls.key_file)
        if not instance.tls.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(raw, server_hostname=host)
    reader = _Reader(sock)
    try:
        password = instance.password()
        if password:
            auth = ("AUTH", instance.username, password) if instance.username else ("AUTH", password)
            sock.sendall(_resp(*auth))
            if not reader.line().startswith(b"+"):
                raise ServiceError(detail=f"Redis at {host}:{port} refused the credentials for replication")
        sock.sendall(_resp("REPLCONF", "rdb-only", "1"))
        reader.line()  # older servers answer an error; the SYNC still works
        sock.sendall(_resp("SYNC"))
        while True:
            header = reader.line()
            if header.startswith(b"$"):
                break
            if header.startswith(b"-"):
                raise ServiceError(detail=f"Redis refused SYNC: {header[1:].decode(errors='replace')}")
        size = 0
        with sink_path.open("wb") as out:
            if header.startswith(b"$EOF:"):
                mark = header[5:]
                tail = b""
                while True:
                    chunk = tail + reader.some()
                    if chunk.endswith(mark):
                        out.write(chunk[: -len(mark)])
                        size += len(chunk) - len(mark)
                        break
                    keep = len(mark)
                    out.write(chunk[:-keep])
                    size += len(chunk[:-keep])
                    tail = chunk[-keep:]
            else:
                remaining = int(header[1:])
                while remaining:
                    data = reader.take(min(remaining, 1 << 20))
                    out.write(data)
                    remaining -= len(data)
                    size += len(data)
        return size
    except (OSError, ConnectionError) as exc:
        if isinstance(exc, OSError) and exc.errno in LOCAL_ERRNOS:  # writing the staging file, not the network
            from bdr.storage.local import translate_os_error

            raise translate_os_error(exc, sink_path.parent) from exc
        raise ServiceUnavailable(service="Redis", address=f"{host}:{port}", detail=f"replication: {exc}") from exc
    finally:
        sock.close()


def backup_replication(request: BackupRequest, writer: SetWriter, instance: RedisInstance, staging: Path) -> None:
    root = journal_root(request)
    put_back_leftovers(instance, root)
    client = redis_client(instance, timeout=max(30.0, instance.save_timeout))
    with redis_errors(instance, "serve a replication snapshot"):
        facts = server_facts(client)
        layout = PersistenceLayout.from_server(client, staging)
        with_digest = wants_digest(client, instance.digest_max_keys)
        before = digest(client) if with_digest else DIGEST_UNAVAILABLE
        keyspace = Keyspace.from_info(client.info("keyspace"))
        rdb = staging / layout.dbfilename
        try:
            with changed_settings(client, instance, {"repl-diskless-sync-delay": "0"}, root):
                fetch_rdb(instance, rdb, instance.save_timeout)
        except redis.ResponseError:  # CONFIG refused (an ACL user without it): the transfer waits the delay
            fetch_rdb(instance, rdb, instance.save_timeout)
        after = digest(client) if with_digest else DIGEST_UNAVAILABLE
    content = digest_in_background(rdb).result()
    # The transfer is not atomic with the digest: record DEBUG DIGEST only when nothing changed meanwhile.
    unchanged = before == after or DIGEST_UNAVAILABLE in (before, after)
    facts.update(
        digest=before if unchanged and before == after else DIGEST_UNAVAILABLE,
        rdb_version=rdb_version(rdb), aof=False, dbfilename=layout.dbfilename,
        appenddirname=layout.appenddirname, replication=True,
    )
    record(facts, content)
    if content.facts is not None:
        facts["keyspace"] = keyspace_of(content.facts)
    else:
        after_keyspace = Keyspace.from_info(client.info("keyspace"))
        facts["keyspace"] = keyspace.to_facts() if keyspace == after_keyspace else {}
    _store(writer, [(rdb, layout.dbfilename)], request.compress)
    writer.facts.update(facts)
    writer.method = "replication"
