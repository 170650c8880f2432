"""A repository in an S3 bucket (moto's real S3 server on 127.0.0.1): sets go up and come back intact.

Needs ``tests.s3_fixtures`` as a pytest plugin (top-level conftest, or ``-p tests.s3_fixtures``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import BinaryIO

import pytest

from bdr.errors import ChecksumMismatch, RepositoryLocked
from bdr.repository import Repository, extract_set
from bdr.repository.archive import ArchiveMember
from bdr.repository.manifest import MANIFEST_NAME
from bdr.storage.base import ObjectSink, WrittenObject
from bdr.storage.s3 import MIB, S3Storage
from tests.s3_fixtures import S3Bucket, transfer_memory

pytestmark = pytest.mark.s3

PART = 5 * MIB


def s3_repo(bucket: S3Bucket, prefix: str = "repo") -> Repository:
    return Repository.open(bucket.url(prefix), settings=bucket.settings())


def write_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, MIB))
            handle.write(block)
            remaining -= len(block)
    return path


def part_digests(path: Path, part_size: int) -> tuple[str, ...]:
    out = []
    with path.open("rb") as handle:
        while block := handle.read(part_size):
            out.append(hashlib.sha256(block).hexdigest())
    return tuple(out)


@pytest.fixture
def data_files(tmp_path: Path) -> dict[str, Path]:
    """A big dump (three parts: 5 + 5 + 2 MiB), a small one, and a config directory."""
    src = tmp_path / "src"
    return {
        "dump.rdb": write_file(src / "dump.rdb", 2 * PART + 2 * MIB),
        "appendonly.aof": write_file(src / "appendonly.aof", 4096),
        "conf/redis.conf": write_file(src / "conf" / "redis.conf", 300),
    }


def make_set(repo: Repository, files: dict[str, Path]) -> str:
    with repo.lock("backup"), repo.new_set("redis", "production", "rdb") as writer:
        writer.add_file(files["dump.rdb"], "dump.rdb")
        writer.add_file(files["appendonly.aof"], "appendonly.aof")
        writer.add_bytes("facts.json", b'{"keys": 3}')
        writer.commit()
    return writer.id


def test_round_trip_over_s3(s3_bucket: S3Bucket, data_files: dict[str, Path], tmp_path: Path) -> None:
    repo = s3_repo(s3_bucket)
    set_id = make_set(repo, data_files)

    [listed] = repo.sets()
    assert listed.id == set_id and listed.location == "s3"
    assert listed.repository == f"s3://{s3_bucket.name}/repo"
    big = listed.manifest.object("dump.rdb")
    assert big.size == 2 * PART + 2 * MIB
    assert big.part_size == PART
    assert big.parts == part_digests(data_files["dump.rdb"], PART)
    assert listed.manifest.object("appendonly.aof").parts == ()  # one PutObject

    assert repo.check_objects(listed) == []
    out = extract_set(repo, listed, tmp_path / "out")
    assert {f.path for f in out} == {"dump.rdb", "appendonly.aof"}
    for name in ("dump.rdb", "appendonly.aof"):
        assert (tmp_path / "out" / name).read_bytes() == data_files[name].read_bytes()

    assert s3_bucket.pending_uploads() == []
    keys = s3_bucket.keys("repo/")
    assert f"repo/redis/{set_id}/{MANIFEST_NAME}" in keys
    assert not any(k.startswith("repo/locks/") for k in keys)  # the lock is released


def test_compressed_archive_streams_up_in_parts(s3_bucket: S3Bucket, data_files: dict[str, Path],
                                                 tmp_path: Path) -> None:
    repo = s3_repo(s3_bucket)
    members = [ArchiveMember(path, name) for name, path in data_files.items()]
    with repo.lock("backup"), repo.new_set("config", "production", "files") as writer:
        writer.add_archive(members, compress=True)
        writer.commit()
    [backup] = repo.sets("config")
    archive = backup.manifest.object("data.tar.zst")
    assert len(archive.parts) == 3  # random data does not compress
    assert repo.check_objects(backup) == []
    extract_set(repo, backup, tmp_path / "out")
    assert (tmp_path / "out" / "conf" / "redis.conf").read_bytes() == data_files["conf/redis.conf"].read_bytes()


def test_objects_are_tagged_for_the_lifecycle_and_encrypted_at_rest(s3_bucket: S3Bucket,
                                                                    data_files: dict[str, Path]) -> None:
    repo = Repository.open(s3_bucket.url(), settings=s3_bucket.settings(sse="AES256", storage_class="STANDARD_IA"))
    set_id = make_set(repo, data_files)
    prefix = f"repo/redis/{set_id}"

    def tier(key: str) -> str:
        return {t["Key"]: t["Value"] for t in s3_bucket.client.get_object_tagging(
            Bucket=s3_bucket.name, Key=key)["TagSet"]}["bdr-tier"]

    assert tier(f"{prefix}/{MANIFEST_NAME}") == "index"
    assert tier(f"{prefix}/dump.rdb") == "data"
    big = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=f"{prefix}/dump.rdb")
    assert big["ServerSideEncryption"] == "AES256"
    assert big["StorageClass"] == "STANDARD_IA"
    manifest = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=f"{prefix}/{MANIFEST_NAME}")
    assert manifest.get("StorageClass", "STANDARD") == "STANDARD"  # stays readable for `bdr list`


class FailAfter:
    """A test cipher whose ciphertext stream breaks after ``limit`` bytes: a backup interrupted mid-upload."""

    key_id = "test"

    def __init__(self, limit: int, exc: BaseException) -> None:
        self.limit = limit
        self.exc = exc

    def encrypting(self, sink: ObjectSink) -> ObjectSink:
        outer = self

        class Breaking:
            sent = 0

            def write(self, data: bytes) -> int:
                if self.sent + len(data) > outer.limit:
                    raise outer.exc
                self.sent += len(data)
                return sink.write(data)

            def commit(self) -> WrittenObject:
                return sink.commit()

            def abort(self) -> None:
                sink.abort()

        return Breaking()

    def decrypting(self, stream: BinaryIO, name: str) -> BinaryIO:
        return stream

    def digest(self, data: bytes) -> str:  # the manifest's MAC: never reached, the upload breaks first
        return f"hmac-sha256:{self.key_id}:raw:{hashlib.sha256(data).hexdigest()}"

    def digest_matches(self, data: bytes, recorded: str, name: str = "data") -> bool:
        return recorded == self.digest(data)


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), OSError("disk read error")], ids=["ctrl-c", "error"])
def test_interrupted_upload_leaves_no_parts_and_no_set(s3_bucket: S3Bucket, data_files: dict[str, Path],
                                                       exc: BaseException) -> None:
    repo = s3_repo(s3_bucket)
    cipher = FailAfter(PART + 3 * MIB, exc)
    with pytest.raises(type(exc)), repo.lock("backup"), repo.new_set("redis", "production", "rdb",
                                                                    cipher=cipher) as writer:
        writer.add_file(data_files["appendonly.aof"], "appendonly.aof")  # committed, then removed
        writer.add_file(data_files["dump.rdb"], "dump.rdb")  # one part sent, then the failure
        writer.commit()
    assert s3_bucket.pending_uploads() == []
    assert s3_bucket.keys("repo/") == []
    assert repo.sets() == []
    assert repo.incomplete() == []


def test_set_of_a_killed_backup_is_swept_with_its_pending_upload(s3_bucket: S3Bucket,
                                                                 data_files: dict[str, Path]) -> None:
    import dataclasses

    from bdr.repository import WRITING_MARKER, WriterMarker

    repo = s3_repo(s3_bucket)
    storage = repo.storage
    assert isinstance(storage, S3Storage)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    marker = dataclasses.replace(WriterMarker.here("redis-20250101T000000Z-dead00"), pid=int(dead.stdout),
                                 process_start=None)
    # what a SIGKILL leaves: the writer's marker, one complete object, one upload with a part sent, no manifest
    storage.put_bytes(f"redis/redis-20250101T000000Z-dead00/{WRITING_MARKER}", marker.to_json())
    storage.put_bytes("redis/redis-20250101T000000Z-dead00/appendonly.aof", b"x" * 100)
    sink = storage.open_write("redis/redis-20250101T000000Z-dead00/dump.rdb")
    sink.write(os.urandom(PART))
    assert s3_bucket.pending_uploads() == ["repo/redis/redis-20250101T000000Z-dead00/dump.rdb"]
    assert repo.incomplete() == ["redis-20250101T000000Z-dead00"]
    assert repo.sets() == []

    set_id = make_set(repo, data_files)  # taking the lock sweeps

    assert [b.id for b in repo.sets()] == [set_id]
    assert repo.incomplete() == []
    assert s3_bucket.pending_uploads() == []
    assert not any("dead00" in k for k in s3_bucket.keys(""))


def test_corrupt_object_is_detected(s3_bucket: S3Bucket, data_files: dict[str, Path], tmp_path: Path) -> None:
    repo = s3_repo(s3_bucket)
    set_id = make_set(repo, data_files)
    key = f"repo/redis/{set_id}/dump.rdb"
    original = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read()
    flipped = bytearray(original)
    flipped[PART + 10] ^= 0xFF  # one bit-flipped byte in the second part, same size
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=bytes(flipped))

    backup = repo.get(set_id)
    [problem] = repo.check_objects(backup)
    assert "dump.rdb" in problem and "checksum mismatch" in problem
    with pytest.raises(ChecksumMismatch):
        extract_set(repo, backup, tmp_path / "out")

    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=original[:PART])
    [problem] = repo.check_objects(repo.get(set_id))
    assert "truncated" in problem


def test_lock_is_exclusive_across_writers(s3_bucket: S3Bucket) -> None:
    first, second = s3_repo(s3_bucket), s3_repo(s3_bucket)
    with first.lock("backup"):
        with pytest.raises(RepositoryLocked) as raised, second.lock("prune"):
            pass
        assert "backup" in str(raised.value) and f"s3://{s3_bucket.name}/repo" in str(raised.value)
    with second.lock("prune"):
        pass


def test_repositories_under_different_prefixes_are_separate(s3_bucket: S3Bucket,
                                                             data_files: dict[str, Path]) -> None:
    one, other = s3_repo(s3_bucket, "site-a"), s3_repo(s3_bucket, "site-a-old")
    make_set(one, data_files)
    assert other.sets() == []
    assert other.storage.children("") == []
    assert len(one.sets()) == 1


@pytest.mark.parametrize("concurrency", [1, 4])
def test_large_object_is_never_held_in_memory_whole(s3_bucket: S3Bucket, concurrency: int) -> None:
    """The upload runs in its own process: here moto's server would count the bytes it stores.

    At most ``concurrency`` parts are held, the one being filled included (one part: a serial upload)."""
    size = 8 * PART
    result = transfer_memory(s3_bucket, size, concurrency)
    peak = int(result["up"])
    assert result["parts"] == 8
    assert peak < (concurrency + 1) * PART, \
        f"peak {peak / MIB:.1f} MiB of Python memory while uploading {size / MIB:.0f} MiB"
    assert s3_repo(s3_bucket).storage.size("redis/big/object") == size


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 that drops its first connection after ``budget`` bytes of response."""

    def __init__(self, upstream: tuple[str, int], budget: int) -> None:
        self.upstream = upstream
        self.budget = budget
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            budget = self.budget if self.connections == 1 else None
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(downstream, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream, budget), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket, budget: int | None) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                if budget is not None and sent + len(data) > budget:
                    target.sendall(data[: budget - sent])
                    break
                target.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_read_resumes_where_a_dropped_connection_stopped(s3_bucket: S3Bucket,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    payload = os.urandom(3 * MIB)
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="repo/redis/x/dump.rdb", Body=payload)
    host, port = s3_bucket.server.endpoint.removeprefix("http://").split(":")
    proxy = CuttingProxy((host, int(port)), budget=MIB)  # the connection breaks a third of the way in
    try:
        storage = Repository.open(s3_bucket.url(), settings=s3_bucket.settings(
            endpoint_url=f"http://127.0.0.1:{proxy.port}")).storage
        with storage.open_read("redis/x/dump.rdb") as stream:
            got = stream.read()
    finally:
        proxy.close()
    assert proxy.connections == 2  # it did break, and one ranged GET finished the object
    assert "resuming" in caplog.text
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()
