"""Selective restore: copy the keys that match a pattern from a backup into a live Redis.

The runbook's "accidental deletion" scenario (``DEL user:*`` at 3 a.m.). The backup is
loaded into a private temporary redis-server (:mod:`.temporary`); the matching keys are
listed (in one database, or in every database, each key going back into the
database it came from) and copied into the live target with ``DUMP`` + ``PTTL`` ->
``RESTORE``. Every type is copied whole, streams with their consumer groups and pending
entries included, and a key keeps its remaining time to live, to the millisecond. Nothing
else in the target is touched.

A key that exists in the target too is a conflict; ``conflict`` says what to do:

- ``fail`` (the default): every matching key is looked up in the target *before* anything
  is written; if any exists, :class:`~bdr.errors.SelectionConflict` is raised and nothing
  has changed.
- ``skip``: the live key wins. ``RESTORE`` without ``REPLACE`` refuses it atomically, key
  by key, so a key the application creates during the copy is never overwritten either.
- ``replace``: the backup wins; a safety backup of the target is taken first when any
  matching key exists there, so the overwritten values can be got back.

Counts (``RestoreResult.counts``): ``matched`` = ``copied`` (new keys) + ``replaced`` +
``skipped`` + ``expired`` (its TTL ran out between finding and copying the key) +
``conflicts`` (only when keys are created in the target during a ``fail`` copy: they are
left as they are and the result fails its check). ``--dry-run`` stops after
finding and counting and writes nothing.

Speed: one Lua call per batch reads every key's DUMP and PTTL from the temporary server at
one instant; the target gets the batch as one burst of pipelined ``RESTORE`` commands
while the next batch is being read, so both servers and bdr work at the same time. This
beats ``MIGRATE ... COPY`` from the temporary server (which reads the target's replies a
byte at a time, and cannot speak TLS): see ``bench/redis_backup.py``. TTLs are sent
relative (clocks of the two hosts may differ), minus the time the batch spent in bdr.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from bdr.clients import redis_client, redis_errors
from bdr.config import Config, RedisInstance
from bdr.engines.base import Check, Engine, RestoreRequest, RestoreResult, safety_backup
from bdr.engines.redis.temporary import temporary_instance
from bdr.engines.redis.wire import Wire, call_many, wire
from bdr.engines.runbook import StepOutcome
from bdr.engines.selection import Conflict, RedisSelection
from bdr.errors import NothingToRestore, SelectionConflict, ServiceError, UsageError
from bdr.repository import Repository, extract_set
from bdr.runtime.process import RedisProcess
from bdr.safety.journal import Journal, JournalEntry

logger = logging.getLogger(__name__)

EXISTS_BATCH = 5_000
FIRST_BATCH = 200
MAX_BATCH = 2_000
BATCH_BYTES = 32 << 20
"""Target size of one batch's DUMP payloads: big keys make small batches."""
VERIFY_MIN_TTL_MS = 60_000
"""Copied keys that expire sooner than this are not expected to be there when the copy is checked."""
EXAMPLES = 5

ClientFor = Callable[[int], redis.Redis]
"""A client for database ``n`` of a server."""

DUMP_BATCH = """
local out = {}
for i, key in ipairs(KEYS) do
  out[2 * i - 1] = redis.call('DUMP', key)
  out[2 * i] = redis.call('PTTL', key)
end
return out
"""


@dataclass(frozen=True, slots=True)
class KeySelection:
    """Which keys to restore and what to do with those that exist in the target."""

    pattern: str
    db: int | None
    conflict: Conflict
    dry_run: bool = False

    @classmethod
    def from_request(cls, request: RestoreRequest) -> KeySelection:
        selection = RedisSelection.expect(request.selection, "redis")
        if not selection.keys:
            raise UsageError(detail="a selective Redis restore needs a key pattern: --keys 'user:*'")
        return cls(selection.keys, selection.db, Conflict.of(request.conflict), request.dry_run)

    def describe(self) -> str:
        where = f"db {self.db}" if self.db is not None else "all dbs"
        return f"{self.pattern!r} in {where}"


