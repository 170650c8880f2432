"""What cutting a damaged AOF loses: the tail parser and the loss report (no server needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bdr.engines.redis.repair import _tail_shape, measure_loss


def command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


SET = command(b"SET", b"key", b"value")


@pytest.mark.parametrize(("tail", "torn", "whole"), [
    (b"", True, 0),
    (SET[:-1], True, 0),            # cut in the final CRLF
    (SET[:-4], True, 0),            # cut inside the value
    (SET[:3], True, 0),             # "*3\r"
    (SET[:1], True, 0),             # "*"
    (command(b"MULTI") + SET, True, 2),  # a transaction without its EXEC
    (b"#TS:1700000000\r\n" + SET[:10], True, 0),
    (b"#TS:17000", True, 0),
    (SET.replace(b"$3", b"X3", 1) + SET, False, 0),  # a damaged byte
    (b"garbage\r\n" + SET, False, 0),
    (SET[:-2] + b"XX" + SET, False, 0),  # wrong length
])
def test_tail_shape(tail: bytes, torn: bool, whole: int) -> None:
    assert _tail_shape(tail) == (torn, whole)


def test_loss_of_a_damaged_aof_with_timestamps(tmp_path: Path) -> None:
    kept = b"#TS:1700000000\r\n" + SET * 3
    lost = SET.replace(b"$3", b"X3", 1) + b"#TS:1700000005\r\n" + SET * 4 + b"#TS:1700000009\r\n" + SET
    path = tmp_path / "appendonly.aof.1.incr.aof"
    path.write_bytes(kept + lost)
    os.utime(path, (1_700_000_100, 1_700_000_100))

    loss = measure_loss(path, "appendonlydir/" + path.name, len(kept))

    assert (loss.lost_bytes, loss.torn, loss.whole_commands) == (len(lost), False, 6)
    assert loss.lost_from == "2023-11-14T22:13:20Z" and loss.last_lost == "2023-11-14T22:13:29Z"
    assert "about 6 commands written after the damaged byte" in loss.describe()
    assert "between 2023-11-14T22:13:20Z and 2023-11-14T22:13:29Z" in loss.describe()


def test_loss_of_a_torn_tail_without_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "appendonly.aof"
    path.write_bytes(SET * 2 + SET[:7])
    os.utime(path, (1_700_000_100, 1_700_000_100))

    loss = measure_loss(path, path.name, len(SET) * 2)

    assert (loss.lost_bytes, loss.torn, loss.whole_commands, loss.timestamps) == (7, True, 0, False)
    assert loss.describe() == (
        "truncating appendonly.aof from 73 to 66 bytes loses 7 bytes: the last write, which is only partly on "
        "disk; when the lost data was written is unknown (the AOF has no timestamps: set aof-timestamp-enabled "
        "yes); the file was last written at 2023-11-14T22:15:00Z")
