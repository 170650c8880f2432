"""What ``bdr verify`` checks of a cluster set, beyond what it checks of every member.

A cluster set is verified as a whole-system set is: every member set gets every check of a
single-node set (checksums, content digest recomputed, ``redis-check-rdb``/``-aof``, and with
``--restore-test`` a load into a temporary redis-server whose re-saved RDB must have the
same content digest). On top:

- of each member (:func:`member_checks`): every key of its RDB hashes to a slot of its
  shard (a file restore puts the RDB into the master of those slots; a key outside them
  would be unreachable there);
- of the parent (:func:`parent_checks`): its members are the sets its shards name, their
  slot ranges cover the 16384 slots exactly once, and the key counts it records per shard
  are its members' own.
"""

from __future__ import annotations

from pathlib import Path

from bdr.engines.base import Check
from bdr.engines.redis.cluster.slots import SLOTS, key_slot
from bdr.engines.redis.cluster.topology import format_slots
from bdr.errors import BdrError
from bdr.repository.manifest import Manifest

OUT_OF_SLOT_EXAMPLES = 3


def member_checks(manifest: Manifest, files: Path) -> list[Check]:
    """Every key of the member's RDB is in its shard's slot ranges."""
    from bdr.engines.redis.rdb import key_hashes

    shard = manifest.facts["cluster_shard"]
    ranges = [(int(r[0]), int(r[1])) for r in shard["slots"]]
    rdb = files / str(manifest.facts.get("dbfilename") or "dump.rdb")
    if not rdb.is_file():
        return [Check("keys in the shard's slots", True, "not verified: the set has no RDB", skipped=True)]
    allowed = bytearray(SLOTS)
    for low, high in ranges:
        allowed[low:high + 1] = b"\x01" * (high - low + 1)
    try:
        keys = key_hashes(rdb)
    except BdrError as exc:
        return [Check("keys in the shard's slots", False, exc.message)]
    outside = [key for (_, key) in keys if not allowed[key_slot(key)]]
    other_dbs = sorted({db for (db, _) in keys if db != 0})
    ok = not outside and not other_dbs
    detail = f"all {len(keys)} keys hash to slots {format_slots(ranges)}"
    if outside:
        examples = ", ".join(repr(k.decode("utf-8", "backslashreplace")) for k in outside[:OUT_OF_SLOT_EXAMPLES])
        detail = f"{len(outside)} of {len(keys)} keys hash outside slots {format_slots(ranges)} (e.g. {examples})"
    if other_dbs:
        detail += f"; keys in db {', '.join(map(str, other_dbs))} (a cluster has only db 0)"
    return [Check("keys in the shard's slots", ok, detail)]


def parent_checks(parent: Manifest, members: list[Manifest]) -> list[Check]:
    """The cluster set against its members (see the module docstring)."""
    shards = list(parent.facts["cluster"]["shards"])
    named = [str(s["member"]) for s in shards]
    by_id = {m.id: m for m in members}
    checks = [Check("cluster members", named == list(parent.children) and set(named) <= set(by_id),
                    f"{len(named)} shard set(s), as the cluster set names them" if named == list(parent.children)
                    else f"the shards name {named}, the set's children are {list(parent.children)}")]
    covered = bytearray(SLOTS)
    for shard in shards:
        for low, high in shard["slots"]:
            for slot in range(int(low), int(high) + 1):
                covered[slot] += 1
    gaps = sum(1 for c in covered if c == 0)
    twice = sum(1 for c in covered if c > 1)
    checks.append(Check("slot coverage", not gaps and not twice,
                        f"the {len(shards)} shards cover all {SLOTS} slots once" if not gaps and not twice
                        else f"{gaps} slots in no shard, {twice} in more than one"))
    wrong = []
    for shard in shards:
        member = by_id.get(str(shard["member"]))
        if member is None:
            continue
        keys = sum(int(c.get("keys", 0)) for c in dict(member.facts.get("keyspace") or {}).values())
        recorded = member.facts.get("cluster_shard", {}).get("slots")
        if keys != int(shard["keys"]) or [list(r) for r in recorded or []] != [list(r) for r in shard["slots"]]:
            wrong.append(f"shard {shard['index']}")
    checks.append(Check("shard facts", not wrong, "key counts and slot ranges equal to the members'" if not wrong
                        else f"{', '.join(wrong)} differ from their member sets"))
    return checks
