"""A small but realistic dataset of the agent backend, for the demo, tests and drills.

Qdrant holds the embeddings: ``documents`` (the knowledge base, 384-d like MiniLM) and
``memories`` (agent memories), with payloads a filter can select (``tenant``).

What the backend keeps in Redis: user sessions (hashes with a TTL), RBAC roles and
permissions (sets and hashes), response caches (strings with a TTL), user profiles
(``user:<id>`` hashes) and conversation streams (``conversation:<id>``, with a consumer
group of the agents that read them).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import warnings
from dataclasses import dataclass

import redis
from qdrant_client import QdrantClient

ROLES = {
    "admin": ["agents:*", "users:*", "billing:*", "audit:read"],
    "operator": ["agents:run", "agents:read", "users:read", "audit:read"],
    "analyst": ["agents:read", "reports:read"],
    "viewer": ["agents:read"],
}


@dataclass(frozen=True, slots=True)
class WorkloadCounts:
    users: int
    sessions: int
    caches: int
    conversations: int
    messages: int

    @property
    def keys(self) -> int:
        return self.users * 2 + self.sessions + self.caches + self.conversations + len(ROLES) + 1


def load_redis_workload(
    client: redis.Redis,
    users: int = 200,
    sessions: int = 500,
    caches: int = 300,
    conversations: int = 50,
    messages_per_conversation: int = 20,
    seed: int = 7,
    batch: int = 1000,
) -> WorkloadCounts:
    """Write the dataset with pipelines; deterministic for a given ``seed``."""
    rng = random.Random(seed)
    pipe = client.pipeline(transaction=False)
    pending = 0

    def flush(force: bool = False) -> None:
        nonlocal pending
        if pending >= batch or (force and pending):
            pipe.execute()
            pending = 0

    for role, permissions in ROLES.items():
        pipe.sadd(f"rbac:role:{role}", *permissions)
        pending += 1
    pipe.hset("rbac:meta", mapping={"version": "3", "updated_by": "bootstrap"})
    pending += 1
    for uid in range(users):
        pipe.hset(f"user:{uid}", mapping={"name": f"user {uid}", "email": f"user{uid}@example.com",
                                          "plan": rng.choice(["free", "pro", "team"])})
        pipe.sadd(f"rbac:user:{uid}:roles", rng.choice(list(ROLES)))
        pending += 2
        flush()
    for n in range(sessions):
        key = f"session:{hashlib.sha1(f'{seed}-{n}'.encode()).hexdigest()}"
        pipe.hset(key, mapping={"user": str(rng.randrange(users)), "agent": rng.choice(["planner", "coder"]),
                                "created": "2026-01-01T00:00:00Z"})
        pipe.expire(key, 3600 + rng.randrange(3600))
        pending += 2
        flush()
    for n in range(caches):
        pipe.set(f"cache:llm:{n:06d}", rng.randbytes(64), px=600_000 + rng.randrange(600_000))
        pending += 1
        flush()
    for c in range(conversations):
        key = f"conversation:{c:05d}"
        for m in range(messages_per_conversation):
            pipe.xadd(key, {"role": "user" if m % 2 == 0 else "assistant", "text": f"message {m} of {c}"})
            pending += 1
        flush()
    flush(force=True)
    for c in range(conversations):
        key = f"conversation:{c:05d}"
        with contextlib.suppress(redis.ResponseError):  # the group exists already
            client.xgroup_create(key, "agents", id="0")
        client.xreadgroup("agents", "worker-1", {key: ">"}, count=messages_per_conversation // 2)
    return WorkloadCounts(users, sessions, caches, conversations, conversations * messages_per_conversation)


def load_qdrant_workload(client: QdrantClient, documents: int = 300, memories: int = 100, dim: int = 384,
                         seed: int = 7, batch: int = 256) -> dict[str, int]:
    """The backend's vector store: ``documents`` (embeddings of the knowledge base, with tenant and
    source payloads and a keyword index on ``tenant``) and ``memories`` (per-user agent memories)."""
    import numpy as np
    from qdrant_client import models

    rng = np.random.default_rng(seed)
    tenants = ["acme", "globex", "initech", "umbrella"]
    for name, count in (("documents", documents), ("memories", memories)):
        if client.collection_exists(name):
            client.delete_collection(name)
        client.create_collection(name, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE))
        with warnings.catch_warnings():  # local mode: "payload indexes have no effect" (a server uses them)
            warnings.simplefilter("ignore", UserWarning)
            client.create_payload_index(name, "tenant", field_schema=models.PayloadSchemaType.KEYWORD)
        for start in range(0, count, batch):
            ids = list(range(start, min(count, start + batch)))
            vectors = rng.random((len(ids), dim), dtype=np.float32)
            client.upsert(name, points=[
                models.PointStruct(id=i, vector=vectors[n].tolist(),
                                   payload={"tenant": tenants[i % len(tenants)], "source": f"doc-{i}.md",
                                            "user_id": i % 97, "chunk": i % 5})
                for n, i in enumerate(ids)
            ], wait=True)
    return {"documents": documents, "memories": memories}
