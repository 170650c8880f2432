"""Key-level copy routed by hash slot: a set into a cluster of another layout, a cluster set into one node,
and ``--keys PATTERN`` across every shard.

When the files of a set cannot simply be swapped in (the target cluster has another number
of masters or other slot ranges; the target is a single node; a single node's set goes into
a cluster; only some keys are wanted), bdr copies keys, as the single-node selective restore
does (:mod:`bdr.engines.redis.selective`): each source set (every member of a cluster set,
or the one set) is loaded into a private temporary redis-server, the matching keys are
listed, and each key goes to the master that serves its hash slot
(:mod:`~bdr.engines.redis.cluster.slots`; a single-node target takes them all) through
:class:`~bdr.engines.redis.selective.KeyCopier`: ``DUMP`` + ``PTTL`` -> ``RESTORE``, every
type whole (streams with their groups), TTLs kept to the millisecond. The sources are
copied in parallel. A cluster holds only database 0: keys of other databases of a
single-node set are refused before anything is written (``--db 0`` restores db 0 only).

``--conflict`` works as in the single-node selective restore (``fail``: every key is looked
up in the target first and nothing is written when one exists; ``skip``; ``replace`` with a
safety backup of the target first: a cluster set when the target is a cluster). A restore
into another topology without ``--keys`` is the copy of every key (``*``): it adds the
set's keys to the target and deletes nothing; into an empty target (the usual case: a new
cluster, a test node) the target then holds exactly the set's keys, and the verify step
checks the total against the manifest and each member's content sample key by key.

The live target is never stopped. A rollback puts back, from the safety set, what the copy
overwrote; keys it added are left (they were missing). ``--resume`` copies what is left
(keys already there are skipped).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bdr.clients import redis_client, redis_errors
from bdr.config import Config, RedisInstance
from bdr.engines.base import Check, Engine, RestoreRequest, RestoreResult
from bdr.engines.redis.cluster.restore import each
from bdr.engines.redis.cluster.sample import copied_sample_check
from bdr.engines.redis.cluster.slots import SlotMap, key_slot
from bdr.engines.redis.cluster.topology import SLOTS, cluster_enabled, discover, node_instance
from bdr.engines.redis.info import Keyspace
from bdr.engines.redis.selective import (
    EXISTS_BATCH,
    CopyCounts,
    DbPlan,
    KeyCopier,
    KeySelection,
    count_existing,
    list_keys,
    overwrite_safety_backup,
    verify_copy,
)
from bdr.engines.redis.temporary import temporary_instance
from bdr.engines.redis.wire import call_many
from bdr.engines.runbook import StepOutcome
from bdr.engines.selection import Conflict, RedisSelection
from bdr.errors import NothingToRestore, SelectionConflict, ServiceError, UsageError
from bdr.repository import BackupSet, Repository, extract_set
from bdr.runtime.process import RedisProcess
from bdr.safety.journal import Journal, JournalEntry

logger = logging.getLogger(__name__)

EXAMPLES = 5


@dataclass(slots=True)
class Target:
    """Where the keys go: the masters of a cluster by slot, or one server."""

    instance: RedisInstance
    masters: dict[str, RedisInstance] = field(default_factory=dict)
    """A cluster's masters by address (empty: a single server)."""
    slots: SlotMap | None = None

    @property
    def is_cluster(self) -> bool:
        return self.slots is not None

    @classmethod
    def of(cls, instance: RedisInstance) -> Target:
        if not cluster_enabled(instance):
            return cls(instance)
        topology = discover(instance)
        if topology.slots_served != SLOTS:
            raise ServiceError(detail=f"Redis cluster {instance.name} serves {topology.slots_served} of {SLOTS} "
                               "slots: keys of the others would have nowhere to go; fix the cluster first "
                               "(redis-cli --cluster check)")
        masters = {s.master.address: node_instance(instance, s.master) for s in topology.shards}
        slots = SlotMap.of([(s.master.address, s.slots) for s in topology.shards])
        return cls(instance, masters, slots)

    def names(self) -> list[str]:
        return list(self.masters) if self.is_cluster else [self.instance.name]

    def client(self, name: str, db: int = 0) -> redis.Redis:
        if self.is_cluster:
            return redis_client(self.masters[name], db=0, timeout=120.0)
        return redis_client(self.instance, db=db, timeout=120.0)

    def route(self, keys: list[bytes]) -> dict[str, list[bytes]]:
        if self.slots is None:
            return {self.instance.name: keys}
        groups = self.slots.split(keys)
        if None in groups:  # pragma: no cover - checked: every slot is served
            raise ServiceError(detail=f"{len(groups[None])} keys hash to slots no master of {self.instance.name} "
                               "serves")
        return {str(k): v for k, v in groups.items()}

    def describe(self) -> str:
        if self.is_cluster:
            return f"Redis cluster {self.instance.name} ({len(self.masters)} masters)"
        return f"Redis {self.instance.name}"

    def keys(self) -> int:
        return sum(int(self.client(n).dbsize()) if self.is_cluster else
                   Keyspace.from_info(self.client(n).info("keyspace")).total_keys for n in self.names())


