"""The agent backend under test: Redis, Qdrant and a configuration directory, with a workload.

:class:`Stack` starts the services on the chosen runtime (local processes by default),
writes a ``bdr.yaml`` that points bdr at them (production and a separate ``test`` target
for the monthly restore test), loads the workload for the chosen scale and hands out the
:class:`~drills.writer.AckWriter` channels for each data type.

Redis runs as the runbook configures production (AOF, ``appendfsync everysec``, the
``save 900 1 / 300 10 / 60 10000`` rules) with ``aof-load-truncated no``, so that a torn
AOF stops it instead of being silently truncated: the corruption drill needs the fault to
be visible, as a cautious production configuration makes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bdr.config import Config, FilesSource, QdrantInstance, RedisInstance
from bdr.engines.qdrant.client import Target, connect, target_of
from bdr.runtime.process import RedisProcess, spawn_redis
from bdr.workload import load_qdrant_workload, load_redis_workload
from drills.writer import AckWriter, Channel

logger = logging.getLogger(__name__)

DOCUMENT_DIM = 384
DRILL_POINT_BASE = 10_000_000
PRODUCTION_REDIS_ARGS = (
    "--appendfsync", "everysec", "--save", "900 1 300 10 60 10000", "--aof-load-truncated", "no",
    "--aof-timestamp-enabled", "yes",
)


@dataclass(frozen=True, slots=True)
class Scale:
    """How big the workload is."""

    name: str
    users: int
    vectors: int

    @property
    def redis_keys(self) -> int:
        """users + their roles, 2 sessions and 1 cache per user, a conversation per 10 users."""
        return self.users * 5 + self.users // 10


SCALES = {
    "small": Scale("small", users=300, vectors=300),
    "medium": Scale("medium", users=20_000, vectors=10_000),
    "large": Scale("large", users=200_000, vectors=100_000),
}
"""``large`` is the monthly test: ≥ 1M Redis keys (5.1 per user) and 100k vectors."""

CONFIG_FILES = {
    "docker-compose.yml": """services:
  redis:
    image: redis:7-alpine
    container_name: agentic-redis
    command: ["redis-server", "/usr/local/etc/redis/redis.conf"]
    volumes: ["redis_data:/data", "./redis.conf:/usr/local/etc/redis/redis.conf:ro"]
  qdrant:
    image: qdrant/qdrant
    container_name: agentic-qdrant
    volumes: ["qdrant_data:/qdrant/storage"]
volumes:
  redis_data: {}
  qdrant_data: {}
""",
    "redis.conf": """# Redis persistence, as in the runbook