@dataclass(slots=True)
class CopyCounts:
    """What happened to the matching keys (see the module docstring)."""

    matched: int = 0
    copied: int = 0
    replaced: int = 0
    skipped: int = 0
    expired: int = 0
    conflicts: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "matched": self.matched,
            "copied": self.copied,
            "replaced": self.replaced,
            "skipped": self.skipped,
            "conflicts": self.conflicts,
            "expired": self.expired,
        }


@dataclass(slots=True)
class DbPlan:
    """The matching keys of one database and how many of them exist in the target."""

    db: int
    keys: list[bytes]
    existing: int = 0
    durable: list[bytes] = field(default_factory=list)
    """Keys written to the target that should still be there when the copy is checked."""


def list_keys(client: redis.Redis, pattern: str) -> list[bytes]:
    """Every key of the client's database matching ``pattern``, each once.

    ``KEYS`` is fine here, and twice as fast as ``SCAN``: it runs on the private temporary
    server, where blocking it for a moment harms no one, and it never repeats a key.
    """
    return cast(list[bytes], client.keys(pattern))  # clients do not decode


def count_existing(client: redis.Redis, keys: Sequence[bytes]) -> int:
    """How many of ``keys`` exist in the client's database (pipelined multi-key EXISTS)."""
    replies = call_many(client, (("EXISTS", *keys[i:i + EXISTS_BATCH]) for i in range(0, len(keys), EXISTS_BATCH)))
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            raise reply
    return sum(int(r) for r in replies)


def existing_examples(client: redis.Redis, keys: Sequence[bytes], limit: int = EXAMPLES) -> list[bytes]:
    """Up to ``limit`` of ``keys`` that exist in the client's database, for an error message."""
    examples: list[bytes] = []
    for i in range(0, len(keys), EXISTS_BATCH):
        batch = keys[i:i + EXISTS_BATCH]
        if not client.exists(*batch):
            continue
        replies = call_many(client, (("EXISTS", key) for key in batch), burst=EXISTS_BATCH)
        examples += [key for key, there in zip(batch, replies, strict=True) if there == 1]
        if len(examples) >= limit:
            break
    return examples[:limit]


def _show(key: bytes) -> str:
    return repr(key.decode("utf-8", "backslashreplace"))


@contextlib.contextmanager
def _from_backup() -> Iterator[None]:
    """Errors of the temporary server (reading the backup) are not the target's."""
    try:
        yield
    except redis.RedisError as exc:
        raise ServiceError(detail=f"the temporary redis-server holding the backup failed: {exc}") from exc


@dataclass(slots=True)
class _Burst:
    """One batch of RESTOREs on its way to the target, and what its replies will mean."""

    keys: list[bytes]
    ttls: list[int]
    packed: list[bytes]
    payload_bytes: int


