"""Consistent Redis snapshots: BGSAVE + copy, or an RDB fetched over the replication protocol.

``rdb`` (the default): one pipeline reads the digest, the key counts and the save counter
and starts ``BGSAVE``; Redis runs a client's pipelined commands back to back, so the
facts describe exactly the snapshot the fork writes. A save already running is waited
for first; a failed save is an error that names the likely cause. When AOF is on, the
Redis 7 multi-part AOF directory (manifest, base and incr files) is copied too, with
automatic rewrites switched off meanwhile so a rewrite cannot swap files under the copy.

``replication`` fetches the RDB as a replica would (``REPLCONF rdb-only`` + ``SYNC``, as
``redis-cli --rdb`` does) for when bdr cannot reach the data directory.

``files`` copies whatever is in the data directory of a server that is *down* (the safety
backup before restoring a Redis that refuses to start).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from bdr.archive import ArchiveMember
from bdr.clients import redis_address, redis_client, redis_errors
from bdr.config import RedisInstance
from bdr.engines.base import BackupRequest
from bdr.engines.redis.info import (
    DIGEST_UNAVAILABLE,
    Keyspace,
    PersistenceLayout,
    aof_files,
    digest,
    parse_digest,
    rdb_version,
)
from bdr.errors import BdrError, NothingToBackUp, ServiceError, ServiceTimeout, ServiceUnavailable
from bdr.repository import SetWriter
from bdr.runtime import redis_runtime
from bdr.waiting import wait_for

logger = logging.getLogger(__name__)

POLL = 0.01


class BackupFailed(BdrError):
    """backup of Redis {name} failed: {detail}"""

    exit_code = 7


def _store(writer: SetWriter, files: list[tuple[Path, str]], compress: bool) -> None:
    if compress:
        writer.add_archive([ArchiveMember(path, name) for path, name in files], compress=True)
    else:
        for path, name in files:
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


def snapshot(client: redis.Redis, name: str, timeout: float, with_digest: bool = True) -> dict[str, Any]:
    """Start a BGSAVE in one pipeline with the digest and key counts; wait for it; return facts."""
    deadline = time.monotonic() + timeout
    while True:
        _wait_no_child(client, max(1.0, deadline - time.monotonic()))
        pipe = client.pipeline(transaction=False)
        pipe.info("persistence")
        if with_digest:
            pipe.execute_command("DEBUG", "DIGEST")
        else:
            pipe.echo(DIGEST_UNAVAILABLE)
        pipe.info("keyspace")
        pipe.bgsave()
        before, digest_reply, keyspace, started = pipe.execute(raise_on_error=False)
        if not isinstance(started, Exception):
            break
        if "in progress" in str(started) or "child process" in str(started):
            if time.monotonic() > deadline:
                raise ServiceTimeout(service="Redis", what="start BGSAVE", seconds=timeout, detail=str(started))
            continue  # another save/rewrite started meanwhile: wait for it, then take ours
        raise BackupFailed(name=name, detail=f"BGSAVE refused: {started}")
    saves_before = int(before["rdb_saves"])

    def saved() -> bool:
        info = client.info("persistence")
        return int(info["rdb_saves"]) > saves_before and not int(info["rdb_bgsave_in_progress"])

    def finished() -> bool:
        info = client.info("persistence")
        if int(info["rdb_bgsave_in_progress"]):
            return False
        return int(info["rdb_saves"]) > saves_before or info["rdb_last_bgsave_status"] != "ok"

    if not wait_for(finished, max(1.0, deadline - time.monotonic()), POLL):
        raise ServiceTimeout(service="Redis", what="finish BGSAVE", seconds=timeout, detail="still saving")
    if not saved():
        raise BackupFailed(
            name=name,
            detail="BGSAVE failed (rdb_last_bgsave_status=err); check the Redis log: disk full or the data "
            "directory not writable?",
        )
    return {
        "digest": parse_digest(digest_reply) if with_digest else DIGEST_UNAVAILABLE,
        "keyspace": Keyspace.from_info(keyspace).to_facts(),
        "rdb_saves": saves_before + 1,
    }


@contextlib.contextmanager
def no_aof_rewrite(client: redis.Redis, timeout: float) -> Iterator[None]:
    """Switch automatic AOF rewrites off and wait for a running one; restore the setting after."""
    previous = str(client.config_get("auto-aof-rewrite-percentage")["auto-aof-rewrite-percentage"])
    client.config_set("auto-aof-rewrite-percentage", 0)
    try:
        def no_rewrite() -> bool:
            info = client.info("persistence")
            return not int(info["aof_rewrite_in_progress"]) and not int(info["aof_rewrite_scheduled"])

        if not wait_for(no_rewrite, timeout, POLL):
            raise ServiceTimeout(service="Redis", what="finish its AOF rewrite", seconds=timeout, detail="")
        yield
    finally:
        with contextlib.suppress(redis.RedisError):
            client.config_set("auto-aof-rewrite-percentage", previous)


def server_facts(client: redis.Redis) -> dict[str, Any]:
    info = client.info("server")
    return {
        "redis_version": info.get("redis_version"),
        "redis_mode": info.get("redis_mode"),
        "os": info.get("os"),
        "run_id": info.get("run_id"),
    }


def backup_rdb(request: BackupRequest, writer: SetWriter, instance: RedisInstance) -> None:
    client = redis_client(instance, timeout=max(30.0, instance.save_timeout))
    with redis_errors(instance, "take a snapshot"):
        layout = PersistenceLayout.from_server(client)
        runtime = redis_runtime(instance)
        data_dir = Path(instance.data_dir) if instance.data_dir else runtime.data_path()
        facts = server_facts(client)
        snap = snapshot(client, instance.name, instance.save_timeout,
                        with_digest=wants_digest(client, instance.digest_max_keys))
        rdb_path = data_dir / layout.dbfilename
        try:
            handle = rdb_path.open("rb")
        except FileNotFoundError as exc:
            raise BackupFailed(
                name=instance.name,
                detail=f"{rdb_path} not found after BGSAVE: bdr cannot see the data directory; set data_dir "
                "in bdr.yaml or use --method replication",
            ) from exc
        with handle:
            if int(client.info("persistence")["rdb_saves"]) != snap["rdb_saves"]:
                logger.warning("another save finished during the backup of %s; digest not recorded", instance.name)
                snap["digest"] = DIGEST_UNAVAILABLE
            files: list[tuple[Path, str]] = [(Path(f"/proc/self/fd/{handle.fileno()}"), layout.dbfilename)]
            aof_dir = data_dir / layout.appenddirname
            facts.update(snap, rdb_version=rdb_version(rdb_path), aof=layout.appendonly,
                         dbfilename=layout.dbfilename, appenddirname=layout.appenddirname)
            if layout.appendonly:
                manifest_name = f"{client.config_get('appendfilename')['appendfilename']}.manifest"
                with no_aof_rewrite(client, instance.save_timeout):
                    handles = [p.open("rb") for p in aof_files(aof_dir, manifest_name)]
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
    writer.facts.update(facts)
    writer.method = "rdb"


def backup_offline(request: BackupRequest, writer: SetWriter, instance: RedisInstance) -> None:
    """Copy the data files of a server that is not running (no snapshot possible)."""
    runtime = redis_runtime(instance)
    layout = PersistenceLayout.from_args(
        list(getattr(runtime, "argv", []) or instance.start_args), instance.config_file, instance.data_dir
    )
    data_dir = Path(instance.data_dir) if instance.data_dir else layout.dir
    files: list[tuple[Path, str]] = []
    rdb = data_dir / layout.dbfilename
    if rdb.is_file():
        files.append((rdb, layout.dbfilename))
    aof_dir = data_dir / layout.appenddirname
    if aof_dir.is_dir():
        files += [(p, f"{layout.appenddirname}/{p.name}") for p in sorted(aof_dir.iterdir()) if p.is_file()]
    for legacy in ("appendonly.aof",):
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
        raise ServiceUnavailable(service="Redis", address=f"{host}:{port}", detail=f"replication: {exc}") from exc
    finally:
        sock.close()


def backup_replication(request: BackupRequest, writer: SetWriter, instance: RedisInstance, staging: Path) -> None:
    client = redis_client(instance, timeout=max(30.0, instance.save_timeout))
    with redis_errors(instance, "serve a replication snapshot"):
        facts = server_facts(client)
        layout = PersistenceLayout.from_server(client)
        with_digest = wants_digest(client, instance.digest_max_keys)
        before = digest(client) if with_digest else DIGEST_UNAVAILABLE
        keyspace = Keyspace.from_info(client.info("keyspace"))
        delay = None
        with contextlib.suppress(redis.ResponseError):
            delay = client.config_get("repl-diskless-sync-delay").get("repl-diskless-sync-delay")
            client.config_set("repl-diskless-sync-delay", 0)
        try:
            rdb = staging / layout.dbfilename
            fetch_rdb(instance, rdb, instance.save_timeout)
        finally:
            if delay is not None:
                with contextlib.suppress(redis.RedisError):
                    client.config_set("repl-diskless-sync-delay", delay)
        after = digest(client) if with_digest else DIGEST_UNAVAILABLE
        after_keyspace = Keyspace.from_info(client.info("keyspace"))
    # The transfer is not atomic with the facts: record them only when nothing changed meanwhile.
    unchanged = keyspace == after_keyspace and (before == after or DIGEST_UNAVAILABLE in (before, after))
    if not unchanged:
        logger.info("data of %s changed during the replication transfer; digest and counts not recorded",
                    instance.name)
    facts.update(
        digest=before if unchanged and before == after else DIGEST_UNAVAILABLE,
        keyspace=keyspace.to_facts() if unchanged else {},
        rdb_version=rdb_version(rdb), aof=False, dbfilename=layout.dbfilename,
        appenddirname=layout.appenddirname, replication=True,
    )
    _store(writer, [(rdb, layout.dbfilename)], request.compress)
    writer.facts.update(facts)
    writer.method = "replication"