@dataclass(slots=True)
class Source:
    """One set the keys come from (a member of a cluster set, or a single-node set) and its plans."""

    label: str
    backup: BackupSet
    plans: list[tuple[str, DbPlan]] = field(default_factory=list)
    """(target name, the keys of one db going there)."""
    counts: CopyCounts = field(default_factory=CopyCounts)
    server: RedisProcess | None = None
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def client(self, db: int) -> redis.Redis:
        assert self.server is not None
        return self.server.client(db=db, timeout=120.0)

    def close(self) -> None:
        self.stack.close()
        self.server = None


def sources_of(repo: Repository, backup: BackupSet) -> list[Source]:
    """Every member of a cluster set (shard order), or the set itself."""
    shards = (backup.manifest.facts.get("cluster") or {}).get("shards") if backup.manifest.children else None
    if not shards:
        return [Source(backup.id, backup)]
    return [Source(f"shard {s['index']}", repo.get(str(s["member"]), "redis")) for s in shards]


def _total(counts: list[CopyCounts]) -> CopyCounts:
    out = CopyCounts()
    for c in counts:
        out.matched += c.matched
        out.copied += c.copied
        out.replaced += c.replaced
        out.skipped += c.skipped
        out.expired += c.expired
        out.conflicts += c.conflicts
    return out