class KeyCopier:
    """Copies keys of one database: Lua DUMP+PTTL batches from the source, RESTORE bursts to the target.

    Three stages overlap: while the target restores batch ``n``, the source dumps batch
    ``n + 2`` and bdr packs batch ``n + 1``. Batches shrink when keys are big
    (:data:`BATCH_BYTES`).
    """

    def __init__(self, source: redis.Redis, target: redis.Redis, conflict: Conflict, target_name: str) -> None:
        self.source = source
        self.target = target
        self.conflict = conflict
        self.target_name = target_name
        with _from_backup():
            self.script = str(source.script_load(DUMP_BATCH))

    def copy(self, plan: DbPlan, counts: CopyCounts) -> None:
        with wire(self.source) as src, wire(self.target) as dst:
            size = FIRST_BATCH
            start = 0
            batch = plan.keys[:size]
            in_flight: _Burst | None = None
            if batch:
                self._request(src, batch)
            while batch:
                with _from_backup():
                    reply = src.reply()
                    if isinstance(reply, redis.ResponseError):
                        raise reply
                read_at = time.monotonic()
                start += len(batch)
                following = plan.keys[start:start + size]
                if following:
                    self._request(src, following)
                burst = self._pack(dst, batch, reply, read_at, counts)
                if in_flight is not None:
                    self._settle(dst, in_flight, counts, plan)
                dst.send(burst.packed)
                in_flight = burst
                size = self._next_size(size, len(burst.keys), burst.payload_bytes)
                batch = following
            if in_flight is not None:
                self._settle(dst, in_flight, counts, plan)

    def _request(self, src: Wire, keys: Sequence[bytes]) -> None:
        with _from_backup():
            src.send([src.pack("EVALSHA", self.script, len(keys), *keys)])

    @staticmethod
    def _next_size(size: int, keys: int, payload_bytes: int) -> int:
        if payload_bytes <= 0 or keys == 0:
            return min(MAX_BATCH, size * 2)
        fitting = int(keys * BATCH_BYTES / payload_bytes)
        return max(1, min(MAX_BATCH, size * 2, fitting))

    def _pack(self, dst: Wire, keys: Sequence[bytes], reply: list[Any], read_at: float,
              counts: CopyCounts) -> _Burst:
        """The RESTORE commands for one batch; keys found expired are counted and left out."""
        elapsed_ms = int((time.monotonic() - read_at) * 1000)
        replace = self.conflict is Conflict.REPLACE
        pack = dst.pack
        burst = _Burst([], [], [], 0)
        expired = 0
        for key, payload, pttl in zip(keys, reply[0::2], reply[1::2], strict=True):
            if payload is None:
                expired += 1
                continue
            ttl = 0
            if pttl >= 0:
                ttl = pttl - elapsed_ms
                if ttl <= 0:
                    expired += 1
                    continue
            burst.payload_bytes += len(payload)
            if replace:
                burst.packed.append(pack("EXISTS", key))
                burst.packed.append(pack("RESTORE", key, ttl, payload, "REPLACE"))
            else:
                burst.packed.append(pack("RESTORE", key, ttl, payload))
            burst.keys.append(key)
            burst.ttls.append(ttl)
        counts.expired += expired
        return burst

    def _settle(self, dst: Wire, burst: _Burst, counts: CopyCounts, plan: DbPlan) -> None:
        """Read a burst's replies and count them; a refusal other than "key exists" stops the copy."""
        replace = self.conflict is Conflict.REPLACE
        answers = dst.replies(len(burst.packed))
        restored = answers[1::2] if replace else answers
        if restored.count(b"OK") == len(burst.keys):
            replaced = sum(answers[0::2]) if replace else 0
            counts.replaced += replaced
            counts.copied += len(burst.keys) - replaced
            plan.durable += [k for k, t in zip(burst.keys, burst.ttls, strict=True)
                             if t == 0 or t > VERIFY_MIN_TTL_MS]
            return
        existed = answers[0::2] if replace else [0] * len(burst.keys)
        first_error: tuple[bytes, redis.ResponseError] | None = None
        for key, ttl, answer, there in zip(burst.keys, burst.ttls, restored, existed, strict=True):
            if isinstance(answer, redis.ResponseError):
                if str(answer).startswith("BUSYKEY"):
                    if self.conflict is Conflict.SKIP:
                        counts.skipped += 1
                    else:
                        counts.conflicts += 1
                elif first_error is None:
                    first_error = (key, answer)
                continue
            if there:
                counts.replaced += 1
            else:
                counts.copied += 1
            if ttl == 0 or ttl > VERIFY_MIN_TTL_MS:
                plan.durable.append(key)
        if first_error is not None:
            raise ServiceError(detail=_refusal(self.target_name, *first_error, counts))


