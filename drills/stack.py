"""The agent backend under test: Redis, Qdrant and a configuration directory, with a workload.

:class:`Stack` starts the services on the chosen runtime, writes the bdr configuration that
points bdr at them (production and a separate ``test`` target for the monthly restore
test), loads the workload for the chosen scale and hands out the
:class:`~drills.writer.AckWriter` channels for each data type.

The runtime decides how Redis lives (:data:`RUNTIMES`, one :class:`~drills.services.Services` each):
``process`` runs ``redis-server`` from the host's PATH with its data in a directory under
the drill's tmp dir; ``docker`` runs it in containers with named volumes
(:mod:`drills.containers`). Either way the configuration bdr gets is the one an operator's
bdr.yaml would hold for that runtime, so every backup, restore and repair of a drill goes
through the same runtime code as in production. Qdrant is embedded (qdrant-client local
mode) on both.

Redis runs as the runbook configures production (AOF, ``appendfsync everysec``, the
``save 900 1 / 300 10 / 60 10000`` rules) with ``aof-load-truncated no``, so that a torn
AOF stops it instead of being silently truncated: the corruption drill needs the fault to
be visible, as a cautious production configuration makes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdr import api
from bdr.config import Config, FilesSource, QdrantInstance, RedisInstance
from bdr.drill.workload import load_qdrant_workload, load_redis_workload
from bdr.registry import Registry
from drills.services import ProcessServices, RedisService, Services, ServicesKind, service_name, wipe
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


RUNTIMES: Registry[ServicesKind] = Registry("drill runtime", {"docker": "drills.containers"},
                                             attribute="ContainerServices")
"""``--dr-runtime`` name -> its :class:`Services` (``docker``'s module imported only when chosen)."""
RUNTIMES.register("process", ProcessServices)


def runtime_environment(runtime: str) -> dict[str, Any]:
    """What the run's environment records about ``runtime`` (images, engine version)."""
    return RUNTIMES.get(runtime).environment()


@dataclass
class Stack:
    """The services of one drill, and the bdr configuration that protects them."""

    root: Path
    runtime: str
    scale: Scale
    redis: RedisService
    redis_test: RedisService
    config: Config
    config_dir: Path
    services: Services
    writer: AckWriter | None = None
    extra: dict[str, object] = field(default_factory=dict)

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    def start(cls, root: Path, runtime: str, scale: Scale, base: Config) -> Stack:
        root.mkdir(parents=True, exist_ok=True)
        services = RUNTIMES.get(runtime).open(root)
        spawned: list[RedisService] = []
        try:
            spawned.append(services.spawn_redis("production", PRODUCTION_REDIS_ARGS))
            spawned.append(services.spawn_redis("test", PRODUCTION_REDIS_ARGS))
            production, test = spawned
            config_dir = root / "config"
            write_config_dir(config_dir)
            key = root / "backup.key"
            key.write_text(secrets.token_hex(32) + "\n")
            key.chmod(0o600)
        except BaseException:
            services.close(spawned)
            raise
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
        return cls(root, runtime, scale, production, test, config, config_dir, services)

    def stop(self) -> None:
        """Stop the writer and the services; on a container runtime, remove containers and volumes."""
        try:
            if self.writer is not None:
                self.writer.stop()
        finally:
            self.services.close([self.redis, self.redis_test])

    # --- faults and recovery that depend on the runtime ------------------------------------

    def lose_redis(self) -> str:
        """Production Redis's data is gone for good: its directory emptied, or its volume deleted."""
        return self.services.lose_redis(self.redis)

    def recreate_redis(self) -> str:
        """Bring back an empty production Redis as a rebuilt host would (``docker compose up -d``)."""
        return self.services.recreate_redis(self.redis)

    # --- evidence -------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The runtime, its images and each service's facts (container ids, pids, versions)."""
        return {
            "runtime": self.runtime,
            **self.services.facts(),
            "services": {
                f"redis/{self.redis.name}": self.redis.describe(),
                f"redis/{self.redis_test.name}": self.redis_test.describe(),
                "qdrant/production": {"runtime": "embedded", "engine": api.qdrant_embedded_version(),
                                      "note": self.services.qdrant_note},
            },
        }

    def record(self, evidence: dict[str, Any]) -> None:
        """Put :meth:`describe` into a drill's evidence; called again at the end, it adds the services
        as they ended when one is another one by then (a recreated container, a restarted process)."""
        facts = self.describe()
        if "services" not in evidence:
            evidence.update(facts)
        elif _identities(facts["services"]) != _identities(evidence["services"]):
            evidence["services_at_end"] = facts["services"]

    # --- data -----------------------------------------------------------------------------

    def load_workload(self) -> None:
        users = self.scale.users
        load_redis_workload(self.redis.client(), users=users, sessions=users * 2, caches=users,
                            conversations=max(1, users // 10))
        with api.qdrant_client(self.config, create=True) as client:
            load_qdrant_workload(client, documents=self.scale.vectors)

    def qdrant_path(self, name: str = "production") -> Path:
        """The directory the embedded Qdrant ``name`` keeps its storage in."""
        return api.qdrant_embedded_path(self.config, name)

    def qdrant_points(self, collection: str, name: str = "production") -> dict[object, object]:
        """Every point of ``collection`` (id -> payload and vectors), for exact comparisons."""
        points: dict[object, object] = {}
        with api.qdrant_client(self.config, name) as client:
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
                holder["client"] = api.qdrant_client(self.config)
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
            with api.qdrant_client(self.config) as reader:
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

    def fingerprint(self, *stores: str) -> dict[str, dict[str, Any]]:
        """Fingerprints of ``stores`` (``redis``, ``qdrant``, ``config``) to compare before and after a restore:
        Redis's key count and ``DEBUG DIGEST``, each collection's point count and the sha256 of its points,
        the sha256 of every configuration file."""
        out: dict[str, dict[str, Any]] = {}
        for store in stores:
            if store == "redis":
                shot = api.redis_fingerprint(self.redis.client(timeout=60.0))
                out[f"redis/{self.redis.name}"] = {"keys": shot.keys, "digest": shot.digest}
            elif store == "qdrant":
                collections: dict[str, Any] = {}
                for name in ("documents", "memories"):
                    points = self.qdrant_points(name)
                    payloads = json.dumps(sorted((str(k), v[0]) for k, v in points.items()),  # type: ignore[index]
                                          sort_keys=True, default=str)
                    collections[name] = {"points": len(points),
                                         "payload_sha256": hashlib.sha256(payloads.encode()).hexdigest(),
                                         "vector_checksum": vector_checksum(points)}
                out["qdrant/production"] = collections
            elif store == "config":
                out["config"] = {str(p.relative_to(self.config_dir)): self._file_fingerprint(p)
                                 for p in sorted(self.config_dir.rglob("*")) if p.is_file()}
            else:
                raise ValueError(f"unknown store {store!r} (known: redis, qdrant, config)")
        return out

    def _file_fingerprint(self, path: Path) -> str:
        """sha256 of a file; of a secret an HMAC under a key that lives only in this process (a plain hash of a
        secret in a report would let anyone test guesses of it), with its mode."""
        data = path.read_bytes()
        if path.name not in SECRET_FILES:
            return hashlib.sha256(data).hexdigest()
        key = self.extra.setdefault("fingerprint_key", secrets.token_bytes(32))
        assert isinstance(key, bytes)
        mac = hmac.new(key, data, hashlib.sha256).hexdigest()
        return f"secret: hmac-sha256 under a per-run key {mac[:16]}, mode {path.stat().st_mode & 0o777:o}"

    def redis_dump(self, pattern: str = "*", exclude: str | None = None) -> dict[bytes, bytes]:
        """DUMP of every key matching ``pattern`` (without ``exclude``): byte-for-byte comparison."""
        client = self.redis.client(timeout=60.0)
        keys = [k for k in client.scan_iter(match=pattern, count=1000)
                if not (exclude and redis_match(k, exclude))]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
        return dict(zip(keys, pipe.execute(), strict=True))


def vector_checksum(points: dict[object, object]) -> float:
    """A weighted sum of every vector component: equal within float32 rounding when the vectors are (an engine
    re-normalizes cosine vectors on upsert, so a restored collection's exact bytes may differ)."""
    total = 0.0
    for point in points.values():
        vector: Any = point[1]  # type: ignore[index]
        values = vector if isinstance(vector, list) else [x for v in dict(vector).values() for x in v]
        total += sum(float(x) * (i % 7 + 1) for i, x in enumerate(values))
    return total


IDENTITY_FACTS = ("container_id", "image_id", "volume", "pid", "state")
"""What makes a service another one (its version is missing merely when it is down)."""


def _identities(services: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {name: {k: v for k, v in facts.items() if k in IDENTITY_FACTS} for name, facts in services.items()}


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


__all__ = ["RUNTIMES", "SCALES", "RedisInstance", "RedisService", "Scale", "Services", "Stack", "runtime_environment",
           "service_name", "wipe", "write_config_dir"]
