"""What a restored Redis must show, and the checks that compare it with the backup.

:class:`Expected` is what the restore installed (key counts, content digest and its key
sample, ``DEBUG DIGEST`` where one was recorded); :func:`verify_live` compares the running
server with it. What Redis loaded from the placed files (``rdb_last_load_keys_loaded``) is
checked exactly; counts and sampled keys allow for keys whose TTL passed since the backup;
a check that cannot be made is *not verified* (``Check.skipped``), never passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from bdr.clients import redis_client, redis_errors
from bdr.config import RedisInstance
from bdr.engines.base import Check
from bdr.engines.redis.content import sample_checks
from bdr.engines.redis.info import DIGEST_UNAVAILABLE, Keyspace, PersistenceLayout, digest
from bdr.engines.redis.prepare import Installable


@dataclass(slots=True)
class Expected:
    """What the restored instance must show once loaded."""

    keyspace: dict[str, Any] = field(default_factory=dict)
    digest: str = DIGEST_UNAVAILABLE
    content: dict[str, Any] | None = None
    origin: str = "snapshot"
    content_unavailable: str = ""

    def to_state(self) -> dict[str, Any]:
        return {"keyspace": self.keyspace, "digest": self.digest, "content": self.content, "origin": self.origin,
                "content_unavailable": self.content_unavailable}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Expected:
        return cls(dict(state.get("keyspace") or {}), str(state.get("digest", DIGEST_UNAVAILABLE)),
                   state.get("content"), str(state.get("origin", "snapshot")),
                   str(state.get("content_unavailable", "")))

    @classmethod
    def of(cls, installable: Installable) -> Expected:
        facts = installable.facts
        return cls(installable.keyspace, str(facts.get("digest", DIGEST_UNAVAILABLE)), facts.get("content"),
                   installable.origin, str(facts.get("content_unavailable", "")))


def verify_live(instance: RedisInstance, expected: Expected, layout: PersistenceLayout | None,
                writes: int = 0, resumed: bool = False) -> list[Check]:
    """The running server against what was restored: loaded, keys loaded, counts, AOF, content.

    ``writes``: writes the server took since it was started on the restored data. In a
    restore ``resumed`` after bdr was killed (its pause died with it) counts and contents may
    then differ for good reasons and are reported as not verified. Otherwise they are the
    few writes that reached the server in the instant between its start and bdr holding
    writes back: counts and sampled keys may differ by that much, no more. What Redis
    loaded from the files (``keys loaded``) is checked exactly either way.
    """
    client = redis_client(instance, timeout=60.0)
    checks: list[Check] = []
    if writes and resumed:
        with redis_errors(instance, "answer the verification"):
            checks += _loaded_checks(client, expected)
        checks.append(Check("key counts and content", True, f"not verified: the server has taken {writes} write(s) "
                            "since the restore started it (bdr was killed meanwhile)", skipped=True))
        return checks
    with redis_errors(instance, "answer the verification"):
        checks += _loaded_checks(client, expected)
        info = client.info("persistence")
        want = Keyspace.from_facts(expected.keyspace) if expected.keyspace else None
        live = Keyspace.from_info(client.info("keyspace"))
        if want is not None:
            # keys with a TTL may have expired since the backup: counts may only go down by expiries (and up by
            # the writes that arrived before the pause)
            ok = all(
                want.dbs.get(db, (0, 0))[0] - want.dbs.get(db, (0, 0))[1]
                <= live.dbs.get(db, (0, 0))[0] <= want.dbs.get(db, (0, 0))[0] + writes
                for db in set(want.dbs) | set(live.dbs)
            ) and (writes > 0 or set(live.dbs) <= set(want.dbs))
            checks.append(Check("key counts", ok, f"live {live.total_keys} keys, backup {want.total_keys}"))
        else:
            checks.append(Check("key counts", True, f"live {live.total_keys} keys; not verified: the backup "
                                "records no key counts", skipped=True))
        if layout is not None:
            aof = int(info.get("aof_enabled", 0)) == 1
            checks.append(Check("persistence", aof == layout.appendonly,
                                f"AOF {'on' if aof else 'off'}, as configured" if aof == layout.appendonly
                                else f"AOF is {'on' if aof else 'off'}, the instance is configured with appendonly "
                                f"{'yes' if layout.appendonly else 'no'}"))
        expired = {db: max(0, keys - live.dbs.get(db, (0, 0))[0]) for db, (keys, _) in want.dbs.items()} \
            if want else {}
        checks += sample_checks(lambda db: redis_client(instance, db=db, timeout=60.0), expected.content,
                                expired, expected.content_unavailable, tolerate=writes)
        if expected.digest != DIGEST_UNAVAILABLE and not writes:
            checks.append(_digest_check(client, expected.digest, live, want))
        if writes:
            checks.append(Check("writes before the hold", True, f"{writes} write(s) reached the restored server in "
                                "the instant before bdr held writes back; the checks above allow for them"))
    return checks


def _loaded_checks(client: redis.Redis, expected: Expected) -> list[Check]:
    """Loading finished, and Redis loaded as many keys from the placed files as the backup holds."""
    info = client.info("persistence")
    checks = [Check("loaded", int(info.get("loading", 0)) == 0, "loading finished")]
    want = Keyspace.from_facts(expected.keyspace) if expected.keyspace else None
    if want is not None and "rdb_last_load_keys_loaded" in info:
        loaded = int(info["rdb_last_load_keys_loaded"]) + int(info.get("rdb_last_load_keys_expired", 0))
        checks.append(Check("keys loaded", loaded == want.total_keys,
                            f"Redis loaded {loaded} keys from the restored files, the backup holds {want.total_keys}"))
    return checks


def _digest_check(client: redis.Redis, expected: str, live: Keyspace, want: Keyspace | None) -> Check:
    """Digests must be equal unless keys with a TTL expired since the backup (then they cannot be)."""
    live_digest = digest(client)
    if live_digest == DIGEST_UNAVAILABLE:
        return Check("digest", True, "not compared: the server refuses DEBUG DIGEST", skipped=True)
    if live_digest == expected:
        return Check("digest", True, f"equal ({live_digest[:16]})")
    expired = (want.total_keys if want else 0) - live.total_keys
    if expired > 0:
        return Check("digest", True, f"not compared: {expired} keys with a TTL expired since the backup",
                     skipped=True)
    return Check("digest", False, f"live {live_digest[:16]} != backup {expected[:16]}")
