"""A Prometheus TSDB directory read offline: its blocks, their facts, and checks of their integrity.

A TSDB snapshot (``snapshots/<name>/`` under the data directory) is a set of blocks, one
directory per block named by its ULID, each with ``meta.json`` (time range, stats),
``index``, ``chunks/000001 ...`` and ``tombstones``. The head is persisted as one more
block when the snapshot is taken with ``skip_head=false``. ``maxTime`` of a block is
exclusive: its newest sample is at ``maxTime - 1`` ms.

Checks of an extracted set: every block's ``meta.json`` readable and sane, every chunk's
CRC32C (Castagnoli, as Prometheus writes it after each chunk) and ``promtool tsdb analyze``
(which reads the index and its checksums).
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

CHUNKS_MAGIC = 0x85BD40DD
CHUNK_CHECK_BYTES = 16 << 20
"""Chunk bytes whose CRC32C ``bdr verify`` recomputes, spread over the blocks (the pure-Python CRC runs at a few
MiB/s; a ``crc32c`` or ``google_crc32c`` module, when installed, is used instead); what it leaves out it says."""
ULID_LENGTH = 26


@dataclass(frozen=True, slots=True)
class Block:
    """One block, as its ``meta.json`` describes it."""

    ulid: str
    min_time: int
    max_time: int
    samples: int
    series: int
    chunks: int

    def to_dict(self) -> dict[str, Any]:
        return {"ulid": self.ulid, "min_time": self.min_time, "max_time": self.max_time, "samples": self.samples,
                "series": self.series, "chunks": self.chunks}


def is_block_dir(path: Path) -> bool:
    return path.is_dir() and len(path.name) == ULID_LENGTH and path.name.isalnum() and path.name.isupper()


def read_block(path: Path) -> Block:
    """The block in ``path``; ValueError naming what is wrong with its meta.json."""
    try:
        meta = json.loads((path / "meta.json").read_bytes())
        stats = meta.get("stats") or {}
        block = Block(str(meta["ulid"]), int(meta["minTime"]), int(meta["maxTime"]), int(stats.get("numSamples", 0)),
                      int(stats.get("numSeries", 0)), int(stats.get("numChunks", 0)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"block {path.name}: meta.json unreadable ({exc})") from exc
    if block.ulid != path.name:
        raise ValueError(f"block {path.name}: meta.json names block {block.ulid}")
    if block.max_time < block.min_time:
        raise ValueError(f"block {path.name}: maxTime {block.max_time} before minTime {block.min_time}")
    return block


def blocks_of(root: Path) -> list[Block]:
    """Every block under ``root`` (a snapshot or a data directory), oldest first."""
    found = [read_block(p) for p in sorted(root.iterdir()) if is_block_dir(p)] if root.is_dir() else []
    return sorted(found, key=lambda b: (b.min_time, b.ulid))


def block_facts(blocks: list[Block]) -> dict[str, Any]:
    """Manifest facts of a snapshot's blocks: ids, ranges, counts, the oldest and newest sample (ms)."""
    facts: dict[str, Any] = {
        "blocks": [b.to_dict() for b in blocks],
        "block_count": len(blocks),
        "samples": sum(b.samples for b in blocks),
        "block_series": sum(b.series for b in blocks),
        "chunks": sum(b.chunks for b in blocks),
    }
    if blocks:
        facts["oldest_sample_ms"] = min(b.min_time for b in blocks)
        facts["newest_sample_ms"] = max(b.max_time for b in blocks) - 1
    return facts


# --- CRC32C of the chunk segments ---------------------------------------------------------------------


def _table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _table()


def _native() -> Callable[[bytes], int] | None:
    for module, name in (("crc32c", "crc32c"), ("google_crc32c", "value")):
        try:
            return cast("Callable[[bytes], int]", getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return None


_NATIVE = _native()


def crc32c(data: bytes | memoryview) -> int:
    """CRC32C (Castagnoli) of ``data``, as Prometheus computes it after each chunk."""
    if _NATIVE is not None:
        return _NATIVE(bytes(data))
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _uvarint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data) or shift > 63:
            raise ValueError("truncated chunk length")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


@dataclass(frozen=True, slots=True)
class ChunkCheck:
    """What checking the chunks found: chunks checked, bytes checked, bytes left out, problems."""

    chunks: int
    checked_bytes: int
    skipped_bytes: int
    problems: tuple[str, ...]


def check_chunks(root: Path, budget: int = CHUNK_CHECK_BYTES) -> ChunkCheck:
    """Recompute the CRC32C of every chunk under ``root``, up to ``budget`` bytes shared evenly by the blocks
    (each block's segments in order, the first one always)."""
    chunks = checked = skipped = 0
    problems: list[str] = []
    blocks = sorted(p for p in root.iterdir() if is_block_dir(p))
    share = budget // max(len(blocks), 1)
    for block in blocks:
        used = 0
        for segment in sorted((block / "chunks").glob("[0-9]*")):
            size = segment.stat().st_size
            if used and used + size > share:
                skipped += size
                continue
            used += size
            checked += size
            data = segment.read_bytes()
            where = f"{block.name}/chunks/{segment.name}"
            if len(data) < 8 or int.from_bytes(data[:4], "big") != CHUNKS_MAGIC:
                problems.append(f"{where}: not a chunks segment (bad magic)")
                continue
            offset = 8
            while offset < len(data):
                start = offset
                try:
                    length, offset = _uvarint(data, offset)
                except ValueError as exc:
                    problems.append(f"{where} at byte {start}: {exc}")
                    break
                if length == 0 and not any(data[start:]):
                    break  # zero padding at the end of a segment
                end = offset + 1 + length
                if end + 4 > len(data):
                    problems.append(f"{where} at byte {start}: chunk runs past the end of the file")
                    break
                if crc32c(memoryview(data)[offset:end]) != int.from_bytes(data[end:end + 4], "big"):
                    problems.append(f"{where} at byte {start}: chunk checksum (CRC32C) does not match")
                chunks += 1
                offset = end + 4
    return ChunkCheck(chunks, checked, skipped, tuple(problems))


# --- promtool -------------------------------------------------------------------------------------------


def promtool() -> str | None:
    return shutil.which("promtool")


def analyze(root: Path, timeout: float = 600.0) -> tuple[bool, str]:
    """``promtool tsdb analyze`` of each block under ``root``: (ok, one-line detail)."""
    binary = promtool()
    if binary is None:
        raise FileNotFoundError("promtool")
    bad: list[str] = []
    blocks = sorted(p.name for p in root.iterdir() if is_block_dir(p))
    for ulid in blocks:
        done = subprocess.run([binary, "tsdb", "analyze", str(root), ulid], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip()).splitlines()
            bad.append(f"{ulid}: {last[-1] if last else f'exit code {done.returncode}'}")
    if bad:
        return False, "; ".join(bad)
    return True, f"{len(blocks)} block(s) analyzed by promtool tsdb analyze"
