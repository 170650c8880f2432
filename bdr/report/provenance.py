"""Who ran a drill, where, with which bdr and which policy: the facts an auditor signs under.

- the operator: ``--operator``, else the login user, else ``uid N``; never blank;
- the policy: its file, the sha256 of its bytes, and the git commit it was last committed
  in (with ``+ uncommitted changes`` when the file differs from that commit, ``not in a git
  repository`` otherwise); the embedded defaults are fingerprinted by their canonical JSON;
- the host, the bdr, Python and platform versions.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from bdr import __version__
from bdr.config import Config

EMBEDDED = "embedded defaults"


def operator_name(explicit: str | None = None) -> str:
    """``explicit`` when given (stripped), else the login user, else ``uid N``: never blank."""
    if explicit and explicit.strip():
        return explicit.strip()
    for getter in (os.getlogin, getpass.getuser):
        try:
            name = getter()
        except (OSError, KeyError):
            continue
        if name and name.strip():
            return name.strip()
    return f"uid {os.getuid()}"


def policy_targets(config: Config) -> dict[str, Any]:
    """The targets in force, in seconds: ``{"rto": {...}, "rpo": {...}}``."""
    return {"rto": dict(config.targets.rto), "rpo": dict(config.targets.rpo)}


def git_commit(path: Path) -> str:
    """The commit ``path`` was last committed in, ``+ uncommitted changes`` when it differs from it."""
    git = shutil.which("git")
    if git is None:
        return "unknown (git is not installed)"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([git, "-C", str(path.parent), *args], capture_output=True, text=True, timeout=10,
                              check=False, stdin=subprocess.DEVNULL)

    try:
        commit = run("log", "-n", "1", "--format=%H", "--", path.name)
        if commit.returncode != 0:
            return "not in a git repository"
        sha = commit.stdout.strip()
        if not sha:
            return "not committed (the file is not in git)"
        dirty = run("status", "--porcelain", "--", path.name).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git did not answer)"
    return f"{sha} + uncommitted changes" if dirty else sha


def policy_fingerprint(config: Config) -> dict[str, str]:
    """``policy_file``, ``policy_sha256`` and ``policy_git_commit`` of the policy in force."""
    if config.path is not None:
        path = Path(config.path)
        try:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            sha = f"unreadable ({exc.strerror or exc})"
        return {"policy_file": str(path), "policy_sha256": sha, "policy_git_commit": git_commit(path)}
    canonical = json.dumps(policy_targets(config), sort_keys=True)
    return {"policy_file": EMBEDDED, "policy_sha256": hashlib.sha256(canonical.encode()).hexdigest(),
            "policy_git_commit": "not applicable (embedded defaults)"}


def host_facts() -> dict[str, Any]:
    return {
        "bdr_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "ci": bool(os.environ.get("CI")),
    }
