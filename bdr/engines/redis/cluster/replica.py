"""A replica in a cluster restore: its data files set aside, so that it resyncs from its restored master.

A replica holds nothing of its own: it is a copy of its master. Restoring its files too
would fetch every shard twice and give a replica data the master may not serve; instead
its data files (``dump.rdb``, the AOF) are moved aside (kept for a rollback, by the same
atomic :class:`~bdr.engines.swap.DataSwap` the masters use) while it is stopped, and
it starts empty: its ``nodes.conf`` still makes it a replica of its master, which it then
loads through a full sync from the restored master. Its check is Redis's own replication:
link up, sync done, the same key counts as its master (whose writes are held back until
the restore is verified).

A rollback stops it, drops what the resync wrote, and puts its previous files back.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import redis

from bdr.clients import redis_client
from bdr.config import RedisInstance
from bdr.engines.base import Check
from bdr.engines.redis.info import Keyspace, PersistenceLayout
from bdr.engines.redis.restore import MARGIN_BYTES
from bdr.engines.redis.target import RedisTarget, open_target
from bdr.engines.runbook import StepOutcome
from bdr.engines.swap import DataSwap, StopAndSwap, new_work_dir, swap_fields, sweep_work_dirs
from bdr.errors import PreflightFailed, ServiceError
from bdr.runtime.base import Needs
from bdr.util.waiting import wait_for

LEGACY_AOF = "appendonly.aof"


@dataclass(slots=True)
class ReplicaResync(StopAndSwap):
    """One replica of a cluster restore (see the module docstring)."""

    target: RedisTarget
    master: RedisInstance

    @property
    def name(self) -> str:
        return self.target.name

    @classmethod
    def new(cls, instance: RedisInstance, master: RedisInstance) -> ReplicaResync:
        target = open_target(instance)
        return cls(target, master, was_running=target.running)

    @classmethod
    def from_state(cls, instance: RedisInstance, master: RedisInstance, state: dict[str, Any]) -> ReplicaResync:
        fields = swap_fields(state)
        target = open_target(instance, fields["launch"])
        if state.get("layout"):
            target.layout = PersistenceLayout.from_state(state["layout"])
        return cls(target, master, **fields)

    def state(self) -> dict[str, Any]:
        return {"instance": self.name, "url": self.target.instance.url, "master": self.master.url,
                "layout": self.target.layout.to_state(), **self.swap_state()}

    # --- steps ---------------------------------------------------------------------------------

    def fetch(self) -> StepOutcome:
        layout = self.target.layout
        sweep_work_dirs(layout.dir)
        self.work = new_work_dir(layout.dir, "resync")
        (self.work / "new").mkdir()
        return StepOutcome(f"replica {self.name}: resyncs from its master, nothing to fetch")

    def check(self) -> StepOutcome:
        assert self.work is not None
        problems = self.target.runtime.preflight(Needs(free_bytes=MARGIN_BYTES))
        if problems:
            raise PreflightFailed(what=f"into Redis {self.name}", detail="; ".join(problems))
        self.launch = self.target.runtime.launch()
        layout = self.target.layout
        clear = [n for n in (layout.dbfilename, layout.appenddirname, layout.appendfilename, LEGACY_AOF) if n]
        self.swap = DataSwap.prepared(layout.dir, self.work, list(dict.fromkeys(clear)))
        return StepOutcome(f"replica {self.name} can be started again ({self.launch.describe()})")

    def stop(self) -> StepOutcome:
        runtime = self.target.runtime
        if runtime.running():
            runtime.stop(timeout=max(60.0, self.target.instance.save_timeout))
        return StepOutcome(f"replica {self.name} stopped")

    def replace(self) -> StepOutcome:
        assert self.swap is not None
        if self.target.runtime.running():
            raise ServiceError(detail=f"Redis {self.name} is running again before its files are set aside: something "
                               "restarts it (a supervisor?); stop it through its supervisor")
        moved = self.swap.swap()
        return StepOutcome(f"replica {self.name}: {', '.join(moved) or 'nothing'} set aside")

    def start(self) -> StepOutcome:
        runtime = self.target.runtime
        if not runtime.ready():
            runtime.start(timeout=self.target.instance.save_timeout)
        return StepOutcome(f"replica {self.name} started empty")

    def verify(self, timeout: float) -> list[Check]:
        """Synced from its master, and holding what the master holds."""
        return self.verify_sync(self.target.instance, self.master, timeout)

    @staticmethod
    def verify_sync(replica: RedisInstance, master: RedisInstance, timeout: float) -> list[Check]:
        """``replica`` linked to ``master``, synced and loaded, with as many keys as the master."""
        client = redis_client(replica, timeout=10.0)
        name = f"replica {replica.name}"

        def synced() -> bool:
            try:
                info = client.info("replication")
                return info.get("master_link_status") == "up" and not int(info.get("master_sync_in_progress", 0)) \
                    and not int(client.info("persistence").get("loading", 0))
            except redis.RedisError:
                return False

        if not wait_for(synced, timeout, 0.05):
            return [Check(name, False, f"not synced with its master within {timeout:.0f}s")]
        return [ReplicaComparison(client, redis_client(master, timeout=10.0), name).check(timeout)]

    def stop_for_rollback(self) -> str:
        """Stop it if it runs on the restored data (before its master is rolled back: no failover meanwhile)."""
        if self.swap is not None and self.swap.touched() and self.target.runtime.running():
            self.target.runtime.stop(timeout=max(60.0, self.target.instance.save_timeout))
            return f"replica {self.name} stopped"
        return ""

    def rollback(self) -> StepOutcome:
        runtime = self.target.runtime
        done: list[str] = []
        if self.swap is not None and self.swap.touched():
            if runtime.running():
                runtime.stop(timeout=max(60.0, self.target.instance.save_timeout))
            assert self.work is not None
            resynced = self.work / "resynced"
            resynced.mkdir(exist_ok=True)
            for name in self.swap.clear:  # what the resync wrote in their place
                path = self.swap.data_dir / name
                if os.path.lexists(path) and os.path.lexists(self.swap.old / name):
                    os.replace(path, resynced / name)
            back = self.swap.unswap()
            done.append(f"replica {self.name}: previous {', '.join(back) or 'files'} put back")
        if self.was_running and not runtime.ready():
            runtime.start(timeout=self.target.instance.save_timeout)
            done.append("started again")
        self.discard()
        return StepOutcome("; ".join(done) or f"replica {self.name}: nothing had changed")

    def finish(self) -> StepOutcome:
        self.discard()
        return StepOutcome(f"replica {self.name}: previous files deleted")

    def discard(self) -> None:
        self.remove_work()


SETTLE_SECONDS = 2.0
"""How long the check looks for a moment without writes before it settles for the offset."""


@dataclass
class ReplicaComparison:
    """A synced replica's keys against its master's, read at one replication offset.

    While clients write, the master and the replica hold the same keys only at the same offset:
    the master's keyspace is read between two reads of its offset, the replica's between two of
    its own, and the counts are compared when all four agree. Under writes that never pause, a
    replica that reached the offset the master had when the check began holds everything the
    master held then; after :data:`SETTLE_SECONDS` that is the check, and it says the counts were
    not compared.
    """

    replica: redis.Redis
    master: redis.Redis
    name: str

    def check(self, timeout: float) -> Check:
        deadline = time.monotonic() + timeout
        settle = time.monotonic() + min(SETTLE_SECONDS, timeout)
        try:
            wanted = self._master_offset()
            while True:
                before = self._master_offset()
                theirs = Keyspace.from_info(self.master.info("keyspace"))
                after = self._master_offset()
                mine_before = self._replica_offset()
                mine = Keyspace.from_info(self.replica.info("keyspace"))
                mine_after = self._replica_offset()
                if before == after == mine_before == mine_after:
                    same = mine.total_keys == theirs.total_keys
                    return Check(self.name, same, f"synced from its master: {mine.total_keys} keys at offset {after}"
                                 + ("" if same else f", the master has {theirs.total_keys}"))
                now = time.monotonic()
                if mine_after >= wanted and now >= settle:
                    return Check(self.name, True, f"synced from its master up to offset {mine_after} (the master was "
                                 f"at {wanted} when the check began; writes kept arriving, so the key counts were not "
                                 "compared at one offset)")
                if now >= deadline:
                    return Check(self.name, False, f"behind its master: offset {mine_after}, the master was at "
                                 f"{wanted} {timeout:.0f}s ago")
                time.sleep(0.02)
        except redis.RedisError as exc:
            return Check(self.name, False, f"cannot compare with its master: {exc}")

    def _master_offset(self) -> int:
        return int(self.master.info("replication")["master_repl_offset"])

    def _replica_offset(self) -> int:
        return int(self.replica.info("replication").get("slave_repl_offset", -1))
