"""The file swap of a Grafana restore: atomic, idempotent after a crash, undone exactly."""

from __future__ import annotations

from pathlib import Path

from bdr.engines.grafana.restore import drop_old, swap_back, swap_in


def test_swap_in_twice_keeps_the_first_old_file_and_its_companions_and_swap_back_restores_them(
        tmp_path: Path) -> None:
    live = tmp_path / "grafana.db"
    live.write_bytes(b"old database")
    live.chmod(0o640)
    (tmp_path / "grafana.db-wal").write_bytes(b"old wal")
    new = tmp_path / "restored.db"
    new.write_bytes(b"restored database")
    assert swap_in(new, live, 0o600)
    assert swap_in(new, live, 0o600)  # run again after a crash: the old file is not overwritten by the new one
    assert live.read_bytes() == b"restored database" and live.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "grafana.db.bdr-old").read_bytes() == b"old database"
    assert (tmp_path / "grafana.db.bdr-old-wal").read_bytes() == b"old wal"
    assert not (tmp_path / "grafana.db-wal").exists()  # a stale WAL is never left beside the restored database
    assert swap_back(live) == "put back"
    assert live.read_bytes() == b"old database" and (tmp_path / "grafana.db-wal").read_bytes() == b"old wal"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grafana.db", "grafana.db-wal", "restored.db"]


def test_a_file_that_was_not_there_is_created_and_removed_again(tmp_path: Path) -> None:
    new = tmp_path / "restored.ini"
    new.write_bytes(b"[security]\n")
    live = tmp_path / "etc" / "grafana.ini"
    assert not swap_in(new, live, 0o600)
    assert live.read_bytes() == b"[security]\n" and live.stat().st_mode & 0o777 == 0o600
    drop_old(live)
    assert swap_back(live) == "removed" and not live.exists()
