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


@dataclass(frozen=True, slots=True)
class PersistenceLayout:
    """Where a server keeps its files and whether AOF is on."""

    dir: Path
    dbfilename: str
    appendonly: bool
    appenddirname: str

    @classmethod
    def from_server(cls, client: redis.Redis) -> PersistenceLayout:
        config = client.config_get("*")
        return cls(
            dir=Path(str(config["dir"])),
            dbfilename=str(config.get("dbfilename") or "dump.rdb"),
            appendonly=config.get("appendonly", "no") == "yes",
            appenddirname=str(config.get("appenddirname") or "appendonlydir"),
        )

    @classmethod
    def from_args(cls, args: list[str], config_file: str | None, data_dir: str | None) -> PersistenceLayout:
        """The layout a stopped server *will* use, from its config file and command-line overrides."""
        settings: dict[str, str] = {}
        if config_file and Path(config_file).is_file():
            for raw in Path(config_file).read_text().splitlines():
                parts = raw.strip().split(None, 1)
                if len(parts) == 2 and not parts[0].startswith("#"):
                    settings[parts[0].lower()] = parts[1].strip().strip('"')
        i = 0
        while i < len(args):
            arg = args[i]
            if arg.startswith("--") and i + 1 < len(args):
                settings[arg[2:].lower()] = args[i + 1]
                i += 2
            else:
                i += 1
        return cls(
            dir=Path(data_dir or settings.get("dir", ".")),
            dbfilename=settings.get("dbfilename", "dump.rdb"),
            appendonly=settings.get("appendonly", "no") == "yes",
            appenddirname=settings.get("appenddirname", "appendonlydir"),
        )


def aof_files(directory: Path, manifest_name: str) -> list[Path]:
    """The files a multi-part AOF manifest names (base, history-free incr files), manifest last."""
    manifest = directory / manifest_name
    names: list[str] = []
    for line in manifest.read_text().splitlines():
        fields = line.split()
        # lines look like: file appendonly.aof.1.base.rdb seq 1 type b
        attrs = dict(zip(fields[0::2], fields[1::2], strict=False))
        if "file" in attrs and attrs.get("type") in ("b", "i"):
            names.append(attrs["file"])
    return [directory / name for name in names] + [manifest]
