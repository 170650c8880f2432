"""Which hash slot a key belongs to, and which master serves it: the routing of a key-level copy.

Redis Cluster maps a key to ``CRC16(key) mod 16384`` (CRC-16/XMODEM: polynomial 0x1021,
initial value 0, what :func:`binascii.crc_hqx` computes in C), where only the *hash tag*
is hashed when the key has one: the bytes between the first ``{`` and the first ``}``
after it, when there is at least one byte between them (``{user:42}:cart`` hashes
``user:42``; ``{}x`` and ``x{`` hash the whole key). This is ``CLUSTER KEYSLOT`` without
a round trip per key; the tests check both agree.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SLOTS = 16384


def key_slot(key: bytes) -> int:
    """The hash slot of ``key`` (see the module docstring)."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return binascii.crc_hqx(key, 0) & (SLOTS - 1)


@dataclass(frozen=True, slots=True)
class SlotMap:
    """Slot -> owner (an index into ``owners``), built from each owner's slot ranges."""

    owners: tuple[str, ...]
    table: bytes | tuple[int, ...]

    @classmethod
    def of(cls, ranges_by_owner: Sequence[tuple[str, Iterable[Sequence[int]]]]) -> SlotMap:
        table = [-1] * SLOTS
        for index, (_, ranges) in enumerate(ranges_by_owner):
            for low, high in ranges:
                for slot in range(int(low), int(high) + 1):
                    table[slot] = index
        return cls(tuple(owner for owner, _ in ranges_by_owner), tuple(table))

    def owner(self, key: bytes) -> str | None:
        """The owner of ``key``'s slot; None when no owner serves it."""
        index = self.table[key_slot(key)]
        return self.owners[index] if index >= 0 else None

    def unserved(self) -> int:
        return sum(1 for i in self.table if i < 0)

    def split(self, keys: Iterable[bytes]) -> dict[str | None, list[bytes]]:
        """``keys`` grouped by owner (None: the slot is served by nobody)."""
        groups: dict[str | None, list[bytes]] = {}
        table, owners = self.table, self.owners
        for key in keys:
            index = table[key_slot(key)]
            groups.setdefault(owners[index] if index >= 0 else None, []).append(key)
        return groups


def in_ranges(slot: int, ranges: Iterable[Sequence[int]]) -> bool:
    return any(int(low) <= slot <= int(high) for low, high in ranges)
