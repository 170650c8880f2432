"""What a Redis server says about itself, as manifest facts.

Key counts come from ``INFO keyspace``; the content digest from ``DEBUG DIGEST`` when the
server allows it (Redis 7 ships with ``enable-debug-command no``: the digest is then
recorded as unavailable and verification relies on key counts). Everything is read in
the same pipeline that starts the snapshot, so the facts describe exactly the data the
snapshot holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bdr.formats.redis_conf import ArgsError, split_args

DIGEST_UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Keyspace:
    """Per-db key and expire counts."""

    dbs: dict[int, tuple[int, int]]

    @property
    def total_keys(self) -> int:
        return sum(keys for keys, _ in self.dbs.values())

    def to_facts(self) -> dict[str, dict[str, int]]:
        return {str(db): {"keys": keys, "expires": expires} for db, (keys, expires) in sorted(self.dbs.items())}

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> Keyspace:
        dbs: dict[int, tuple[int, int]] = {}
        for name, value in info.items():
            if name.startswith("db") and name[2:].isdigit() and isinstance(value, dict):
                dbs[int(name[2:])] = (int(value.get("keys", 0)), int(value.get("expires", 0)))
        return cls(dbs)

    @classmethod
    def from_facts(cls, facts: dict[str, Any]) -> Keyspace:
        return cls({int(db): (int(v["keys"]), int(v.get("expires", 0))) for db, v in facts.items()})


def parse_digest(reply: Any) -> str:
    """A DEBUG DIGEST reply, or :data:`DIGEST_UNAVAILABLE` when the server refused it."""
    if isinstance(reply, Exception) or reply is None:
        return DIGEST_UNAVAILABLE
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def digest(client: redis.Redis) -> str:
    try:
        return parse_digest(client.execute_command("DEBUG", "DIGEST"))
    except redis.ResponseError:
        return DIGEST_UNAVAILABLE


class _Header:
    """A reader of an RDB file's header: its version and its AUX fields (``redis-ver``, ``ctime`` ...)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 9

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ValueError("truncated")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def length(self) -> tuple[int, int | None]:
        """(length, special encoding or None)."""
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            return first & 0x3F, None
        if kind == 1:
            return ((first & 0x3F) << 8) | self.byte(), None
        if kind == 2:
            if first == 0x80:
                return int.from_bytes(self.take(4), "big"), None
            if first == 0x81:
                return int.from_bytes(self.take(8), "big"), None
            raise ValueError(f"bad length byte {first:#x}")
        return 0, first & 0x3F

    def string(self) -> bytes:
        size, special = self.length()
        if special is None:
            return self.take(size)
        if special in (0, 1, 2):
            width = (1, 2, 4)[special]
            return str(int.from_bytes(self.take(width), "little", signed=True)).encode()
        if special == 3:
            packed, _ = self.length()
            plain, _ = self.length()
            return _lzf(self.take(packed), plain)
        raise ValueError(f"bad string encoding {special}")


def _lzf(data: bytes, size: int) -> bytes:
    """LZF decompression (short AUX values only)."""
    out = bytearray()
    i = 0
    while i < len(data):
        ctrl = data[i]
        i += 1
        if ctrl < 32:
            out += data[i:i + ctrl + 1]
            i += ctrl + 1
            continue
        length = ctrl >> 5
        if length == 7:
            length += data[i]
            i += 1
        ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        for _ in range(length + 2):
            out.append(out[ref])
            ref += 1
    return bytes(out[:size])


def rdb_aux(path: Path, limit: int = 1 << 16) -> dict[str, str]:
    """The AUX fields at the head of an RDB file (``redis-ver``, ``ctime``, ``repl-id`` ...); {} if unreadable."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit)
    except OSError:
        return {}
    if data[:5] != b"REDIS":
        return {}
    reader = _Header(data)
    fields: dict[str, str] = {}
    try:
        while reader.pos < len(data) and data[reader.pos] == 0xFA:
            reader.pos += 1
            key = reader.string().decode(errors="replace")
            fields[key] = reader.string().decode(errors="replace")
    except (ValueError, IndexError):
        pass
    return fields


def rdb_version(path: Path) -> int | None:
    """The RDB format version from a dump file's header (``REDIS0010`` → 10)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(9)
    except OSError:
        return None
    if head[:5] != b"REDIS" or not head[5:9].isdigit():
        return None
    return int(head[5:9])


LAYOUT_SETTINGS = ("dir", "dbfilename", "appendonly", "appenddirname", "appendfilename")


@dataclass(frozen=True, slots=True)
class PersistenceLayout:
    """Where a server keeps its files, whether AOF is on, and how its AOF is laid out.

    ``dir`` is always the directory *bdr* reaches (for a container: the volume on this
    host), never a path inside a container. ``multipart`` is Redis 7's AOF directory
    (``appenddirname/`` with a manifest, base and incr files); older servers keep one
    ``appendfilename`` file.
    """

    dir: Path
    dbfilename: str = "dump.rdb"
    appendonly: bool = False
    appenddirname: str = "appendonlydir"
    appendfilename: str = "appendonly.aof"
    multipart: bool = True

    @classmethod
    def from_settings(cls, settings: dict[str, str], data_dir: Path, version: str | None = None) -> PersistenceLayout:
        """From a server's effective settings (``CONFIG GET``, or its config file when it is down)."""
        major = int(version.split(".")[0]) if version and version.split(".")[0].isdigit() else 7
        return cls(
            dir=data_dir,
            dbfilename=settings.get("dbfilename") or "dump.rdb",
            appendonly=(settings.get("appendonly") or "no").lower() == "yes",
            appenddirname=settings.get("appenddirname") or "appendonlydir",
            appendfilename=settings.get("appendfilename") or "appendonly.aof",
            multipart=major >= 7,
        )

    @classmethod
    def from_server(cls, client: redis.Redis, data_dir: Path | None = None) -> PersistenceLayout:
        config = {str(k): str(v) for k, v in client.config_get("*").items()}
        version = str(client.info("server").get("redis_version", ""))
        return cls.from_settings(config, data_dir or Path(config["dir"]), version)

    def data_names(self) -> tuple[str, ...]:
        """Every name in ``dir`` that holds data Redis may load."""
        return (self.dbfilename, self.appenddirname, self.appendfilename)

    def to_state(self) -> dict[str, Any]:
        return {"dir": str(self.dir), "dbfilename": self.dbfilename, "appendonly": self.appendonly,
                "appenddirname": self.appenddirname, "appendfilename": self.appendfilename,
                "multipart": self.multipart}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PersistenceLayout:
        return cls(Path(state["dir"]), str(state["dbfilename"]), bool(state["appendonly"]),
                   str(state["appenddirname"]), str(state["appendfilename"]), bool(state.get("multipart", True)))


def aof_files(directory: Path, manifest_name: str) -> list[Path]:
    """The files a multi-part AOF manifest names (base, history-free incr files), manifest last."""
    manifest = directory / manifest_name
    names: list[str] = []
    for line in manifest.read_text().splitlines():
        try:  # Redis writes a name with spaces quoted, as in redis.conf
            fields = split_args(line)
        except ArgsError:
            fields = line.split()
        # lines look like: file appendonly.aof.1.base.rdb seq 1 type b
        attrs = dict(zip(fields[0::2], fields[1::2], strict=False))
        if "file" in attrs and attrs.get("type") in ("b", "i"):
            names.append(attrs["file"])
    return [directory / name for name in names] + [manifest]
