"""The archiver's side of Redis replication: what a replica says, and what it is told.

A connection becomes a replication link in four exchanges (as ``redis-server`` replicas do):

1. ``AUTH`` (when the instance has a password; an ACL user needs ``+psync +replconf +ping``),
   ``CLIENT SETNAME bdr-archiver`` (so ``CLIENT LIST`` and ``INFO`` show who it is);
2. ``REPLCONF capa eof capa psync2``: the archiver reads a diskless full sync (an RDB framed by
   ``$EOF:<mark>``) and the ``+CONTINUE <new id>`` of a master that changed its replication id;
3. ``PSYNC <replid> <offset+1>`` to go on from the last byte it holds, or ``PSYNC ? -1``: the
   master answers ``+CONTINUE`` (the stream resumes from its backlog) or ``+FULLRESYNC <replid>
   <offset>`` followed by an RDB (``$<size>`` or ``$EOF:<mark>``), sending newlines while it
   prepares one;
4. the stream: the master's writes as RESP commands, ``PING`` every ``repl-ping-replica-period``
   and ``REPLCONF GETACK *`` when a client ``WAIT``\\s. The archiver answers ``REPLCONF ACK
   <offset>`` every second (the master drops a replica silent for ``repl-timeout``), and
   acknowledges only what it has written to its spool and fsynced, so a ``WAIT`` that counts
   the archiver counts a durable copy.

A replica never blocks its master: if the archiver falls behind, the master buffers up to its
``client-output-buffer-limit replica`` and then drops the link; the archiver resumes from the
backlog (``repl-backlog-size``) if it still holds the offset, else takes a new base.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from bdr.clients import redis_address
from bdr.config import RedisInstance
from bdr.errors import ReplicationRefused, ServiceUnavailable

logger = logging.getLogger(__name__)

CLIENT_NAME = "bdr-archiver"
READ_SIZE = 1 << 20
EOF_MARK = 40


def resp(*args: str | bytes) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(out)


class LinkLost(ConnectionError):
    """The replication link dropped (the master closed it, the network failed, or it went silent)."""


@dataclass(frozen=True, slots=True)
class Sync:
    """The master's answer to PSYNC: a full resync (``offset`` of its RDB) or a continued stream."""

    full: bool
    replid: str
    offset: int
    """FULLRESYNC: the offset the RDB is at; CONTINUE: the offset the stream goes on from."""


