"""Signals held back during a rollback: they arrive after it, and never reach the services it starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bdr.safety.signals import Interrupted, signals_as_interrupts, signals_held


def blocked_signals(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    raise AssertionError("no SigBlk line")


def test_a_service_started_during_a_rollback_still_stops_on_sigterm() -> None:
    with signals_held():
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not blocked_signals(child.pid) & (1 << (signal.SIGTERM - 1))
        child.terminate()
        assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()


def test_a_sigterm_during_the_block_arrives_after_it() -> None:
    reached_end = False
    with pytest.raises(Interrupted, match="SIGTERM"), signals_as_interrupts(), signals_held():
        os.kill(os.getpid(), signal.SIGTERM)
        reached_end = True
    assert reached_end
