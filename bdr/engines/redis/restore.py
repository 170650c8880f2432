"""Restoring a whole Redis instance through the runbook: checked first, swapped atomically, journaled.

The steps (:mod:`bdr.engines.runbook` runs them, journals them and rolls back):

1. ``fetch``: the set's files (or an old script's directory / ``.tar.gz``) into a work
   directory *inside* the data directory (``.bdr-restore-<id>/``, same file system), each
   checked against the manifest;
2. ``check``: the RDB to install is chosen, converted through a temporary server when the
   backup is an AOF or a legacy file (:mod:`.prepare`), and staged with the AOF the
   instance needs; the runtime proves the instance can be started again
   (:meth:`~bdr.runtime.base.Runtime.preflight`); how it is started is recorded;
3. ``safety backup``: the live data, by an honest BGSAVE; writes are paused
   (``CLIENT PAUSE ... WRITE``) from that snapshot until the stop, so no write is
   acknowledged that the safety set lacks (they are refused when the server stops);
   a copy of the files when the server is down;
4. ``stop``: through the runtime (a supervisor is told, not raced);
5. ``replace``: each data entry exchanged atomically with its new version
   (:mod:`.swap`); the old ones are kept in the work directory;
6. ``start``: the instance starts with its *own* configuration and loads what was placed;
7. ``verify``: loading finished, the keys loaded equal the set's (``rdb_last_load_keys_loaded``),
   per-db counts, AOF as configured, a sample of keys compared by content, ``DEBUG DIGEST``
   where the server allows it; what could not be verified is said;
8. ``finish``: the old files are deleted.

A failure in 4-7 stops the server if it runs, puts the old files back (they are exactly
the data at the stop) and starts it again if it was running. After a crash,
``--resume``/``--abort`` rebuild all of this from the journal, without bdr.yaml.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bdr.config import Config, RedisInstance
from bdr.engines.base import Check, Engine, RestoreRequest, RestoreResult, safety_backup
from bdr.engines.redis.checks import Expected, verify_live
from bdr.engines.redis.info import Keyspace, PersistenceLayout
from bdr.engines.redis.live_settings import put_back_leftovers
from bdr.engines.redis.pause import WritePause
from bdr.engines.redis.prepare import choose_rdb, stage
from bdr.engines.redis.target import RedisTarget, open_target
from bdr.engines.runbook import StepOutcome
from bdr.engines.swap import DataSwap, StopAndSwap, new_work_dir, swap_fields, sweep_work_dirs
from bdr.errors import BdrError, NoRoom, NothingToBackUp, PreflightFailed, ServiceError, WouldLoseWrites
from bdr.repository import extract_set
from bdr.repository.manifest import Manifest
from bdr.runtime.base import Needs
from bdr.safety.journal import Journal, JournalEntry
from bdr.util.units import format_bytes
from bdr.util.waiting import wait_for

logger = logging.getLogger(__name__)

MARGIN_BYTES = 16 << 20
"""Room left beside the restored files for the server's own writes once it runs."""
RETURN_WATCH = 0.05
"""After the stop, how long bdr watches that nothing starts the server again (a supervisor it was not told about);
the files are checked once more right after the swap."""
_BESIDE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bdr-preflight")


# --- the restorer --------------------------------------------------------------------------------


def _instance_from_state(config: Config, state: dict[str, Any]) -> RedisInstance:
    """The instance of bdr.yaml (for its credentials), or one rebuilt from the journal."""
    name = str(state["instance"])
    if name in config.redis:
        return config.redis[name]
    return RedisInstance(name=name, url=str(state.get("url") or "redis://127.0.0.1:6379/0"))