save 900 1
save 300 10
save 60 10000
appendonly yes
appendfsync everysec
aof-use-rdb-preamble yes
""",
    "nginx.conf": "events {}\nhttp { server { listen 8080; location / { proxy_pass http://127.0.0.1:8000; } } }\n",
    "monitoring/prometheus.yml": (
        "scrape_configs:\n  - job_name: agent\n    static_configs: [{targets: ['127.0.0.1:8000']}]\n"
    ),
}
SECRET_FILES = {".env": "OPENAI_API_KEY=sk-drill-not-a-real-key\nREDIS_PASSWORD=drill-secret\n"}


@dataclass
class Stack:
    """The services of one drill, and the bdr configuration that protects them."""

    root: Path
    runtime: str
    scale: Scale
    redis: RedisProcess
    redis_test: RedisProcess
    config: Config
    config_dir: Path
    writer: AckWriter | None = None
    extra: dict[str, object] = field(default_factory=dict)

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    def start(cls, root: Path, runtime: str, scale: Scale, base: Config, key_file: Path | None = None) -> Stack:
        root.mkdir(parents=True, exist_ok=True)
        production = spawn_redis(root / "redis" / "data", name="production", appendonly=True,
                                 extra=PRODUCTION_REDIS_ARGS)
        test = spawn_redis(root / "redis-test" / "data", name="test", appendonly=True, extra=PRODUCTION_REDIS_ARGS)
        config_dir = root / "config"
        write_config_dir(config_dir)
        key = root / "backup.key"
        key.write_text(secrets.token_hex(32) + "\n")
        key.chmod(0o600)
        config = dataclasses.replace(
            base,
            path=None,
            repository=str(root / "backups"),
            redis={"production": production.instance, "test": test.instance},
            redis_default="production",
            qdrant={"production": QdrantInstance(name="production", path=str(root / "qdrant")),
                    "test": QdrantInstance(name="test", path=str(root / "qdrant-test"))},
            qdrant_default="production",
            files=FilesSource(root=str(config_dir), paths=tuple(CONFIG_FILES), secrets=tuple(SECRET_FILES)),
            encryption=dataclasses.replace(base.encryption, key_file=str(key)),
        )
        stack = cls(root, runtime, scale, production, test, config, config_dir)
        stack.extra["key_file"] = key_file
        return stack

    def stop(self) -> None:
        if self.writer is not None:
            self.writer.stop()
        for server in (self.redis, self.redis_test):
            try:
                server.stop()
            except Exception:  # a drill may leave a server broken on purpose
                logger.debug("could not stop %s cleanly; killing it", server.name)
                with contextlib.suppress(Exception):
                    server.kill()

    # --- data -----------------------------------------------------------------------------

    def load_workload(self) -> None:
        users = self.scale.users
        load_redis_workload(self.redis.client(), users=users, sessions=users * 2, caches=users,
                            conversations=max(1, users // 10))
        with connect(self.qdrant(), create=True) as client:
            load_qdrant_workload(client, documents=self.scale.vectors)

    def qdrant(self, name: str = "production") -> Target:
        return target_of(self.config, name)

    def qdrant_points(self, collection: str, name: str = "production") -> dict[object, object]:
        """Every point of ``collection`` (id -> payload and vectors), for exact comparisons."""
        points: dict[object, object] = {}
        with connect(self.qdrant(name)) as client:
            if not client.collection_exists(collection):
                return points
            offset = None
            while True:
                records, offset = client.scroll(collection, limit=1024, offset=offset, with_payload=True,
                                                with_vectors=True)
                for record in records:
                    points[record.id] = (record.payload, record.vector)
                if offset is None:
                    return points

    def vectors_channel(self) -> Channel:
        """Embeddings written into ``documents``: one open client, let go of while bdr works."""
        holder: dict[str, object] = {}

        def client() -> object:
            if "client" not in holder:
                holder["client"] = connect(self.qdrant())
                holder["open"] = holder["client"].__enter__()  # type: ignore[attr-defined]
            return holder["open"]

        def release() -> None:
            manager = holder.pop("client", None)
            holder.pop("open", None)
            if manager is not None:
                manager.__exit__(None, None, None)  # type: ignore[attr-defined]

        def write(seq: int, at: float) -> None:
            from qdrant_client import models

            vector = [((seq * 7919 + i) % 97) / 97.0 for i in range(DOCUMENT_DIM)]
            client().upsert(  # type: ignore[attr-defined]
                "documents", points=[models.PointStruct(id=DRILL_POINT_BASE + seq, vector=vector,
                                                        payload={"drill_seq": seq, "ts": at, "tenant": "drill"})],
                wait=True,
            )

        def exists(seqs: Sequence[int]) -> list[bool]:
            release()
            with connect(self.qdrant()) as reader:
                found = {p.id for p in reader.retrieve("documents", ids=[DRILL_POINT_BASE + s for s in seqs],
                                                        with_payload=False, with_vectors=False)}
            return [DRILL_POINT_BASE + s in found for s in seqs]

        return Channel("vectors", write, exists, every=5, suspend=release, resume=None)

    def redis_channels(self) -> list[Channel]:
        client = self.redis.client(timeout=2.0, retries=0)

        def write_session(seq: int, at: float) -> None:
            client.set(f"session:drill:{seq:09d}", repr(at), ex=86400)

        def write_rbac(seq: int, at: float) -> None:
            client.hset(f"rbac:grant:drill:{seq:09d}", mapping={"role": "viewer", "at": repr(at)})

        def exists(prefix: str) -> object:
            def check(seqs: Sequence[int]) -> list[bool]:
                reader = self.redis.client(timeout=10.0)
                pipe = reader.pipeline(transaction=False)
                for seq in seqs:
                    pipe.exists(f"{prefix}{seq:09d}")
                return [bool(n) for n in pipe.execute()]

            return check

        return [
            Channel("sessions", write_session, exists("session:drill:")),  # type: ignore[arg-type]
            Channel("rbac", write_rbac, exists("rbac:grant:drill:")),  # type: ignore[arg-type]
        ]

    def all_channels(self) -> list[Channel]:
        return [*self.redis_channels(), self.vectors_channel()]

    def start_writer(self, channels: list[Channel] | None = None, interval: float = 0.02) -> AckWriter:
        self.writer = AckWriter(channels if channels is not None else self.redis_channels(), interval).start()
        self.writer.wait_for_acks()
        return self.writer

    def redis_dump(self, pattern: str = "*", exclude: str | None = None) -> dict[bytes, bytes]:
        """DUMP of every key matching ``pattern`` (without ``exclude``): byte-for-byte comparison."""
        client = self.redis.client(timeout=60.0)
        keys = [k for k in client.scan_iter(match=pattern, count=1000)
                if not (exclude and redis_match(k, exclude))]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
        return dict(zip(keys, pipe.execute(), strict=True))


def redis_match(key: bytes, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(key.decode(errors="replace"), pattern)


def write_config_dir(root: Path) -> None:
    """The backend's configuration directory: compose, redis.conf, nginx.conf, monitoring/, .env (0600)."""
    for name, text in {**CONFIG_FILES, **SECRET_FILES}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / ".env").chmod(0o600)


def wipe(path: Path) -> None:
    """Delete a directory's contents (the 'all volumes deleted' disaster), keeping the directory."""
    if path.is_dir():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def redis_ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


__all__ = ["SCALES", "RedisInstance", "Scale", "Stack", "wipe", "write_config_dir"]
