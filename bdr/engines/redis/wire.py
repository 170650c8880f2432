"""Bursts of pipelined commands on one redis-py connection, at a million commands a few seconds.

redis-py's ``pipeline()`` costs several microseconds per command: it packs arguments in
Python and wraps every reply. Copying a million keys needs less. A :class:`Wire` packs with
hiredis (``hiredis.pack_command``), sends a whole batch with one ``sendall`` and reads the
replies straight off the connection's hiredis reader. Error replies come back as
``redis.ResponseError`` values, one per command, never raised, so one refused key does not
hide the answers for the others. Without hiredis everything still works, slower, through
redis-py's public packing and reading.

Credentials, TLS and ``SELECT`` are redis-py's business: a wire borrows a connection of the
client's pool, already authenticated, and gives it back (dropped after an error, so a
half-read reply can never reach the next user).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import redis
from redis.connection import Connection

_hiredis_pack: Callable[..., bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis is a dependency; keep working without it
    _hiredis_pack = None

try:  # the "reply incomplete" marker redis-py gives its hiredis reader; without it, the public slow path
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _INCOMPLETE
except ImportError:  # pragma: no cover - another redis-py layout
    _INCOMPLETE = None


class Wire:
    """One connection, used for packed bursts of commands and reading their replies in order."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        parser = getattr(conn, "_parser", None)
        self._reader = getattr(parser, "_reader", None)
        fast = self._reader is not None and _INCOMPLETE is not None and hasattr(parser, "read_from_socket")
        self._parser = parser if fast else None

    def pack(self, *args: Any) -> bytes:
        if _hiredis_pack is not None:
            return bytes(_hiredis_pack(args))
        return b"".join(self.conn.pack_command(*args))

    def send(self, packed: Sequence[bytes]) -> None:
        """Send packed commands in one write."""
        if packed:
            self.conn.send_packed_command([b"".join(packed)], check_health=False)

    def reply(self) -> Any:
        """The next reply; an error reply is returned as a ``redis.ResponseError``, not raised."""
        if self._parser is None:
            try:
                return self.conn.read_response()
            except redis.ResponseError as exc:
                return exc
        reader = self._reader
        assert reader is not None
        try:
            response = reader.gets()
            while response is _INCOMPLETE:
                self._parser.read_from_socket()
                response = reader.gets()
        except OSError as exc:
            raise redis.ConnectionError(f"connection lost while reading replies: {exc}") from exc
        if isinstance(response, redis.ConnectionError):
            raise response
        return response

    def replies(self, count: int) -> list[Any]:
        return [self.reply() for _ in range(count)]


@contextlib.contextmanager
def wire(client: redis.Redis) -> Iterator[Wire]:
    """A :class:`Wire` on a connection of ``client``'s pool, given back after the block."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        yield Wire(conn)
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)


def call_many(client: redis.Redis, commands: Iterable[Sequence[Any]], burst: int = 64) -> list[Any]:
    """Run ``commands`` pipelined, ``burst`` at a time; their replies in order (errors as values)."""
    out: list[Any] = []
    with wire(client) as line:
        pending: list[bytes] = []
        for command in commands:
            pending.append(line.pack(*command))
            if len(pending) >= burst:
                line.send(pending)
                out += line.replies(len(pending))
                pending = []
        line.send(pending)
        out += line.replies(len(pending))
    return out
