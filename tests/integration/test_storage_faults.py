"""A destination that fails under a backup or a restore: one typed error, exit 9, and nothing half-written.

Real file systems only: a 1 MiB tmpfs is a full disk, a read-only tmpfs a read-only one
(``tests.mounts``; the tests skip where mounting is not permitted). The disk fills at a
different byte of the stream in each case, so every layer of the sink stack (tar, zstd,
AES, the file) takes its turn at meeting ``ENOSPC`` first.
"""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bdr import api
from bdr.config import Config, EncryptionSettings, FilesSource
from bdr.crypto.stream import Cipher
from bdr.engines.redis.info import digest
from bdr.errors import BdrError, NoSpace, NotWritable, StorageError
from bdr.repository import Repository, extract_set
from bdr.repository.archive import ArchiveMember, copy_to_file, extract_archive, write_archive
from bdr.runtime.process import RedisProcess
from bdr.storage.base import ObjectSink
from bdr.storage.local import LocalStorage, temp_writer, translate_os_error
from tests.fixtures import config_for
from tests.mounts import tmpfs

MIB = 1024 * 1024
KEY = bytes(range(32))
BDR = [sys.executable, "-m", "bdr.cli.main"]


def files_in(root: Path) -> list[str]:
    """Every file under ``root`` (temporary ones included), relative."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def write_source(path: Path, size: int) -> Path:
    """Half random (zstd cannot shrink it), half zeros (it can): both of zstd's paths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(os.urandom(size // 2))
        out.write(bytes(size - size // 2))
    return path


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB file system for the repository."""
    with tmpfs(tmp_path / "full", "1m") as path:
        yield path


@pytest.fixture
def source_file(tmp_path: Path) -> Path:
    return write_source(tmp_path / "src" / "dump.rdb", 6 * MIB)


# --- the sink stack itself --------------------------------------------------------------------------------


def stack(storage: LocalStorage, encrypt: bool) -> ObjectSink:
    sink = storage.open_write("redis/redis-20250101T000000Z-abcdef/data.tar.zst")
    return Cipher.from_key(KEY).encrypting(sink) if encrypt else sink


@pytest.mark.parametrize("encrypt", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize("compress", [False, True], ids=["tar", "zstd"])
def test_a_full_disk_anywhere_in_the_stream_is_no_space_and_leaves_no_file(
    tmp_path: Path, source_file: Path, compress: bool, encrypt: bool
) -> None:
    for size in ("8k", "64k", "1m", "3m"):  # the disk fills in the header, the first chunk, mid-way, near the end
        with tmpfs(tmp_path / f"disk-{size}", size) as disk:
            sink = stack(LocalStorage(disk), encrypt)
            with pytest.raises(NoSpace) as raised:
                try:
                    write_archive([ArchiveMember(source_file, "dump.rdb")], sink, compress=compress)
                    sink.commit()
                except BaseException:
                    sink.abort()
                    raise
            assert raised.value.exit_code == 9
            assert raised.value.message.startswith(f"no space left on {disk}/redis/")
            assert "free some space" in raised.value.message
            assert files_in(disk) == [], size  # the temporary file went with the failure
            sink.abort()  # abort works again, after anything
            with pytest.raises(NoSpace):  # and the broken stack says the same thing, not a second error
                sink.write(b"more")
            with pytest.raises(NoSpace):
                sink.commit()


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "zstd"])
def test_a_failed_write_never_hands_a_second_error_to_the_caller(tmp_path: Path, compress: bool) -> None:
    """tarfile flushes its buffer on close and on garbage collection: it must not reach a broken sink."""
    import gc

    source = write_source(tmp_path / "big.rdb", 48 * MIB)  # more than zstd's jobs hold back
    with tmpfs(tmp_path / "disk", "1m") as disk:
        sink = stack(LocalStorage(disk), encrypt=True)
        with pytest.raises(NoSpace) as raised:
            write_archive([ArchiveMember(source, "dump.rdb")], sink, compress=compress)
        sink.abort()
        gc.collect()
        chain, cause = [], raised.value
        while cause is not None:
            chain.append(type(cause).__name__)
            cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
        assert chain == ["NoSpace", "OSError"]
        assert files_in(disk) == []


def test_a_read_only_repository_says_so_and_how_to_fix_it(tmp_path: Path, source_file: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m", readonly=True) as disk:
        with pytest.raises(NotWritable) as raised:
            LocalStorage(disk).open_write("redis/x/dump.rdb")
        assert raised.value.exit_code == 9
        assert raised.value.message == (f"cannot write to {disk}/redis/x: Read-only file system; "
                                        "remount it read-write or choose another repository")


@pytest.mark.parametrize(("code", "kind", "words"), [
    (28, NoSpace, "no space left on /r"),
    (122, NoSpace, "no space left on /r"),  # EDQUOT
    (30, NotWritable, "Read-only file system; remount it read-write"),
    (13, NotWritable, "Permission denied; run bdr as a user that may write there"),
    (5, StorageError, "cannot write /r: Input/output error; the disk is failing"),
    (27, StorageError, "File too large; the file system cannot hold a file this large"),
])
def test_every_file_system_error_is_one_line_with_the_fix(code: int, kind: type[StorageError], words: str) -> None:
    error = translate_os_error(OSError(code, os.strerror(code)), "/r")
    assert type(error) is kind and error.exit_code == 9
    assert words in error.message and "\n" not in error.message


# --- a repository on a full disk, through bdr.api and the CLI ------------------------------------------------


def fill_redis(server: RedisProcess, megabytes: int = 24) -> str:
    """Random values: more than zstd's multi-threaded jobs buffer (the failure must come mid-archive)."""
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(megabytes * 1024):
        pipe.set(f"blob:{i}", os.urandom(1024))
    pipe.execute()
    return digest(client)


@pytest.mark.parametrize(("compress", "encrypt"), [(False, False), (True, False), (False, True), (True, True)],
                         ids=["plain", "compress", "encrypt", "compress+encrypt"])
def test_redis_backup_into_a_full_repository(redis_rdb: RedisProcess, tmp_path: Path, full_disk: Path,
                                              monkeypatch: pytest.MonkeyPatch, compress: bool, encrypt: bool) -> None:
    monkeypatch.setenv("BDR_KEY", KEY.hex())
    expected = fill_redis(redis_rdb)
    config = dataclasses.replace(config_for(tmp_path, redis_rdb), repository=str(full_disk))
    with pytest.raises(NoSpace) as raised:
        api.backup(config, "redis", compress=compress, encrypt=encrypt)
    assert raised.value.exit_code == 9 and str(full_disk) in raised.value.message
    assert [f for f in files_in(full_disk)] == []  # no object, no manifest, no temporary file, no lock
    assert Repository.open(full_disk).sets() == []
    assert digest(redis_rdb.client()) == expected  # the live data is untouched


@pytest.mark.parametrize("flags", [["--compress"], ["--compress", "--encrypt"], ["--encrypt"], []],
                         ids=["compress", "compress+encrypt", "encrypt", "plain"])
def test_cli_backup_into_a_full_repository_is_exit_9_and_one_line(redis_rdb: RedisProcess, tmp_path: Path,
                                                                   full_disk: Path, flags: list[str]) -> None:
    expected = fill_redis(redis_rdb)
    instance = redis_rdb.instance
    config = tmp_path / "bdr.yaml"
    config.write_text(yaml.safe_dump({
        "repository": str(full_disk),
        "redis": {"production": {"url": instance.url, "data_dir": instance.data_dir,
                                 "start_args": list(instance.start_args), "password_env": None}},
    }))
    done = subprocess.run([*BDR, "--config", str(config), "backup", "redis", *flags], capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ, "BDR_KEY": KEY.hex()},
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 9, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"bdr: error: no space left on {full_disk}/redis/")
    assert "unexpected error" not in done.stderr and "Traceback" not in done.stderr
    assert files_in(full_disk) == []
    assert digest(redis_rdb.client()) == expected


def config_tree(root: Path) -> Path:
    (root / "monitoring").mkdir(parents=True)
    (root / "docker-compose.yml").write_text("services: {}\n")
    (root / ".env").write_text("OPENAI_API_KEY=sk-test\n")
    write_source(root / "monitoring" / "dashboards.json", 3 * MIB)
    return root


@pytest.mark.parametrize(("compress", "encrypt"), [(False, False), (True, False), (True, True)],
                         ids=["plain", "compress", "compress+encrypt"])
def test_config_backup_into_a_full_repository(tmp_path: Path, full_disk: Path, monkeypatch: pytest.MonkeyPatch,
                                               compress: bool, encrypt: bool) -> None:
    monkeypatch.setenv("BDR_KEY", KEY.hex())
    root = config_tree(tmp_path / "etc")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    config = dataclasses.replace(Config(), repository=str(full_disk), files=FilesSource(root=str(root)),
                                 encryption=EncryptionSettings(key_env="BDR_KEY"))
    with pytest.raises(NoSpace):
        api.backup(config, "config", compress=compress, encrypt=encrypt)
    assert files_in(full_disk) == []
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("size", ["16k", "64k"])
def test_qdrant_backup_into_a_full_repository(tmp_path: Path, size: str) -> None:
    from tests.qdrant_data import dump_embedded, embedded_config, load_every_kind, open_embedded

    config = embedded_config(tmp_path)
    client = open_embedded(config)
    try:
        load_every_kind(client, docs=500)
    finally:
        client.close()
    before = dump_embedded(config)
    with tmpfs(tmp_path / "full", size) as disk:
        with pytest.raises(NoSpace):
            api.backup(dataclasses.replace(config, repository=str(disk)), "qdrant", compress=True)
        assert files_in(disk) == []
    assert dump_embedded(config) == before


# --- restore scratch: extracting a set into a full directory --------------------------------------------------


def one_set(tmp_path: Path, source: Path, compress: bool) -> tuple[Repository, str]:
    repo = Repository.open(tmp_path / "repo")
    with repo.lock("backup"), repo.new_set("redis", "production", "rdb") as writer:
        if compress:
            writer.add_archive([ArchiveMember(source, "dump.rdb")], compress=True)
        else:
            writer.add_file(source, "dump.rdb")
        writer.commit()
    return repo, writer.id


def test_extracting_an_archive_into_a_full_directory(tmp_path: Path, source_file: Path, full_disk: Path) -> None:
    repo, set_id = one_set(tmp_path, source_file, compress=True)
    with pytest.raises(NoSpace) as raised:
        extract_set(repo, repo.get(set_id), full_disk / "scratch")
    assert raised.value.message.startswith(f"no space left on {full_disk}/scratch")
    assert files_in(full_disk) == []  # the partial file is gone


def test_extracting_a_plain_set_into_a_full_directory(tmp_path: Path, source_file: Path, full_disk: Path) -> None:
    repo, set_id = one_set(tmp_path, source_file, compress=False)
    with pytest.raises(NoSpace):
        extract_set(repo, repo.get(set_id), full_disk / "scratch")


def test_copy_to_file_and_extract_archive_translate_only_the_target_side(tmp_path: Path, full_disk: Path) -> None:
    with pytest.raises(NoSpace):
        copy_to_file(io.BytesIO(os.urandom(2 * MIB)), full_disk / "big")
    assert files_in(full_disk) == []
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("dir/big")
        info.size = 2 * MIB
        tar.addfile(info, io.BytesIO(os.urandom(2 * MIB)))
    raw.seek(0)
    with pytest.raises(NoSpace):
        extract_archive(raw, full_disk / "out")
    assert files_in(full_disk) == []

    class Broken(io.RawIOBase):  # the source fails: that is not the target's disk
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError) as raised:
        copy_to_file(io.BufferedReader(Broken()), tmp_path / "fine")
    assert not isinstance(raised.value, BdrError)
    assert not (tmp_path / "fine").exists()


