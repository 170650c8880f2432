"""Safe streaming tar extraction: what an attacker-crafted archive must not do."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from bdr.errors import CorruptArchive, UnsafeArchive
from bdr.repository.archive import ArchiveMember, extract_archive, write_archive
from bdr.storage.local import LocalStorage


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], compress: str = "") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    data = raw.getvalue()
    if compress == "zst":
        return zstandard.ZstdCompressor().compress(data)
    if compress == "gz":
        import gzip

        return gzip.compress(data)
    return data


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


@pytest.mark.parametrize(
    ("name", "kind", "link", "reason"),
    [
        ("../escape", tarfile.REGTYPE, "", ".."),
        ("data/../../escape", tarfile.REGTYPE, "", ".."),
        ("/etc/cron.d/evil", tarfile.REGTYPE, "", "absolute"),
        ("link", tarfile.SYMTYPE, "/etc/passwd", "links"),
        ("hard", tarfile.LNKTYPE, "dump.rdb", "links"),
        ("dev", tarfile.CHRTYPE, "", "regular files"),
        ("fifo", tarfile.FIFOTYPE, "", "regular files"),
    ],
)
def test_unsafe_members_are_refused(tmp_path: Path, name: str, kind: bytes, link: str, reason: str) -> None:
    blob = _tar([(_member("ok.txt"), b"fine"), (_member(name, kind, link), b"x")], compress="zst")
    target = tmp_path / "out"
    with pytest.raises(UnsafeArchive, match=reason):
        extract_archive(io.BytesIO(blob), target)
    assert not (tmp_path / "escape").exists()
    assert not any(p.is_symlink() for p in target.rglob("*"))


@pytest.mark.parametrize("compress", ["", "gz", "zst"])
def test_round_trip_keeps_content_and_modes(tmp_path: Path, compress: str) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.bin").write_bytes(bytes(range(256)) * 1000)
    (source / "sub" / "secret").write_text("s")
    (source / "sub" / "secret").chmod(0o600)
    storage = LocalStorage(tmp_path / "repo")
    sink = storage.open_write("set/data.tar.zst")
    entries = write_archive([ArchiveMember(source / "a.bin", "a.bin"),
                             ArchiveMember(source / "sub" / "secret", "sub/secret")], sink)
    sink.commit()
    with storage.open_read("set/data.tar.zst") as stream:
        extracted = extract_archive(stream, tmp_path / "out")
    assert {(e.path, e.sha256) for e in extracted} == {(e.path, e.sha256) for e in entries}
    assert (tmp_path / "out" / "a.bin").read_bytes() == (source / "a.bin").read_bytes()
    assert (tmp_path / "out" / "sub" / "secret").stat().st_mode & 0o777 == 0o600
    if compress:  # legacy formats go through the same extractor
        plain = _tar([(_member("x/dump.rdb"), b"REDIS0010")], compress=compress)
        assert extract_archive(io.BytesIO(plain), tmp_path / "legacy")[0].path == "x/dump.rdb"


def test_truncated_archive_is_reported_as_corrupt(tmp_path: Path) -> None:
    blob = _tar([(_member("big"), bytes(200_000))], compress="zst")
    with pytest.raises(CorruptArchive):
        extract_archive(io.BytesIO(blob[: len(blob) // 2]), tmp_path / "out")


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "zstd"])
def test_a_full_disk_mid_archive_is_the_only_error_even_after_garbage_collection(
    tmp_path: Path, compress: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tarfile flushes its buffer on close and from ``__del__``: none of that may reach the broken sink."""
    import gc
    import os
    import sys

    from bdr.errors import NoSpace
    from tests.mounts import tmpfs

    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    source = tmp_path / "dump.rdb"
    source.write_bytes(os.urandom(40 * 1024 * 1024))  # more than zstd's multi-threaded jobs hold back
    with tmpfs(tmp_path / "disk", "1m") as disk:
        sink = LocalStorage(disk).open_write("set/data.tar.zst")
        with pytest.raises(NoSpace) as raised:
            write_archive([ArchiveMember(source, "dump.rdb")], sink, compress=compress)
        assert isinstance(raised.value.__cause__, OSError)
        sink.abort()
        del raised
        gc.collect()
        assert unraisable == []
        assert [p for p in disk.rglob("*") if p.is_file()] == []


def test_a_killed_writers_temporary_file_is_never_an_object(tmp_path: Path) -> None:
    from bdr.storage.local import temp_name, temp_writer

    final = tmp_path / "set" / "dump.rdb"
    tmp = temp_name(final)
    assert tmp.parent == final.parent and temp_writer(tmp.name) == ("dump.rdb", os.getpid())
    assert temp_writer("dump.rdb.tmp-123-abcdef") == ("dump.rdb", 123)  # an older bdr's
    assert temp_writer("dump.rdb") is None and temp_writer(".bdr-writing.json") is None
    assert temp_writer("notes.tmp-draft") is None
