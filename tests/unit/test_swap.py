"""The data-file swap: atomic per entry, never an empty name, resumable and undoable after a crash anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bdr.engines.swap import (
    OWNER_FILE,
    WORK_PREFIX,
    DataSwap,
    StopAndSwap,
    exchange,
    new_work_dir,
    swap_fields,
    sweep_work_dirs,
)
from bdr.runtime.base import Launch
from bdr.safety.failpoints import ENV


def tree(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and ".bdr-restore" not in path.as_posix():
            out[path.relative_to(root).as_posix()] = path.read_text()
    return out


def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "appendonlydir").mkdir(parents=True)
    (data / "dump.rdb").write_text("old rdb")
    (data / "appendonlydir" / "appendonly.aof.1.base.rdb").write_text("old base")
    (data / "appendonlydir" / "appendonly.aof.manifest").write_text("old manifest")
    (data / "appendonly.aof").write_text("legacy aof")
    (data / "users.acl").write_text("not ours")
    return data


def prepared(data: Path) -> DataSwap:
    work = data / ".bdr-restore-test"
    new = work / "new"
    (new / "appendonlydir").mkdir(parents=True)
    (new / "dump.rdb").write_text("new rdb")
    (new / "appendonlydir" / "appendonly.aof.1.base.rdb").write_text("new base")
    (new / "appendonlydir" / "appendonly.aof.manifest").write_text("new manifest")
    return DataSwap.prepared(data, work, clear=["appendonly.aof"])


NEW = {"dump.rdb": "new rdb", "appendonlydir/appendonly.aof.1.base.rdb": "new base",
       "appendonlydir/appendonly.aof.manifest": "new manifest", "users.acl": "not ours"}


def test_exchange_swaps_two_names_in_one_call(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("A")
    (tmp_path / "b").mkdir()
    exchange(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a").is_dir() and (tmp_path / "b").read_text() == "A"


def test_swap_then_unswap_restores_every_byte(tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    before = tree(data)
    swap = prepared(data)
    assert swap.swap() == ["appendonlydir", "dump.rdb", "appendonly.aof"]
    assert tree(data) == NEW and swap.done()
    assert swap.unswap()
    assert tree(data) == before and not swap.touched()


@pytest.mark.parametrize("crash_at", [1, 2, 3])
def test_a_crash_in_the_middle_of_the_swap_is_finished_or_undone_exactly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: int) -> None:
    for finish in (True, False):
        data = data_dir(tmp_path / str(finish))
        before = tree(data)
        swap = prepared(data)
        state = swap.to_state()  # what the journal holds before the replace step runs
        monkeypatch.setenv(ENV, f"restore.swap:error@{crash_at}")
        from bdr.safety import failpoints

        failpoints._hits.clear()
        with pytest.raises(OSError):
            swap.swap()
        monkeypatch.delenv(ENV)
        # the data directory is never without its RDB, and each name holds old or new, never a mix
        assert (data / "dump.rdb").read_text() in ("old rdb", "new rdb")
        resumed = DataSwap.from_state(state)  # a new process, from the journal alone
        if finish:
            resumed.swap()
            assert tree(data) == NEW
        else:
            resumed.unswap()
            assert tree(data) == before


def test_a_crash_between_the_exchange_and_the_move_aside_is_undone(tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    before = tree(data)
    swap = prepared(data)
    # the exchange happened, the old version still sits in new/ (killed before it moved to old/)
    exchange(swap.new / "dump.rdb", data / "dump.rdb")
    assert swap.swapped("dump.rdb")
    DataSwap.from_state(swap.to_state()).unswap()
    assert tree(data) == before


def test_discard_removes_only_the_work_directory(tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    swap = prepared(data)
    swap.swap()
    swap.discard()
    assert not swap.work.exists() and tree(data) == NEW
    assert sorted(os.listdir(data)) == ["appendonlydir", "dump.rdb", "users.acl"]


def test_the_journal_fields_bring_back_a_swap_half_done(tmp_path: Path) -> None:
    """What a restorer journals of its work dir, launch and swap is enough for a resumed run to put the files back."""
    data = data_dir(tmp_path)
    before = tree(data)
    fields = StopAndSwap(work=data / ".bdr-restore-test", launch=Launch("process", str(data), argv=("redis-server",)),
                         was_running=True, swap=prepared(data))
    assert fields.swap is not None
    fields.swap.swap()
    resumed = StopAndSwap(**swap_fields(json.loads(json.dumps(fields.swap_state()))))
    assert (resumed.work, resumed.launch, resumed.was_running) == (fields.work, fields.launch, True)
    assert resumed.swap is not None
    resumed.swap.unswap()
    assert tree(data) == before


def test_only_work_dirs_of_dead_restores_are_swept(tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    ours = new_work_dir(data, "set-1")
    dead = new_work_dir(data, "set-0")
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                            check=True)
    owner = json.loads((dead / OWNER_FILE).read_text())
    (dead / OWNER_FILE).write_text(json.dumps({**owner, "pid": int(exited.stdout)}))
    unproven = data / f"{WORK_PREFIX}unproven"
    unproven.mkdir()
    assert sweep_work_dirs(data) == [dead.name]
    assert ours.is_dir() and unproven.is_dir() and not dead.exists()
