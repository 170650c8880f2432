"""Versions of the services and tools a drill ran against, for the evidence."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata


def _version_of(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def service_versions() -> dict[str, str]:
    return {
        "redis_server": _version_of(["redis-server", "--version"]),
        "qdrant_client": _package("qdrant-client"),
        "qdrant_edge": _package("qdrant-edge-py"),
        "redis_py": _package("redis"),
    }