@dataclass(slots=True)
class ClusterCopy:
    """The key-level copy through the runbook (see the module docstring)."""

    config: Config
    request: RestoreRequest | None
    target_instance: RedisInstance
    result: RestoreResult
    selection: KeySelection
    whole: bool
    engine: Engine
    """The Redis engine, for the safety backup of the keys a copy replaces."""
    work: Path | None = None
    sources: list[Source] = field(default_factory=list)
    target: Target | None = None
    target_was_empty: bool = False
    source: str = "redis"
    stops_service: bool = False
    _loader: ThreadPoolExecutor | None = field(default=None, repr=False)

    @property
    def instance(self) -> str:
        return self.target_instance.name

    @property
    def counts(self) -> CopyCounts:
        return _total([s.counts for s in self.sources])

    # --- building it ---------------------------------------------------------------------------

    @classmethod
    def new(cls, engine: Engine, request: RestoreRequest, selection: KeySelection, whole: bool) -> ClusterCopy:
        if request.backup is None:
            raise UsageError(detail="a restore into a Redis cluster needs a backup set, not an old script's backup: "
                             "restore it into a single instance first, then back that up")
        target = request.config.redis_instance(request.target)
        result = RestoreResult(source="redis", ref=request.backup.id, target=target.name, steps=request.log.steps,
                               dry_run=selection.dry_run)
        copy = cls(request.config, request, target, result, selection, whole, engine)
        copy.sources = sources_of(request.repository, request.backup)
        return copy

    @classmethod
    def resumed(cls, engine: Engine, request: RestoreRequest, entry: JournalEntry, result: RestoreResult
                ) -> ClusterCopy:
        state = entry.state
        name = str(state["instance"])
        target = request.config.redis[name] if name in request.config.redis else \
            RedisInstance(name=name, url=str(state["url"]))
        conflict = Conflict(state["conflict"])
        if conflict is Conflict.FAIL:
            conflict = Conflict.SKIP  # the keys copied before the crash exist now: they are ours
        selection = KeySelection(str(state["pattern"]), state.get("db"), conflict)
        copy = cls(request.config, request, target, result, selection, bool(state.get("whole")), engine,
                   work=Path(state["work"]) if state.get("work") else None,
                   target_was_empty=bool(state.get("target_was_empty")))
        if request.backup is not None:
            copy.sources = sources_of(request.repository, request.backup)
        return copy

    def state(self) -> dict[str, Any]:
        return {"mode": "cluster-copy", "instance": self.target_instance.name, "url": self.target_instance.url,
                "pattern": self.selection.pattern, "db": self.selection.db, "whole": self.whole,
                "selection": RedisSelection(self.selection.pattern, self.selection.db).to_state() if not self.whole
                else {},
                "conflict": str(self.selection.conflict), "work": str(self.work) if self.work else None,
                "target_was_empty": self.target_was_empty, "sources": [s.backup.id for s in self.sources]}

    # --- steps ---------------------------------------------------------------------------------

    def fetch(self) -> StepOutcome:
        assert self.request is not None
        root = Journal.at(self.config.repository_path()).root / "work"
        root.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="cluster-copy-", dir=root))
        request = self.request

        def one(item: tuple[int, Source]) -> None:
            index, source = item
            extract_set(request.repository, source.backup, self._dir(index), request.cipher)

        each(list(enumerate(self.sources)), one)
        files = sum(len(s.backup.manifest.files) for s in self.sources)
        return StepOutcome(f"{len(self.sources)} set(s), {files} file(s) match their manifests")

    def _dir(self, index: int) -> Path:
        assert self.work is not None
        return self.work / f"source-{index}"

    def check(self) -> StepOutcome:
        self.target = Target.of(self.target_instance)
        target = self.target

        def load(item: tuple[int, Source]) -> None:
            index, source = item
            source.close()
            source.server = source.stack.enter_context(temporary_instance(self._dir(index)))

        # a temporary server dies with the thread that starts it: these threads live until _close()
        self._loader = self._loader or ThreadPoolExecutor(max_workers=len(self.sources),
                                                          thread_name_prefix="bdr-cluster-temporary")
        futures = [self._loader.submit(load, item) for item in enumerate(self.sources)]
        for future in futures:
            future.result()
        with redis_errors(self.target_instance, "look up the matching keys"):
            self.target_was_empty = self.whole and target.keys() == 0
            each(self.sources, self._plan)
        counts = self.counts
        existing = sum(p.existing for s in self.sources for _, p in s.plans)
        if existing and self.selection.conflict is Conflict.FAIL:
            raise self._conflict(existing)
        if counts.matched == 0:
            what = "the set holds no keys" if self.whole else f"no key of the set matches {self.selection.describe()}"
            raise NothingToRestore(detail=f"{what}: check the pattern" if not self.whole else what)
        routed = f", routed by hash slot to {len(target.masters)} masters" if target.is_cluster else ""
        return StepOutcome(f"{counts.matched} keys of {len(self.sources)} set(s) match {self.selection.describe()}"
                           f"{routed}; {existing} exist in {target.describe()}")

    def _plan(self, source: Source) -> None:
        assert self.target is not None
        target = self.target
        source.plans = []
        source.counts = CopyCounts()
        keyspace = source.client(0).info("keyspace")
        dbs = [self.selection.db] if self.selection.db is not None else sorted(
            int(name[2:]) for name in keyspace if name.startswith("db") and name[2:].isdigit())
        for db in dbs:
            keys = list_keys(source.client(db), self.selection.pattern)
            if not keys:
                continue
            if target.is_cluster and db != 0:
                raise UsageError(detail=f"{source.label} ({source.backup.id}) holds {len(keys)} matching keys in db "
                                 f"{db}, and a cluster has only db 0: restore with --db 0, or into a single instance")
            for name, group in target.route(keys).items():
                plan = DbPlan(db, group, existing=exists_count(target.client(name, db), group, target.is_cluster))
                source.plans.append((name, plan))
            source.counts.matched += len(keys)

    def _conflict(self, existing: int) -> SelectionConflict:
        assert self.target is not None
        examples: list[str] = []
        for source in self.sources:
            for name, plan in source.plans:
                if plan.existing and len(examples) < EXAMPLES:
                    found = present_examples(self.target.client(name, plan.db), plan.keys, EXAMPLES - len(examples))
                    examples += [repr(k.decode("utf-8", "backslashreplace")) + (f" (on {name})" if self.target
                                                                                .is_cluster else "") for k in found]
        return SelectionConflict(count=existing, what="matching keys", target=self.target.describe(),
                                 examples=", ".join(examples) or "?")

    def dry_run(self) -> list[Check]:
        counts = self.counts
        existing = sum(p.existing for s in self.sources for _, p in s.plans)
        self.result.counts = {**counts.to_dict(), "copied": counts.matched - existing,
                              "skipped" if self.selection.conflict is Conflict.SKIP else "replaced": existing}
        assert self.target is not None
        return [Check("dry run", True, f"would copy {counts.matched - existing} new and "
                      f"{'replace' if self.selection.conflict is Conflict.REPLACE else 'skip'} {existing} existing "
                      f"keys matching {self.selection.describe()} from {len(self.sources)} set(s) into "
                      f"{self.target.describe()} (dry run, nothing changed)")]

    def safety_backup(self) -> tuple[str | None, StepOutcome]:
        return overwrite_safety_backup(self.engine, self.request, self.target_instance, self.selection.conflict,
                                       sum(p.existing for s in self.sources for _, p in s.plans))

    def stop(self) -> StepOutcome:
        return StepOutcome(skipped=True)

    start = stop

    def replace(self) -> StepOutcome:
        if self.target is None or any(s.server is None for s in self.sources):  # resumed: the servers died with bdr
            self.check()
        begun = time.perf_counter()
        each(self.sources, self._copy)
        seconds = time.perf_counter() - begun
        counts = self.counts
        written = counts.copied + counts.replaced
        self.result.facts["keys_per_second"] = round(written / seconds) if seconds > 0 else 0
        return StepOutcome(f"{written} keys from {len(self.sources)} set(s) in {seconds:.2f}s")

    def _copy(self, source: Source) -> None:
        assert self.target is not None
        with redis_errors(self.target_instance, "restore the keys"):
            for name, plan in source.plans:
                copier = KeyCopier(source.client(plan.db), self.target.client(name, plan.db), self.selection.conflict,
                                   name)
                copier.copy(plan, source.counts)

    def verify(self) -> list[Check]:
        assert self.target is not None
        target = self.target
        checks: list[Check] = []
        with redis_errors(self.target_instance, "answer the check of the copied keys"):
            for name in target.names():
                plans = [p for s in self.sources for n, p in s.plans if n == name]
                if target.is_cluster:
                    checks.append(_present(plans, target.client(name), name))
                else:
                    checks.append(verify_copy(plans, _client_for(target, name), self.counts))
            if self.whole:
                checks += self._whole_checks()
        counts = self.counts
        if counts.conflicts:
            checks.append(Check("keys created meanwhile", False, f"{counts.conflicts} matching keys were created in "
                                f"{self.instance} during the copy and were left as they are; compare them with the "
                                "backup, or run again with --conflict replace"))
        self.result.counts = counts.to_dict()
        self.result.facts.update(pattern=self.selection.pattern, db=self.selection.db,
                                 conflict=str(self.selection.conflict), routed_by_slot=target.is_cluster,
                                 sources=[s.backup.id for s in self.sources], whole=self.whole)
        return checks

    def _whole_checks(self) -> list[Check]:
        """Into an empty target: the key total against the manifest, and every member's sample key by key."""
        assert self.target is not None and self.request is not None and self.request.backup is not None
        target = self.target
        checks: list[Check] = []
        want = Keyspace.from_facts(dict(self.request.backup.manifest.facts.get("keyspace") or {}))
        if self.target_was_empty:
            live = target.keys()
            expired = self.counts.expired
            ok = want.total_keys - sum(e for _, e in want.dbs.values()) <= live <= want.total_keys
            checks.append(Check("key counts", ok, f"the target holds {live} keys, the set {want.total_keys}"
                                + (f" ({expired} expired since the backup)" if expired else "")))
        else:
            checks.append(Check("key counts", True, "not verified: the target held keys before the copy",
                                skipped=True))
        for source in self.sources:
            facts = source.backup.manifest.facts
            checks.append(copied_sample_check(facts.get("content"), self._owner_client, source.client(0),
                                              source.label, str(facts.get("content_unavailable", ""))))
        return checks

    def _owner_client(self, key: bytes) -> redis.Redis:
        assert self.target is not None
        if self.target.slots is None:
            return self.target.client(self.target.instance.name)
        return self.target.client(str(self.target.slots.owner(key)))

    def rollback(self, safety_id: str | None) -> StepOutcome:
        self._close()
        if safety_id is None:
            return StepOutcome("nothing was overwritten; the keys added (missing before) are left")
        assert self.request is not None and self.work is not None
        repo = self.request.safety_repo
        safety = repo.get(safety_id, "redis")
        put_back = ClusterCopy(self.config, None, self.target_instance, RestoreResult("redis", safety_id,
                               self.instance, []), KeySelection(self.selection.pattern, self.selection.db,
                                                                 Conflict.REPLACE), whole=False,
                               engine=self.engine)
        put_back.sources = sources_of(repo, safety)
        put_back.work = self.work / "rollback"
        for index, source in enumerate(put_back.sources):
            extract_set(repo, source.backup, put_back._dir(index), self.request.cipher)
        try:
            put_back.check()
            put_back.replace()
        finally:
            put_back._close()
        counts = put_back.counts
        return StepOutcome(f"{counts.replaced + counts.copied} overwritten keys put back from {safety_id}")

    def _close(self) -> None:
        for source in self.sources:
            source.close()
        if self._loader is not None:
            self._loader.shutdown(wait=True)
            self._loader = None

    def finish(self) -> StepOutcome:
        self.discard()
        return StepOutcome("temporary servers removed")

    def discard(self) -> None:
        self._close()
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)