def _refusal(target: str, key: bytes, exc: redis.ResponseError, counts: CopyCounts) -> str:
    text = str(exc)
    hint = ""
    if "payload version" in text:
        hint = ("; the target runs an older Redis than the temporary server (DUMP payloads do not go to older "
                "versions): restore into a Redis of the same or a newer version")
    elif text.startswith("READONLY"):
        hint = "; the target is a replica: restore into its primary"
    elif text.startswith("OOM"):
        hint = "; the target hit maxmemory: free memory or raise maxmemory and run again (with --conflict skip)"
    done = counts.copied + counts.replaced
    return (f"Redis {target} refused RESTORE of key {_show(key)}: {text}{hint} ({done} keys were written "
            "before; run again with --conflict skip to complete)")


def _dbs_to_search(server_client: redis.Redis, db: int | None) -> list[int]:
    if db is not None:
        return [db]
    keyspace = server_client.info("keyspace")
    return sorted(int(name[2:]) for name in keyspace if name.startswith("db") and name[2:].isdigit())


def find_keys(server: redis.Redis, source_for: ClientFor, target_for: ClientFor, selection: KeySelection,
              counts: CopyCounts) -> list[DbPlan]:
    """List the matching keys of every database of the selection; count those that exist in the target.

    Keys whose TTL ran out before they were listed are not in the backup any more, as far as a
    restore is concerned; those that run out from now on are counted ``expired`` by the copy.
    """
    plans: list[DbPlan] = []
    with _from_backup():
        dbs = _dbs_to_search(server, selection.db)
    for db in dbs:
        with _from_backup():
            keys = list_keys(source_for(db), selection.pattern)
        if keys:
            plans.append(DbPlan(db, keys, existing=count_existing(target_for(db), keys)))
    counts.matched = sum(len(p.keys) for p in plans)
    return plans


def _conflict_error(plans: list[DbPlan], target_for: ClientFor, target: RedisInstance) -> SelectionConflict:
    existing = sum(p.existing for p in plans)
    examples: list[str] = []
    for plan in plans:
        if plan.existing and len(examples) < EXAMPLES:
            found = existing_examples(target_for(plan.db), plan.keys, EXAMPLES - len(examples))
            examples += [f"{_show(k)} (db {plan.db})" for k in found]
    return SelectionConflict(count=existing, what="matching keys", target=f"Redis {target.name}",
                             examples=", ".join(examples) or "?")


def _dry_run_counts(plans: list[DbPlan], conflict: Conflict, counts: CopyCounts) -> None:
    existing = sum(p.existing for p in plans)
    alive = sum(len(p.keys) for p in plans)
    counts.copied = alive - existing
    if conflict is Conflict.SKIP:
        counts.skipped = existing
    else:
        counts.replaced = existing


def verify_copy(plans: list[DbPlan], target_for: ClientFor, counts: CopyCounts) -> Check:
    """The keys just written are in the target (those about to expire are not asked for)."""
    expected = sum(len(p.durable) for p in plans)
    present = sum(count_existing(target_for(p.db), p.durable) for p in plans)
    short = counts.copied + counts.replaced - expected
    note = f" ({short} with less than {VERIFY_MIN_TTL_MS // 1000}s to live not checked)" if short else ""
    if present == expected:
        return Check("copied keys present", True, f"{present} of {expected} keys are in the target{note}")
    return Check("copied keys present", False,
                 f"only {present} of {expected} copied keys are in the target: something deleted them meanwhile{note}")


def overwrite_safety_backup(engine: Engine, request: RestoreRequest | None, target: RedisInstance,
                            conflict: Conflict, existing: int) -> tuple[str | None, StepOutcome]:
    """The safety backup step of a key copy: a backup of ``target`` when ``existing`` keys are to be replaced."""
    if conflict is not Conflict.REPLACE or not existing:
        return None, StepOutcome("nothing is overwritten", skipped=True)
    assert request is not None
    safety = safety_backup(engine, request, target.name)
    return safety.id, StepOutcome(safety.id)