class ReplicationLink:
    """One replication connection to a Redis instance (see the module docstring)."""

    def __init__(self, instance: RedisInstance, timeout: float = 60.0) -> None:
        self.instance = instance
        self.timeout = timeout
        self.host, self.port, _ = redis_address(instance.url)
        self._sock: socket.socket | None = None
        self._buffer = b""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # --- connection ---------------------------------------------------------------------------

    def open(self) -> None:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise ServiceUnavailable(service="Redis", address=self.address, detail=str(exc)) from exc
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock: socket.socket = raw
        tls = self.instance.tls
        if tls.enabled or self.instance.url.startswith("rediss://"):
            context = ssl.create_default_context(cafile=tls.ca_file)
            if tls.cert_file:
                context.load_cert_chain(tls.cert_file, tls.key_file)
            if not tls.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(raw, server_hostname=self.host)
        self._sock = sock
        self._buffer = b""

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise LinkLost(f"sending to {self.address}: {exc}") from exc

    def _fill(self) -> None:
        assert self._sock is not None
        try:
            chunk = self._sock.recv(READ_SIZE)
        except TimeoutError as exc:
            raise LinkLost(f"{self.address} sent nothing for {self.timeout:.0f}s") from exc
        except OSError as exc:
            raise LinkLost(f"reading from {self.address}: {exc}") from exc
        if not chunk:
            raise LinkLost(f"{self.address} closed the replication link")
        self._buffer += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            self._fill()
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line.lstrip(b"\n")  # the newlines a master sends while it prepares a full sync

    def _reply(self, what: str) -> bytes:
        line = self._line()
        if line.startswith(b"-"):
            text = line[1:].decode(errors="replace")
            fix = ("give bdr a user allowed to replicate (ACL: +psync +replconf +ping) or the right password"
                   if text.startswith(("NOAUTH", "WRONGPASS", "NOPERM")) else "see the Redis log")
            raise ReplicationRefused(name=self.instance.name, detail=f"{what}: {text}", fix=fix)
        return line

    # --- the handshake ------------------------------------------------------------------------

    def handshake(self) -> None:
        """AUTH, CLIENT SETNAME, REPLCONF capa (see the module docstring)."""
        password = self.instance.password()
        if password:
            auth = ("AUTH", self.instance.username, password) if self.instance.username else ("AUTH", password)
            self._send(resp(*auth))
            self._reply("AUTH")
        self._send(resp("CLIENT", "SETNAME", CLIENT_NAME))
        if self._line().startswith(b"-"):  # an ACL without +client: the name is only a courtesy
            logger.debug("Redis %s refused CLIENT SETNAME for the archiver", self.instance.name)
        self._send(resp("REPLCONF", "capa", "eof", "capa", "psync2"))
        self._reply("REPLCONF capa")

    def psync(self, replid: str | None, offset: int | None) -> Sync:
        """``PSYNC replid offset+1`` (go on after ``offset``), or ``PSYNC ? -1`` when ``replid`` is None."""
        if replid is None or offset is None:
            self._send(resp("PSYNC", "?", "-1"))
        else:
            self._send(resp("PSYNC", replid, str(offset + 1)))
        while True:
            line = self._reply("PSYNC")
            if line.strip():
                break
        words = line.decode(errors="replace").strip().lstrip("+").split()
        if words and words[0] == "FULLRESYNC" and len(words) == 3:
            return Sync(True, words[1], int(words[2]))
        if words and words[0] == "CONTINUE":
            assert offset is not None
            return Sync(False, words[1] if len(words) > 1 else str(replid), offset)
        raise ReplicationRefused(name=self.instance.name, detail=f"unexpected answer to PSYNC: {line[:80]!r}",
                                 fix="is it a Redis server (2.8 or later)?")

    def read_rdb(self, out: BinaryIO, progress: Callable[[int], None] | None = None) -> int:
        """The full sync's RDB into ``out``; its size. The stream's first bytes stay buffered for :meth:`recv`."""
        while True:
            line = self._line().lstrip(b"\n")
            if line.startswith(b"$"):
                break
            if line.startswith(b"-"):
                raise ReplicationRefused(name=self.instance.name, detail=line[1:].decode(errors="replace"),
                                         fix="see the Redis log (a failed BGSAVE for the full sync?)")
        size = 0
        if line.startswith(b"$EOF:"):
            mark = line[5:5 + EOF_MARK]
            while True:
                end = self._buffer.find(mark)
                if end >= 0:
                    out.write(self._buffer[:end])
                    size += end
                    self._buffer = self._buffer[end + len(mark):]
                    break
                keep = len(mark) - 1
                if len(self._buffer) > keep:
                    out.write(self._buffer[:-keep])
                    size += len(self._buffer) - keep
                    self._buffer = self._buffer[-keep:]
                    if progress is not None:
                        progress(size)
                self._fill()
        else:
            remaining = int(line[1:])
            while remaining:
                if not self._buffer:
                    self._fill()
                chunk = self._buffer[:remaining]
                self._buffer = self._buffer[len(chunk):]
                out.write(chunk)
                remaining -= len(chunk)
                size += len(chunk)
                if progress is not None:
                    progress(size)
        return size

    # --- the stream ---------------------------------------------------------------------------

    def recv(self, wait: float) -> bytes | None:
        """The stream's next bytes, or None when none came within ``wait`` seconds; :class:`LinkLost` when it
        dropped."""
        if self._buffer:
            data, self._buffer = self._buffer, b""
            return data
        assert self._sock is not None
        self._sock.settimeout(wait)
        try:
            chunk = self._sock.recv(READ_SIZE)
        except TimeoutError:
            return None
        except ssl.SSLWantReadError:
            return None
        except OSError as exc:
            raise LinkLost(f"reading from {self.address}: {exc}") from exc
        finally:
            if self._sock is not None:
                self._sock.settimeout(self.timeout)
        if not chunk:
            raise LinkLost(f"{self.address} closed the replication link")
        return chunk

    def ack(self, offset: int) -> None:
        """``REPLCONF ACK <offset>``: the archiver holds every byte up to ``offset``."""
        self._send(resp("REPLCONF", "ACK", str(offset)))

