"""An RDB larger than the C parser's resident window: same digest, CRC still checked, memory bounded.

The C extension maps the file and keeps only a window of it resident (the pages behind the
parse are CRC'd and handed back): a backup of a 10 GB instance must not hold 10 GB. One
file of ~100 MiB, made by a real Redis (``DEBUG POPULATE``), is read both ways: mapped
(:func:`digest_file`) and from a buffer (:func:`digest_bytes`, which keeps no window).
"""

from __future__ import annotations

import json
import mmap
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdr.engines.redis.rdb import RdbCorrupt, digest_bytes, digest_file
from bdr.runtime.process import spawn_redis

MIB = 1024 * 1024
KEYS = 2_700_000


@pytest.fixture(scope="module")
def large_rdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data = tmp_path_factory.mktemp("large-rdb")
    server = spawn_redis(data / "data", name="large-rdb", timeout=120)
    try:
        client = server.client(timeout=120)
        client.execute_command("DEBUG", "POPULATE", KEYS, "key", 24)
        client.save()
        path = data / "large.rdb"
        shutil.copyfile(server.data_path() / "dump.rdb", path)
    finally:
        server.stop()
    assert path.stat().st_size > 90 * MIB
    yield path


def test_a_large_file_gives_the_same_digest_mapped_or_from_memory(large_rdb: Path) -> None:
    mapped = digest_file(large_rdb)
    buffered = digest_bytes(large_rdb.read_bytes())
    assert mapped == buffered
    assert mapped.total_keys == KEYS


def test_a_byte_changed_far_into_a_large_file_fails_its_crc(large_rdb: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.rdb"
    shutil.copyfile(large_rdb, damaged)
    with damaged.open("r+b") as handle, mmap.mmap(handle.fileno(), 0) as view:
        at = view.find(b"key:", 10 * MIB)  # a key name's digit: the file still parses, only its CRC64 differs
        assert at > 0
        view[at + 4] = ord("9") if view[at + 4] != ord("9") else ord("8")
    with pytest.raises(RdbCorrupt, match="CRC64"):
        digest_file(damaged)


def test_digesting_a_large_file_keeps_only_a_window_of_it_resident(large_rdb: Path) -> None:
    probe = (
        "import json, resource, sys\n"
        "from bdr.engines.redis.rdb import digest_file\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "digest_file(sys.argv[1])\n"
        "print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(large_rdb)], capture_output=True, text=True, check=True,
                          timeout=120)
    growth = json.loads(done.stdout)
    assert growth < 64 * MIB < large_rdb.stat().st_size, f"{growth / MIB:.0f} MiB resident while digesting"