def _copy(plans: list[DbPlan], selection: KeySelection, counts: CopyCounts, source_for: ClientFor,
          target_for: ClientFor, target: RedisInstance, result: RestoreResult) -> str:
    begun = time.perf_counter()
    with redis_errors(target, "restore the keys"):
        for plan in plans:
            KeyCopier(source_for(plan.db), target_for(plan.db), selection.conflict, target.name).copy(plan, counts)
    seconds = time.perf_counter() - begun
    written = counts.copied + counts.replaced
    result.facts["keys_per_second"] = round(written / seconds) if seconds > 0 else 0
    return f"{written} keys in {seconds:.2f}s"


@dataclass(slots=True)
class SelectiveRestore:
    """A selective restore through the runbook: the live instance is never stopped.

    ``fetch`` extracts the set into a work directory; ``check`` starts the temporary
    server, lists the matching keys and looks them up in the target (``--conflict fail``
    refuses here, before anything is written); ``safety backup`` only when keys will be
    overwritten (``--conflict replace``); ``replace`` copies the keys; ``verify`` checks
    they are there. A rollback puts back, from the safety set, the keys the copy
    overwrote; keys it added (which were missing) are left: removing them could drop a
    write the application made to them since. ``--resume`` copies again what is left
    (keys already copied are skipped).
    """

    config: Config
    request: RestoreRequest | None
    target_instance: RedisInstance
    result: RestoreResult
    selection: KeySelection
    engine: Engine
    """The Redis engine, for the safety backup of the keys a restore replaces."""
    work: Path | None = None
    counts: CopyCounts = field(default_factory=CopyCounts)
    plans: list[DbPlan] = field(default_factory=list)
    source: str = "redis"
    stops_service: bool = False
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)
    _server: RedisProcess | None = None

    @property
    def instance(self) -> str:
        return self.target_instance.name

    @classmethod
    def new(cls, engine: Engine, request: RestoreRequest) -> SelectiveRestore:
        selection = KeySelection.from_request(request)
        target = request.config.redis_instance(request.target)
        ref = request.backup.id if request.backup else str(request.legacy_path)
        result = RestoreResult(source="redis", ref=ref, target=target.name, steps=request.log.steps,
                               dry_run=selection.dry_run)
        return cls(request.config, request, target, result, selection, engine)

    @classmethod
    def resumed(cls, engine: Engine, request: RestoreRequest, entry: JournalEntry, result: RestoreResult
                ) -> SelectiveRestore:
        state = entry.state
        config = request.config
        name = str(state["instance"])
        target = config.redis[name] if name in config.redis else RedisInstance(name=name, url=str(state["url"]))
        conflict = Conflict(state["conflict"])
        if conflict is Conflict.FAIL:
            conflict = Conflict.SKIP  # the keys copied before the crash exist now: they are ours
        selection = KeySelection(str(state["pattern"]), state.get("db"), conflict)
        return cls(config, request, target, result, selection, engine, work=Path(state["work"]))

    def state(self) -> dict[str, Any]:
        return {"mode": "selective", "instance": self.target_instance.name, "url": self.target_instance.url,
                "pattern": self.selection.pattern, "db": self.selection.db,
                "selection": RedisSelection(self.selection.pattern, self.selection.db).to_state(),
                "conflict": str(self.selection.conflict), "work": str(self.work) if self.work else None}

    def _source_for(self, db: int) -> redis.Redis:
        assert self._server is not None
        return self._server.client(db=db, timeout=120.0)

    def _target_for(self, db: int) -> redis.Redis:
        return redis_client(self.target_instance, db=db, timeout=120.0)

    def fetch(self) -> StepOutcome:
        assert self.request is not None
        from bdr.engines.redis.restore import fetch_into

        root = Journal.at(self.config.repository_path()).root / "work"
        root.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="selective-", dir=root))
        return StepOutcome(fetch_into(self.request, self.work / "incoming"))

    def check(self) -> StepOutcome:
        assert self.work is not None
        self._server = self._stack.enter_context(temporary_instance(self.work / "incoming"))
        self.counts = CopyCounts()
        with redis_errors(self.target_instance, "look up the matching keys"):
            self.plans = find_keys(self._source_for(0), self._source_for, self._target_for, self.selection,
                                   self.counts)
            existing = sum(p.existing for p in self.plans)
            if existing and self.selection.conflict is Conflict.FAIL:
                raise _conflict_error(self.plans, self._target_for, self.target_instance)
        if self.counts.matched == 0:
            raise NothingToRestore(detail=f"no key of the backup matches {self.selection.describe()}: check the "
                                   "pattern")
        return StepOutcome(f"{self.counts.matched} keys match {self.selection.describe()}, {existing} exist in "
                           f"{self.instance} (temporary server {self._server.instance.url})")

    def dry_run(self) -> list[Check]:
        _dry_run_counts(self.plans, self.selection.conflict, self.counts)
        self.result.counts = self.counts.to_dict()
        self._facts()
        return [Check("dry run", True, f"would copy {self.counts.copied} new and "
                      f"{'replace' if self.selection.conflict is Conflict.REPLACE else 'skip'} "
                      f"{self.counts.replaced or self.counts.skipped} existing keys matching "
                      f"{self.selection.describe()} into Redis {self.instance} (dry run, nothing changed)")]

    def safety_backup(self) -> tuple[str | None, StepOutcome]:
        return overwrite_safety_backup(self.engine, self.request, self.target_instance, self.selection.conflict,
                                       sum(p.existing for p in self.plans))

    def stop(self) -> StepOutcome:
        return StepOutcome(skipped=True)

    start = stop

    def replace(self) -> StepOutcome:
        if self._server is None:  # resumed: the temporary server died with the killed run
            self.check()
        return StepOutcome(_copy(self.plans, self.selection, self.counts, self._source_for, self._target_for,
                                 self.target_instance, self.result))

    def verify(self) -> list[Check]:
        with redis_errors(self.target_instance, "answer the check of the copied keys"):
            checks = [verify_copy(self.plans, self._target_for, self.counts)]
        if self.counts.conflicts:
            checks.append(Check(
                "keys created meanwhile", False,
                f"{self.counts.conflicts} matching keys were created in {self.instance} during the copy and were left "
                "as they are; compare them with the backup, or run again with --conflict replace"))
        self.result.counts = self.counts.to_dict()
        self._facts()
        return checks

    def _facts(self) -> None:
        self.result.facts.update(pattern=self.selection.pattern, db=self.selection.db,
                                 conflict=str(self.selection.conflict))

    def rollback(self, safety_id: str | None) -> StepOutcome:
        self._close()
        if safety_id is None:
            return StepOutcome("nothing was overwritten; the keys added (missing before) are left")
        repo = self.request.safety_repo if self.request is not None else Repository.open(
            self.config.repository_path())
        safety = repo.get(safety_id)
        assert self.work is not None
        files = self.work / "rollback"
        shutil.rmtree(files, ignore_errors=True)
        extract_set(repo, safety, files, None)
        put_back = KeySelection(self.selection.pattern, self.selection.db, Conflict.REPLACE)
        counts = CopyCounts()
        with temporary_instance(files) as server:
            def source_for(db: int) -> redis.Redis:
                return server.client(db=db, timeout=120.0)

            plans = find_keys(source_for(0), source_for, self._target_for, put_back, counts)
            _copy(plans, put_back, counts, source_for, self._target_for, self.target_instance,
                  RestoreResult("redis", safety_id, self.instance, []))
        return StepOutcome(f"{counts.replaced + counts.copied} overwritten keys put back from {safety_id}")

    def _close(self) -> None:
        self._stack.close()
        self._server = None

    def finish(self) -> StepOutcome:
        self.discard()
        logger.info("selective restore of %s from %s into %s: %s", self.selection.describe(), self.result.ref,
                    self.instance, self.result.counts)
        return StepOutcome("temporary server removed")

    def discard(self) -> None:
        self._close()
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
