"""The content sample of a set, compared key by key with a target the keys were *copied* into.

A file restore loads the backup's own expiry times, so its sampled keys must hash exactly as
the manifest says. A key-level copy re-arms each TTL on arrival (``RESTORE`` takes a relative
TTL: the hosts' clocks may differ), so a volatile key's absolute expiry moves by the copy's
latency, and with it its per-key hash (``bdr-rdb-1`` hashes the expiry). Here each sampled key
is read from the master that serves it, hashed with the expiry the backup gave it (read from
the temporary server that holds the backup), and compared with the manifest's hash; the
target's own expiry must be within :data:`TTL_SLACK_MS` of that one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from bdr.engines.base import Check
from bdr.engines.redis.rdb import canonical as cn
from bdr.engines.redis.rdb.digest import ContentDigest
from bdr.engines.redis.rdb.live import _db_client, _value

TTL_SLACK_MS = 5_000


def copied_sample_check(content: dict[str, Any] | None, target_for: Callable[[bytes], redis.Redis],
                        source: redis.Redis, label: str, unavailable: str = "") -> Check:
    """The sampled keys of ``content`` as the target holds them (see the module docstring)."""
    name = f"content sample ({label})"
    if not content or not content.get("sample"):
        return Check(name, True, f"not verified: {unavailable or 'the set records no content digest'}", skipped=True)
    record = ContentDigest.from_facts(content)
    equal, differ, gone, other = 0, [], 0, 0
    for want in record.sample:
        if want.type not in cn.TYPE_TAGS:
            other += 1
            continue
        backup_expiry = int(_db_client(source, want.db).execute_command("PEXPIRETIME", want.key))
        if backup_expiry == -2:
            gone += 1  # its TTL passed since the backup: the copy left it out
            continue
        target = _db_client(target_for(want.key), want.db)
        try:
            raw = target.type(want.key)
            kind = raw.decode() if isinstance(raw, bytes) else str(raw)
            live_expiry = int(target.execute_command("PEXPIRETIME", want.key))
            value = _value(target, want.key, kind) if kind in cn.TYPE_TAGS else None
        finally:
            target.close()
        if value is None:
            differ.append(f"{want.key!r} missing")
            continue
        expiry = None if backup_expiry == -1 else backup_expiry
        same = cn.hash_hex(cn.key_hash(want.db, want.key, expiry, cn.TYPE_TAGS[kind], value[1])) == want.hash
        close = (backup_expiry == -1) == (live_expiry == -1) and abs(live_expiry - backup_expiry) <= TTL_SLACK_MS
        if same and close:
            equal += 1
        else:
            differ.append(repr(want.key) + ("" if same else " (content)") + ("" if close else " (expiry)"))
    total = len(record.sample)
    detail = f"{equal} of {total} sampled keys equal to the backup (volatile ones by content, expiry within " \
             f"{TTL_SLACK_MS // 1000}s)"
    if gone:
        detail += f", {gone} expired since"
    if other:
        detail += f", {other} of module types not compared"
    if differ:
        detail += f"; differ: {', '.join(differ[:3])}"
    return Check(name, not differ, detail)
