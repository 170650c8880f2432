"""Which files ``bdr lint`` reads, and what each one is.

A file's kind comes from its name, the way the agent backend's checkout names them:
``redis.conf`` (also ``redis-*.conf``, ``*.redis.conf``), ``docker-compose*.yml`` /
``compose*.yaml``, ``bdr.yaml``, ``.env`` files, crontabs (``crontab``, ``*.crontab``,
``*.cron``, anything under ``cron.d/``) and systemd timers (``*.timer``, read with the
service beside them). With no paths, lint reads the current directory:
in a git checkout the files git knows about (tracked, or new and not ignored), so
``.venv``, ``node_modules`` and ignored files stay out; elsewhere a walk of four levels.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from enum import StrEnum
from pathlib import Path, PurePath

from bdr.errors import UsageError
from bdr.lint import git

MAX_WALK_DEPTH = 4
SKIP_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".mypy_cache",
                       ".ruff_cache", ".pytest_cache"})
TEMPLATE_SUFFIXES = (".example", ".sample", ".template", ".dist", ".tmpl")


class ConfigKind(StrEnum):
    REDIS_CONF = "redis.conf"
    COMPOSE = "compose"
    POLICY = "bdr.yaml"
    ENV = "env"
    CRONTAB = "crontab"
    SYSTEMD_TIMER = "systemd timer"


_PATTERNS: tuple[tuple[ConfigKind, tuple[str, ...]], ...] = (
    (ConfigKind.POLICY, ("bdr.yaml", "bdr.yml")),
    (ConfigKind.REDIS_CONF, ("redis.conf", "redis-*.conf", "redis_*.conf", "*.redis.conf", "*-redis.conf")),
    (ConfigKind.COMPOSE, ("docker-compose*.yml", "docker-compose*.yaml", "compose.yml", "compose.yaml",
                          "compose.*.yml", "compose.*.yaml")),
    (ConfigKind.ENV, (".env", ".env.*", "*.env")),
    (ConfigKind.CRONTAB, ("crontab", "*.crontab", "*.cron")),
    (ConfigKind.SYSTEMD_TIMER, ("*.timer",)),
)


def classify(path: PurePath) -> ConfigKind | None:
    """The kind of ``path`` from its name; None for files lint does not read."""
    name = path.name
    if name.endswith(TEMPLATE_SUFFIXES):
        return None
    for kind, patterns in _PATTERNS:
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return kind
    if path.parent.name == "cron.d":
        return ConfigKind.CRONTAB
    return None


def classify_explicit(path: Path) -> ConfigKind:
    """The kind of a file named on the command line (``*.conf`` counts as a redis.conf)."""
    kind = classify(path)
    if kind is None and path.suffix == ".conf":
        return ConfigKind.REDIS_CONF
    if kind is None:
        raise UsageError(
            detail=f"cannot tell what {path} is: bdr lint reads redis.conf, docker-compose*.yml, bdr.yaml, .env, "
            "crontab files and systemd *.timer units (name a crontab *.crontab or pass it with --crontab)"
        )
    return kind


def collect(paths: Sequence[Path], cwd: Path, exclude: Sequence[str] = ()) -> dict[Path, ConfigKind]:
    """The config files in ``paths`` (files or directories; the current directory when empty)."""
    found: dict[Path, ConfigKind] = {}
    for given in paths or (cwd,):
        path = given if given.is_absolute() else cwd / given
        if path.is_dir():
            for candidate in _discover(path):
                kind = classify(candidate)
                if kind is not None and not _excluded(candidate, cwd, exclude):
                    found[candidate] = kind
        elif path.is_file():
            found[path] = classify_explicit(path)
        else:
            raise UsageError(detail=f"{given}: no such file or directory")
    return dict(sorted(found.items()))


def _excluded(path: Path, cwd: Path, patterns: Sequence[str]) -> bool:
    try:
        shown = path.relative_to(cwd).as_posix()
    except ValueError:
        shown = path.as_posix()
    return any(fnmatch.fnmatch(shown, p) or fnmatch.fnmatch(path.name, p) for p in patterns)


def _discover(root: Path) -> Iterable[Path]:
    listed = git.listed_files(root)
    if listed is not None:
        return [p for p in listed if p.is_file()]
    return _walk(root)


def _walk(root: Path) -> Iterable[Path]:
    base_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if len(here.parts) - base_depth >= MAX_WALK_DEPTH:
            dirnames[:] = []
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            yield here / name