def exists_count(client: redis.Redis, keys: list[bytes], cluster: bool) -> int:
    """How many of ``keys`` exist; on a cluster node the multi-key EXISTS goes one hash slot at a time."""
    if not cluster:
        return count_existing(client, keys)
    by_slot: dict[int, list[bytes]] = {}
    for key in keys:
        by_slot.setdefault(key_slot(key), []).append(key)
    commands = (("EXISTS", *group[i:i + EXISTS_BATCH]) for group in by_slot.values()
                for i in range(0, len(group), EXISTS_BATCH))
    replies = call_many(client, commands, burst=256)
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            raise reply
    return sum(int(r) for r in replies)


def present_examples(client: redis.Redis, keys: list[bytes], limit: int) -> list[bytes]:
    """Up to ``limit`` of ``keys`` that exist (one EXISTS per key: any node, any slot)."""
    found: list[bytes] = []
    for i in range(0, len(keys), EXISTS_BATCH):
        batch = keys[i:i + EXISTS_BATCH]
        replies = call_many(client, (("EXISTS", key) for key in batch), burst=EXISTS_BATCH)
        found += [key for key, there in zip(batch, replies, strict=True) if there == 1]
        if len(found) >= limit:
            break
    return found[:limit]


def _client_for(target: Target, name: str) -> ClientFor:
    def client(db: int) -> redis.Redis:
        return target.client(name, db)

    return client


def _present(plans: list[DbPlan], client: redis.Redis, name: str) -> Check:
    """The keys written to one master are there (those about to expire are not asked for)."""
    expected = sum(len(p.durable) for p in plans)
    present = sum(exists_count(client, p.durable, cluster=True) for p in plans)
    return Check(f"copied keys present on {name}", present == expected,
                 f"{present} of {expected} keys are there" + ("" if present == expected else
                                                               ": something deleted them meanwhile"))


ClientFor = Callable[[int], redis.Redis]
