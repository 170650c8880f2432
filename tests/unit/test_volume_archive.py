"""Volume archives without an engine: which members are safe, and the tar stream bdr sends."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from bdr.errors import CorruptArchive, UnsafeArchive
from bdr.runtime.docker_volumes import directory_members, safe_member_name, tar_stream


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(("name", "kind", "link", "reason"), [
    ("/etc/passwd", tarfile.REGTYPE, "", "absolute"),
    ("data/../../etc/cron.d/x", tarfile.REGTYPE, "", "escapes"),
    ("collection/segment", tarfile.SYMTYPE, "../../../etc/shadow", "out of the volume"),
    ("collection/segment", tarfile.SYMTYPE, "/etc/shadow", "out of the volume"),
    ("dev/sda", tarfile.BLKTYPE, "", "only files, directories and links"),
    ("hard", tarfile.LNKTYPE, "dump.rdb", "only files, directories and links"),
])
def test_unsafe_members_are_refused(name: str, kind: bytes, link: str, reason: str) -> None:
    with pytest.raises(UnsafeArchive, match=reason):
        safe_member_name(member(name, kind, link))


def test_safe_members_are_named_from_the_volume_root() -> None:
    assert safe_member_name(member("./dump.rdb")) == "dump.rdb"
    assert safe_member_name(member(".", tarfile.DIRTYPE)) is None
    assert safe_member_name(member("data/appendonlydir/x.aof"), strip=1) == "appendonlydir/x.aof"
    assert safe_member_name(member("data", tarfile.DIRTYPE), strip=1) is None
    assert safe_member_name(member("a/b/link", tarfile.SYMTYPE, "../c")) == "a/b/link"


def test_tar_stream_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "appendonlydir").mkdir(parents=True)
    (source / "dump.rdb").write_bytes(b"REDIS0010" + bytes(range(256)) * 9)
    (source / "appendonlydir" / "appendonly.aof.manifest").write_text("file appendonly.aof.1.base.rdb seq 1 type b\n")
    data = b"".join(tar_stream(directory_members(source, 999, 998)))
    assert len(data) % tarfile.BLOCKSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"appendonlydir", "appendonlydir/appendonly.aof.manifest", "dump.rdb"}
        assert all((m.uid, m.gid) == (999, 998) for m in members.values())
        extracted = tar.extractfile("dump.rdb")
        assert extracted is not None and extracted.read() == (source / "dump.rdb").read_bytes()


def test_a_file_that_shrinks_while_streamed_is_an_error(tmp_path: Path) -> None:
    info = tarfile.TarInfo("dump.rdb")
    info.size = 100
    with pytest.raises(CorruptArchive, match="shorter"):
        b"".join(tar_stream([(info, io.BytesIO(b"only 20 bytes here.."))]))