# --- temporary files of a killed writer --------------------------------------------------------------------------

KILLED_WRITER = """
import os, signal, sys
from bdr.storage.local import LocalStorage
sink = LocalStorage(sys.argv[1]).open_write("redis/redis-20250101T000000Z-dead00/dump.rdb")
sink.write(b"half of a dump")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writers_temporary_file_is_found_and_removed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(root)])
    assert writer.wait(timeout=60) == -signal.SIGKILL
    [left] = [p for p in root.rglob("*") if p.is_file()]
    assert left.name.startswith(f"dump.rdb.bdr-tmp-{writer.pid}-")
    assert temp_writer(left.name) == ("dump.rdb", writer.pid)
    storage = LocalStorage(root)
    assert list(storage.list()) == []  # never listed as an object
    assert storage.children("redis/redis-20250101T000000Z-dead00") == []
    assert storage.stale_uploads(0) == ["redis/redis-20250101T000000Z-dead00/dump.rdb"]
    assert storage.stale_uploads(3600) == []  # written a moment ago

    mine = storage.open_write("redis/redis-20250101T000000Z-dead00/appendonly.aof")  # a live writer: ours
    mine.write(b"in progress")
    assert storage.abort_uploads("redis/redis-20250101T000000Z-other1") == 0
    assert storage.abort_uploads("redis/redis-20250101T000000Z-dead00") == 1
    assert not left.exists()
    assert storage.abort_uploads("redis/redis-20250101T000000Z-dead00") == 0
    assert mine.commit().size == len(b"in progress")  # the live writer's file was left alone
    assert list(storage.list()) == ["redis/redis-20250101T000000Z-dead00/appendonly.aof"]


def test_abort_uploads_takes_an_object_key_too(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(root)], check=False, timeout=60)
    storage = LocalStorage(root)
    assert storage.abort_uploads("redis/redis-20250101T000000Z-dead00/dump") == 0  # a different object
    assert storage.abort_uploads("redis/redis-20250101T000000Z-dead00/dump.rdb") == 1
    assert storage.stale_uploads() == []
