"""A private supervisord for tests: its own config, unix socket and logs in a temp directory.

Debian's ``supervisor`` package (``apt-get install supervisor``; scripts/setup.sh installs
it), never the system's supervisord: :class:`Supervisord` writes a config with one
``[program:NAME]`` per program, starts ``supervisord -c <dir>/supervisord.conf`` (it
daemonizes) and drives it with ``supervisorctl -c <dir>/supervisord.conf``. ``shutdown``
stops it and every program it runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bdr.runtime.procfs import alive as pid_alive


def supervisord_or_skip() -> str:
    found = shutil.which("supervisord")
    if found is None or shutil.which("supervisorctl") is None:
        pytest.skip("supervisord is not installed: apt-get install supervisor (scripts/setup.sh installs it)")
    return found


@dataclass
class Supervisord:
    """One private supervisord and the programs it runs."""

    root: Path
    programs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def ctl(self) -> list[str]:
        """``supervisorctl -c <conf>``: the prefix of every command for this supervisord."""
        return ["supervisorctl", "-c", str(self.conf)]

    def add(self, name: str, command: Sequence[str], **options: str) -> None:
        settings = {"command": " ".join(command), "autorestart": "true", "startsecs": "0", "startretries": "100",
                    "stopwaitsecs": "10", "redirect_stderr": "true",
                    "stdout_logfile": str(self.root / f"{name}.log"), **options}
        self.programs[name] = settings

    def write(self) -> None:
        lines = [
            "[unix_http_server]", f"file={self.root / 'supervisor.sock'}", "chmod=0700", "",
            "[supervisord]", f"logfile={self.root / 'supervisord.log'}", f"pidfile={self.root / 'supervisord.pid'}",
            f"childlogdir={self.root}", "nodaemon=false", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "", "[supervisorctl]", f"serverurl=unix://{self.root / 'supervisor.sock'}", "",
        ]
        for name, settings in self.programs.items():
            lines += [f"[program:{name}]", *(f"{k}={v}" for k, v in settings.items()), ""]
        self.conf.write_text("\n".join(lines))

    def start(self) -> None:
        self.write()
        subprocess.run([supervisord_or_skip(), "-c", str(self.conf)], check=True, capture_output=True, timeout=30)
        deadline = time.monotonic() + 10
        while self.run("status", check=False).returncode not in (0, 3):
            if time.monotonic() > deadline:
                raise RuntimeError(f"supervisord did not answer: {(self.root / 'supervisord.log').read_text()[-500:]}")
            time.sleep(0.05)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.ctl, *args], check=check, capture_output=True, text=True, timeout=30)

    def pid_of(self, name: str) -> int | None:
        out = self.run("pid", name, check=False).stdout.strip()
        return int(out) if out.isdigit() and out != "0" else None

    def commands(self, name: str) -> Mapping[str, list[str]]:
        """The bdr.yaml ``commands:`` of ``runtime: command`` for program ``name``."""
        return {which: [*self.ctl, which, name] for which in ("start", "stop", "status")}

    def shutdown(self, fast: bool = True) -> None:
        """Stop supervisord: SIGKILL when ``fast`` (its programs, orphaned, are the caller's to kill), else
        ``supervisorctl shutdown`` (it stops them first, in about a second)."""
        pid_file = self.root / "supervisord.pid"
        pid = int(pid_file.read_text()) if pid_file.is_file() else None
        if fast and pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        else:
            self.run("shutdown", check=False)
        deadline = time.monotonic() + 15
        while pid is not None and pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)


__all__ = ["Supervisord", "supervisord_or_skip"]
