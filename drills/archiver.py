"""The continuous archiver of a drill's production Redis, run as an operator runs it: ``bdr archive redis``.

:class:`ArchiverProcess` writes the bdr.yaml the archiver reads (the stack's repository and
production Redis, ``archive.redis.production``), starts ``bdr archive redis`` as a process of
its own (so SIGKILL is a real kill, and the archiver does not share the drill's interpreter),
waits until it streams, and reads its status (the spool's ``status.json``). The stack's
configuration gets the same ``archive:`` settings (:meth:`config`), so the drill's restores and
``bdr status`` find the archive the process writes.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bdr import api
from bdr.config import ArchiveSettings, Config

STARTUP = 60.0


class ArchiverProcess:
    """``bdr archive redis --instance production`` for a drill's stack."""

    def __init__(self, config: Config, root: Path, segment_seconds: float = 0.5, max_lag: float = 30.0) -> None:
        self.root = root
        self.settings = ArchiveSettings("production", segment_seconds=segment_seconds, max_lag=max_lag)
        self._config = dataclasses.replace(config, archive={"production": self.settings})
        self.policy = root / "archiver.yaml"
        self.log = root / "archiver.log"
        self.process: subprocess.Popen[bytes] | None = None
        instance = config.redis_instance("production")
        root.mkdir(parents=True, exist_ok=True)
        self.policy.write_text(yaml.safe_dump({
            "repository": str(config.repository_path()),
            "redis": {"production": {"url": instance.url, "password_env": instance.password_env,
                                     "username": instance.username}},
            "archive": {"redis": {"production": {"segment_seconds": f"{segment_seconds}s",
                                                 "max_lag": f"{max_lag}s"}}},
        }, sort_keys=False))

    @property
    def config(self) -> Config:
        """The stack's configuration with the archive the process writes."""
        return self._config

    def start(self) -> ArchiverProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bdr.cli.main", "--config", str(self.policy), "archive", "redis", "--instance",
                 "production"], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=os.environ.copy())
        return self

    def status(self) -> dict[str, Any]:
        return api.archiver_state(self._config, "production") or {}

    def wait(self, condition: Any, what: str, timeout: float = STARTUP) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status and status.get("pid") == (self.process.pid if self.process else None) and condition(status):
                return status
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the archiver exited ({self.process.returncode}): {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"the archiver did not {what} within {timeout:.0f}s: {self.status()}")

    def wait_streaming(self) -> dict[str, Any]:
        """Until it has a stored base and streams in real time (caught up)."""
        return self.wait(lambda s: s.get("connected") and not s.get("catching_up") and s.get("covered_until_us")
                         and s.get("bases_stored") is not None, "stream")

    def wait_archived(self, moment: float) -> dict[str, Any]:
        """Until a restore from the repository reaches ``moment`` (Unix seconds)."""
        return self.wait(lambda s: (s.get("covered_until_us") or 0) >= int(moment * 1e6), "archive that moment")

    def kill(self) -> None:
        """SIGKILL: nothing of the archiver runs after it (no seal, no upload, no status)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def midpoint_between_acks(acks: list[tuple[int, float]], moment: float) -> float:
    """A moment near ``moment`` halfway between two acknowledged writes, so each write is clearly before or after
    it (what reached the master within a millisecond of the moment is the archiver's precision, not the drill's
    question)."""
    before = [at for _seq, at in acks if at <= moment]
    after = [at for _seq, at in acks if at > moment]
    if not before or not after:
        return moment
    return (before[-1] + after[0]) / 2