@dataclass(slots=True)
class FullRestore(StopAndSwap):
    """A full restore of one Redis instance (see the module docstring)."""

    config: Config
    engine: Engine
    target: RedisTarget
    result: RestoreResult
    request: RestoreRequest | None = None
    expected: Expected = field(default_factory=Expected)
    pause: WritePause | None = None
    _preflight: Future[list[str]] | None = field(default=None, repr=False)
    source: str = "redis"

    @property
    def instance(self) -> str:
        return self.target.name

    @property
    def _instance(self) -> RedisInstance:
        return self.target.instance

    @classmethod
    def new(cls, engine: Engine, request: RestoreRequest) -> FullRestore:
        instance = request.config.redis_instance(request.target)
        target = open_target(instance)
        ref = request.backup.id if request.backup else str(request.legacy_path)
        result = RestoreResult(source="redis", ref=ref, target=instance.name, steps=request.log.steps,
                               dry_run=request.dry_run)
        restorer = cls(request.config, engine, target, result, request=request, was_running=target.running)
        for line in put_back_leftovers(instance, Journal.at(request.config.repository_path()).root):
            result.facts.setdefault("settings put back", []).append(line)
        return restorer

    @classmethod
    def resumed(cls, engine: Engine, request: RestoreRequest, entry: JournalEntry,
                result: RestoreResult) -> FullRestore:
        config = request.config
        state = entry.state
        instance = _instance_from_state(config, state)
        fields = swap_fields(state)
        target = open_target(instance, fields["launch"])
        if state.get("layout"):
            target.layout = PersistenceLayout.from_state(state["layout"])
        return cls(config, engine, target, result, request=request,
                   expected=Expected.from_state(state.get("expected") or {}), **fields)

    def state(self) -> dict[str, Any]:
        return {
            "instance": self._instance.name,
            "url": self._instance.url,
            "layout": self.target.layout.to_state(),
            **self.swap_state(),
            "expected": self.expected.to_state(),
        }

    # --- steps ---------------------------------------------------------------------------------

    def fetch(self) -> StepOutcome:
        assert self.request is not None
        layout = self.target.layout
        removed = sweep_work_dirs(layout.dir)
        if not layout.dir.is_dir():
            raise ServiceError(detail=f"the data directory of Redis {self.instance}, {layout.dir}, does not exist: "
                               "create it (owned by the user Redis runs as) and run again")
        self.work = new_work_dir(layout.dir, self.result.ref)
        # proving the instance can be started again does not need the set: it runs beside the fetch
        self._preflight = _BESIDE.submit(self.target.runtime.preflight, Needs(free_bytes=MARGIN_BYTES))
        what = fetch_into(self.request, self.work / "incoming")
        note = f"; removed {len(removed)} leftover work dir(s) of killed restores" if removed else ""
        return StepOutcome(what + note)

    def check(self) -> StepOutcome:
        assert self.request is not None and self.work is not None
        layout = self.target.layout
        manifest: Manifest | None = self.request.backup.manifest if self.request.backup else None
        facts = dict(manifest.facts) if manifest else {}
        legacy = str(self.request.legacy_path) if self.request.legacy_path else None
        installable = choose_rdb(self.work / "incoming", facts, manifest.method if manifest else None, self.work,
                                 legacy)
        self.expected = Expected.of(installable)
        self._check_room(layout.dir)
        pending, self._preflight = self._preflight, None
        problems = pending.result() if pending is not None else \
            self.target.runtime.preflight(Needs(free_bytes=MARGIN_BYTES))
        if problems:
            raise PreflightFailed(what=f"into Redis {self.instance}", detail="; ".join(problems))
        clear = stage(installable, layout, self.work / "new")
        self.swap = DataSwap.prepared(layout.dir, self.work, clear)
        self.launch = self.target.runtime.launch()
        shutil.rmtree(self.work / "incoming", ignore_errors=True)
        aof = f"; AOF directory {layout.appenddirname}/ with the RDB as its base" if layout.appendonly else ""
        keys = Keyspace.from_facts(self.expected.keyspace).total_keys if self.expected.keyspace else "?"
        return StepOutcome(f"{installable.origin}, {keys} keys{aof}; can be started again ({self.launch.describe()})")

    def _check_room(self, data_dir: Path) -> None:
        """The restored files are in place already (fetched beside the data); the server needs room to run."""
        info = os.statvfs(data_dir)
        free = info.f_bavail * info.f_frsize
        if free < MARGIN_BYTES:
            raise NoRoom(path=str(data_dir), free=format_bytes(free), need=format_bytes(MARGIN_BYTES),
                         name=self.instance)

    def dry_run(self) -> list[Check]:
        assert self.swap is not None
        layout = self.target.layout
        names = ", ".join([*self.swap.install, *(f"{n} (removed)" for n in self.swap.clear
                                                  if (layout.dir / n).exists())])
        keys = Keyspace.from_facts(self.expected.keyspace).total_keys if self.expected.keyspace else "?"
        return [Check("dry run", True, f"would restore {self.result.ref} into Redis {self.instance}: stop it, replace "
                      f"{names} in {layout.dir} ({keys} keys, {self.expected.origin}), start it "
                      f"({self.launch.describe() if self.launch else 'its runtime'}) and verify; (dry run, nothing "
                      "changed)")]

    def safety_backup(self) -> tuple[str | None, StepOutcome]:
        assert self.request is not None
        running = self.target.runtime.running()
        if running:
            self.pause = WritePause(self._instance)
            self.pause.begin()
            if self._holds_nothing():  # writes are held already: nothing can arrive unseen until the stop
                return None, StepOutcome(f"nothing to protect: Redis {self.instance} holds no keys and no "
                                         "functions; writes paused until the stop", skipped=True)
        try:
            safety = safety_backup(self.engine, self.request, self.instance)
        except NothingToBackUp as exc:
            self._unpause()
            return None, StepOutcome(f"nothing to protect: {exc.message}", skipped=True)
        except BaseException:
            self._unpause()
            raise
        note = f"; {self.pause.note}" if self.pause and self.pause.note else \
            ("; writes paused until the stop" if running else " (a copy of the files: Redis is down)")
        return safety.id, StepOutcome(f"{safety.id}{note}")

    def _holds_nothing(self) -> bool:
        try:
            client = self.target.runtime.client(timeout=10.0, retries=0)
            keyspace = Keyspace.from_info(client.info("keyspace"))
            functions = client.execute_command("FUNCTION", "LIST")
        except (redis.RedisError, BdrError):
            return False  # cannot tell: take the safety backup
        return keyspace.total_keys == 0 and not functions

    def _unpause(self) -> None:
        if self.pause is not None:
            self.pause.end(unpause=True)
            self.pause = None

    def stop(self) -> StepOutcome:
        runtime = self.target.runtime
        if runtime.running():
            runtime.stop(timeout=max(60.0, self._instance.save_timeout))
        if self.pause is not None:
            self.pause.end(unpause=False)
            self.pause = None
        self._not_running_again("after the stop", RETURN_WATCH)
        return StepOutcome(f"stopped ({runtime.kind})")

    def _not_running_again(self, when: str, watch: float = 0.0) -> None:
        """Nothing may start the server while bdr replaces its files (a supervisor it did not stop)."""
        runtime = self.target.runtime
        if wait_for(runtime.running, watch, 0.05) if watch else runtime.running():
            raise ServiceError(detail=f"Redis {self.instance} is running again {when}: something restarts it (a "
                               "supervisor?); bdr does not replace the files of a running server: stop it through "
                               "its supervisor (runtime: systemd or command in bdr.yaml)")

    def replace(self) -> StepOutcome:
        assert self.swap is not None
        self._not_running_again("before the files are replaced")
        swapped = self.swap.swap()
        self._not_running_again("after the files were replaced")
        return StepOutcome(f"{', '.join(swapped) or 'already done'} swapped in {self.target.layout.dir}; the old "
                           "files are kept until the restore is verified")

    def start(self) -> StepOutcome:
        runtime = self.target.runtime
        # until it is verified, no client may write to the restored data (a rollback would drop it): the
        # pause is set as soon as the server accepts a connection, while it is still loading
        self.pause = WritePause(self._instance)
        self.pause.begin_when_up()
        try:
            if not runtime.ready():
                runtime.start(timeout=self._instance.save_timeout)
        except BaseException:
            self.pause.end(unpause=False)
            self.pause = None
            raise
        self.pause.confirm()
        held = "; writes held until it is verified" if not self.pause.note else f"; {self.pause.note}"
        return StepOutcome(f"started ({runtime.kind}), data loaded{held}")

    def verify(self) -> list[Check]:
        writes = self._writes_since_start()
        checks = verify_live(self._instance, self.expected, self.target.layout, writes,
                             resumed=self.pause is None)  # resumed: the pause died with the killed bdr
        self.result.facts.update(installed_from=self.expected.origin, aof=self.target.layout.appendonly,
                                 **self.target.runtime.describe())
        return checks

    def _writes_since_start(self) -> int:
        """Writes the running (restored) server took since it started, as far as Redis tells."""
        try:
            info = self.target.runtime.client(timeout=5.0, retries=0).info("persistence")
        except (redis.RedisError, BdrError):
            return 0
        return int(info.get("rdb_changes_since_last_save", 0))

    def rollback(self, safety_id: str | None) -> StepOutcome:
        runtime = self.target.runtime
        done: list[str] = []
        touched = self.swap is not None and self.swap.touched()
        force = self.request is not None and self.request.force
        if touched and self.pause is None and runtime.running() and not force:
            writes = self._writes_since_start()
            if writes:
                raise WouldLoseWrites(detail=(
                    f"Redis {self.instance} has taken {writes} write(s) since the interrupted restore started it on "
                    f"the restored data: rolling back would lose them; keep the restored data with `bdr restore "
                    f"redis --resume --target {self.instance}`, or roll back anyway with `--abort --force`"))
        self._unpause()
        if self.swap is not None and self.swap.can_unswap():
            missing = ", ".join(self.swap.can_unswap())
            raise ServiceError(detail=f"the previous {missing} kept beside the data are gone, so they cannot be put "
                               "back" + (f"; restore the safety set: bdr restore redis {safety_id} --target "
                                         f"{self.instance}" if safety_id else ""))
        if touched:
            assert self.swap is not None
            if runtime.running():
                dropped = self._writes_since_start()
                runtime.stop(timeout=max(60.0, self._instance.save_timeout))
                done.append("stopped the restored server" + (
                    f" (it had taken {dropped} write(s) before bdr held writes back: they were made to the restored "
                    "data and are not kept)" if dropped else ""))
            back = self.swap.unswap()
            done.append(f"put the previous {', '.join(back)} back")
        elif runtime.running():
            with contextlib.suppress(redis.RedisError, BdrError):  # a pause left by a killed run
                runtime.client(timeout=5.0, retries=0).execute_command("CLIENT", "UNPAUSE")
        if self.was_running and not runtime.ready():
            runtime.start(timeout=self._instance.save_timeout)
            done.append("started it on its previous data")
        elif not self.was_running:
            done.append("left it stopped, as it was before the restore")
        if self.swap is not None:
            self.swap.discard()
        return StepOutcome("; ".join(done) or "nothing had changed")

    def finish(self) -> StepOutcome:
        self._unpause()
        with contextlib.suppress(redis.RedisError, BdrError):  # a pause left by a killed run, after a resume
            self.target.runtime.client(timeout=5.0, retries=0).execute_command("CLIENT", "UNPAUSE")
        self.remove_work()
        return StepOutcome("previous files deleted")

    def discard(self) -> None:
        self._unpause()
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)


def fetch_into(request: RestoreRequest, dest: Path) -> str:
    """The set's files (checked against the manifest), or an old script's backup unpacked, in ``dest``."""
    if request.backup is not None:
        extract_set(request.repository, request.backup, dest, request.cipher)
        return f"{len(request.backup.manifest.files)} file(s) match the manifest"
    from bdr.engines.redis.legacy import unpack_legacy

    assert request.legacy_path is not None
    data = unpack_legacy(request.legacy_path, dest.parent / "legacy")
    data.rename(dest)
    return f"old script's backup {request.legacy_path.name} unpacked (no manifest to check it against)"
