"""The archiver's spool after a kill at each point of a seal: exactly one consistent state, nothing lost."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from bdr.engines.redis.archive import spool as spool_module
from bdr.engines.redis.archive.replay import resp
from bdr.engines.redis.archive.segment import Kind, Mark, SegmentReader
from bdr.engines.redis.archive.spool import Spool, read_status
from bdr.errors import ArchiverRunning

REPLID = "c" * 40
WRITES = b"".join(resp("SET", f"k{i}", str(i)) for i in range(20))
PARTIAL = resp("SET", "half", "x" * 50)[:30]


def filled(root: Path) -> Spool:
    spool = Spool(root, "production")
    spool.lock()
    opened = spool.begin(REPLID, 1000, Kind.EXACT, 0.0)
    opened.append(WRITES + PARTIAL)
    opened.mark(Mark(1000 + len(WRITES) // 2 - 3, 5_000_000))
    opened.flush()
    return spool


def reread(spool: Spool) -> list[tuple[int, int, bytes]]:
    out = []
    for sealed in spool.sealed():
        reader = SegmentReader(io.BytesIO(sealed.path.read_bytes()), str(sealed.path), sealed.name)
        out.append((reader.header.start, reader.header.end, b"".join(reader.payload())))
    return out


def test_a_killed_archivers_bytes_are_sealed_up_to_the_last_whole_command(tmp_path: Path) -> None:
    spool = filled(tmp_path)
    spool.unlock()  # SIGKILL: the lock goes with the process; nothing else ran
    again = Spool(tmp_path, "production")
    again.lock()
    state = again.recover(0.0)
    assert state is not None and (state.replid, state.start) == (REPLID, 1000 + len(WRITES))
    assert reread(again) == [(1000, 1000 + len(WRITES), WRITES)]
    assert again.open is not None and again.open.size == 0  # the half command is fetched again from the master


def test_a_kill_after_the_segment_was_written_but_before_the_stream_moved_on(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    spool = filled(tmp_path)

    def killed(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(Spool, "begin", killed)
    with pytest.raises(KeyboardInterrupt):
        spool.seal(1000 + len(WRITES), 6_000_000, 20)
    monkeypatch.undo()
    spool.unlock()
    again = Spool(tmp_path, "production")
    again.lock()
    again.recover(0.0)
    assert reread(again) == [(1000, 1000 + len(WRITES), WRITES)]
    assert not list(tmp_path.rglob("*.partial"))


def test_a_kill_after_the_stream_moved_on_but_before_the_segment_was_renamed(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    spool = filled(tmp_path)
    real = os.replace

    def killed(source: object, dest: object) -> None:
        if str(source).endswith(".partial") and not Path(str(source)).name.startswith("."):
            raise KeyboardInterrupt("killed")
        real(source, dest)  # type: ignore[arg-type]

    monkeypatch.setattr(spool_module.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        spool.seal(1000 + len(WRITES), 6_000_000, 20)
    monkeypatch.undo()
    spool.unlock()
    again = Spool(tmp_path, "production")
    again.lock()
    state = again.recover(0.0)
    assert state is not None and state.start == 1000 + len(WRITES)
    assert reread(again) == [(1000, 1000 + len(WRITES), WRITES)]


def test_one_archiver_per_instance(tmp_path: Path) -> None:
    first = Spool(tmp_path, "production")
    first.lock()
    with pytest.raises(ArchiverRunning, match="already running"):
        Spool(tmp_path, "production").lock()
    first.unlock()
    Spool(tmp_path, "production").lock()


def test_the_status_of_an_archiver_that_is_gone_says_it_is_not_running(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "production")
    spool.lock()
    spool.write_status({"pid": os.getpid(), "process_start": None, "state": "streaming"})
    status = read_status(tmp_path)
    assert status is not None and status["running"] is False  # another process start: not this archiver
    from bdr.util.host import process_start_time

    spool.write_status({"pid": os.getpid(), "process_start": process_start_time(os.getpid()), "state": "streaming"})
    assert read_status(tmp_path)["running"] is True  # type: ignore[index]
