"""The content digest of a Redis snapshot, taken from the RDB file itself, never from production.

``DEBUG DIGEST`` needs ``enable-debug-command`` (off by default since Redis 7) and blocks the
server for its whole run; bdr computes its own digest by parsing the RDB bdr copied
(:mod:`bdr.engines.redis.rdb`, ``bdr-rdb-1``), in a thread beside the copy, at any size. The
manifest records it (``facts.content``) with the per-db key counts read from the same
file and a small sample of keys with their hashes; a restore compares that sample with
the keys the live server loaded, and ``bdr verify`` recomputes the digest of the stored file.

This module is the engine's one door to it: :func:`digest_in_background` starts the parse
of an open file while the copy runs, :func:`keyspace_of` turns a digest into manifest key
counts, :func:`sample_checks` compares a live server with it. Where no digest can be taken
(bdr's C parser not built and a big file, an RDB type this bdr does not know), the facts
say why (``facts.content_unavailable``), and every check that would have used it says
*not verified*, never *passed*.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bdr.engines.base import Check

logger = logging.getLogger(__name__)

PYTHON_LIMIT = 8 << 20
"""Without the C parser, files up to this size are digested by the (slow) pure-Python reference."""

_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bdr-rdb-digest")


@dataclass(frozen=True, slots=True)
class Content:
    """A digest's manifest facts, or why there is none."""

    facts: dict[str, Any] | None
    unavailable: str = ""


def digest_facts(path: Path) -> Content:
    """The content digest of the RDB at ``path`` as manifest facts.

    A corrupt RDB raises (:class:`~bdr.errors.RdbCorrupt`, exit 6): a snapshot
    that does not parse is not a backup. A type bdr does not know yet, or no C parser for a
    big file, gives ``Content(None, reason)``.
    """
    from bdr.engines.redis.rdb.digest import HAVE_C, digest_file
    from bdr.errors import RdbUnsupported

    if not HAVE_C and path.stat().st_size > PYTHON_LIMIT:
        return Content(None, "bdr's RDB parser (its C extension) is not built: reinstall bdr with gcc and "
                       "python3-dev (`bash run.sh setup`)")
    try:
        result = digest_file(path)
    except RdbUnsupported as exc:
        return Content(None, exc.message)
    return Content(result.to_facts())


def digest_in_background(path: Path) -> Future[Content]:
    """Start :func:`digest_facts` of ``path`` in a worker thread (the copy goes on meanwhile)."""
    return _POOL.submit(digest_facts, path)


def record(facts: dict[str, Any], content: Content) -> None:
    """Put a digest (or why there is none) into manifest facts."""
    if content.facts is not None:
        facts["content"] = content.facts
        facts.pop("content_unavailable", None)
    else:
        facts["content_unavailable"] = content.unavailable


def keyspace_of(content: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per-db key and expire counts of a content digest, as manifest ``keyspace`` facts."""
    keys = content.get("keys") or {}
    expires = content.get("expires") or {}
    return {str(db): {"keys": int(n), "expires": int(expires.get(str(db), 0))}
            for db, n in sorted(keys.items(), key=lambda item: int(item[0])) if int(n)}


def sample_checks(client_for: Callable[[int], redis.Redis], content: dict[str, Any] | None,
                  expired: dict[int, int] | None = None, unavailable: str = "", tolerate: int = 0) -> list[Check]:
    """Compare the sampled keys of ``content`` with what the live server holds.

    ``expired`` (keys gone per db since the backup, all of them volatile) allows that many
    sampled keys per db to be missing: their TTL passed. ``tolerate``: writes the server took
    since it loaded the data; up to that many sampled keys may differ.
    """
    if not content or not content.get("sample"):
        why = unavailable or "the backup records no content digest (taken by an older bdr, or from files)"
        return [Check("content sample", True, f"not verified: {why}", skipped=True)]
    from bdr.engines.redis.rdb.live import compare_sample

    try:
        outcome = compare_sample(client_for, content)
    except redis.RedisError as exc:
        return [Check("content sample", False, f"could not read the sampled keys: {exc}")]
    if len(outcome.mismatched) > tolerate:
        return [Check("content sample", False, outcome.detail)]
    missing: dict[int, int] = {}
    for key in outcome.missing:
        missing[key.db] = missing.get(key.db, 0) + 1
    allowed = expired or {}
    unexplained = {db: n for db, n in missing.items() if n > allowed.get(db, 0)}
    if unexplained:
        return [Check("content sample", False, outcome.detail)]
    detail = outcome.detail
    if missing:
        detail += " (the missing ones had a TTL that passed since the backup)"
    return [Check("content sample", True, f"{detail}; {content.get('algorithm', 'bdr-rdb-1')} "
                  f"{str(content.get('value', ''))[:16]}")]
