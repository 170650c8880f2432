"""Parallel S3 transfers (moto's real S3 server on 127.0.0.1): several parts up at once, several ranges down.

What must stay true when parts travel side by side: the object is the bytes written, in
order, whatever order the parts finished in; every part is checksummed and recorded; a
part that fails is tried again on its own, one that keeps failing aborts the whole upload
and leaves no part behind; memory stays at ``concurrency`` parts; a download's dropped
range resumes from the byte it reached, and nothing else is fetched twice.

Faults are injected at botocore's ``before-send`` event (the request is then never sent,
exactly as when the connection fails before an answer) or by the ``flaky_proxy`` that cuts
real TCP connections. Needs ``tests.s3_fixtures`` as a pytest plugin.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

import botocore.exceptions as boto_errors
import pytest

from bdr.config import RemoteSettings
from bdr.errors import ConfigError, RemoteAccessDenied, ServiceUnavailable
from bdr.repository import Repository, extract_set
from bdr.storage.s3 import MIB, S3Sink, S3Storage
from tests.s3_fixtures import FlakyProxy, S3Bucket, transfer_memory

pytestmark = pytest.mark.s3

PART = 5 * MIB
CONCURRENCY = 4


def storage_for(bucket: S3Bucket, **changes: Any) -> S3Storage:
    options: dict[str, Any] = {"concurrency": CONCURRENCY, **changes}
    transport = {k: options.pop(k) for k in ("transfer_pauses", "connect_timeout", "read_timeout") if k in options}
    return S3Storage(bucket.name, "repo", bucket.settings(**options), **transport)


def upload(storage: S3Storage, key: str, data: bytes, write_size: int = MIB + 3) -> S3Sink:
    """Write ``data`` in odd-sized writes (parts never line up with them); the sink, committed."""
    sink = storage.open_write(key)
    for offset in range(0, len(data), write_size):
        sink.write(data[offset:offset + write_size])
    sink.commit()
    return sink


def part_digests(data: bytes, size: int = PART) -> tuple[str, ...]:
    return tuple(hashlib.sha256(data[o:o + size]).hexdigest() for o in range(0, len(data), size))


def stored(bucket: S3Bucket, key: str) -> bytes:
    return bucket.client.get_object(Bucket=bucket.name, Key=f"repo/{key}")["Body"].read()


def header(request: Any, name: str) -> str:
    value = request.headers.get(name)
    return value.decode() if isinstance(value, bytes) else str(value)


def part_number(request: Any) -> int | None:
    numbers = parse_qs(urlparse(request.url).query).get("partNumber")
    return int(numbers[0]) if numbers else None


def on_parts(storage: S3Storage, handler: Callable[[int, Any], None]) -> None:
    """Call ``handler(part number, request)`` before each UploadPart request is sent."""
    def before_send(request: Any, **_: Any) -> None:
        number = part_number(request)
        if number is not None:
            handler(number, request)
    storage.data_client.meta.events.register("before-send.s3.UploadPart", before_send)


def connection_closed(request: Any) -> boto_errors.ConnectionClosedError:
    return boto_errors.ConnectionClosedError(endpoint_url=request.url)


# --- correctness ----------------------------------------------------------------------------------------------


def test_parts_go_up_in_parallel_and_the_object_is_the_bytes_written(s3_bucket: S3Bucket) -> None:
    storage = storage_for(s3_bucket)
    data = os.urandom(8 * PART + 12345)
    seen: list[int] = []
    lock = threading.Lock()

    def slow(number: int, request: Any) -> None:  # a slow link: the writer is faster than the parts
        with lock:
            seen.append(number)
        time.sleep(0.05)

    on_parts(storage, slow)
    sink = upload(storage, "redis/x/dump.rdb", data)

    assert stored(s3_bucket, "redis/x/dump.rdb") == data
    assert sorted(seen) == list(range(1, 10))
    assert sink.pipeline is not None and sink.pipeline.peak == CONCURRENCY  # the writer ran ahead to the bound
    assert s3_bucket.pending_uploads() == []


def test_written_object_records_every_parts_sha256_in_order(s3_bucket: S3Bucket) -> None:
    storage = storage_for(s3_bucket)
    data = os.urandom(6 * PART + 999)
    sink = storage.open_write("redis/x/dump.rdb")
    for offset in range(0, len(data), 700_001):
        sink.write(data[offset:offset + 700_001])
    written = sink.commit()
    assert written.size == len(data)
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert written.part_size == PART
    assert written.parts == part_digests(data)
    # S3 was given the same checksums: the multipart ETag is built from the parts bdr sent, in order
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="repo/redis/x/dump.rdb")
    assert head["ETag"] == sink._expected_etag() and head["ETag"].endswith('-7"')


def test_parts_finishing_out_of_order_are_assembled_in_order(s3_bucket: S3Bucket) -> None:
    storage = storage_for(s3_bucket)
    data = os.urandom(5 * PART + 77)

    def first_part_last(number: int, request: Any) -> None:
        if number == 1:
            time.sleep(1.0)

    on_parts(storage, first_part_last)
    sink = upload(storage, "redis/x/dump.rdb", data)

    assert sink.pipeline is not None
    finished = sink.pipeline.finished
    assert sorted(finished) == [1, 2, 3, 4, 5, 6] and finished[0] != 1 and finished.index(1) >= 2
    assert stored(s3_bucket, "redis/x/dump.rdb") == data


def test_set_round_trip_with_parallel_transfers(s3_bucket: S3Bucket, tmp_path: Any) -> None:
    """The repository's own path: SetWriter.add_file up, extract_set down, both parallel."""
    source = tmp_path / "dump.rdb"
    data = os.urandom(7 * PART + 4321)
    source.write_bytes(data)
    repo = Repository.open(s3_bucket.url(), settings=s3_bucket.settings(concurrency=CONCURRENCY))
    with repo.lock("backup"), repo.new_set("redis", "production", "rdb") as writer:
        writer.add_file(source, "dump.rdb")
        writer.commit()
    [backup] = repo.sets()
    obj = backup.manifest.object("dump.rdb")
    assert obj.parts == part_digests(data) and obj.part_size == PART
    assert obj.sha256 == hashlib.sha256(data).hexdigest()
    assert repo.check_objects(backup) == []
    extract_set(repo, backup, tmp_path / "out")
    assert (tmp_path / "out" / "dump.rdb").read_bytes() == data


def test_ranges_come_down_in_parallel_and_are_read_in_order(s3_bucket: S3Bucket) -> None:
    data = os.urandom(9 * PART + 5)
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="repo/redis/x/dump.rdb", Body=data)
    storage = storage_for(s3_bucket)
    ranges: list[str] = []

    def record(request: Any, **_: Any) -> None:
        ranges.append(header(request, "Range"))
        time.sleep(0.05)  # a slow link: the reader is faster than the ranges

    storage.client.meta.events.register("before-send.s3.GetObject", record)
    with storage.open_read("redis/x/dump.rdb") as stream:
        pieces = []
        while piece := stream.read(777_777):  # reads that straddle chunks and ranges
            pieces.append(piece)
        window = stream.window  # type: ignore[attr-defined]
    assert b"".join(pieces) == data
    assert sorted(ranges) == sorted(f"bytes={o}-{min(o + PART, len(data)) - 1}" for o in range(0, len(data), PART))
    assert window.peak == CONCURRENCY


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, PART + 1])
def test_edges_of_the_part_size(s3_bucket: S3Bucket, size: int) -> None:
    storage = storage_for(s3_bucket)
    data = os.urandom(size)
    written = storage.put_bytes("redis/x/edge", data)
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert written.parts == (part_digests(data) if size >= PART else ())
    assert storage.read_bytes("redis/x/edge") == data
    with storage.open_read("redis/x/edge") as stream:
        assert stream.read(0) == b"" and stream.read(size + 10) == data and stream.read(1) == b""


def test_concurrency_one_is_a_serial_upload(s3_bucket: S3Bucket) -> None:
    storage = storage_for(s3_bucket, concurrency=1)
    data = os.urandom(3 * PART + 1)
    sink = upload(storage, "redis/x/dump.rdb", data)
    assert sink.pipeline is not None and sink.pipeline.peak == 1 and sink.pipeline.finished == [1, 2, 3, 4]
    assert storage.read_bytes("redis/x/dump.rdb") == data


def test_parts_sign_their_checksum_and_other_bodies_stay_signed(s3_bucket: S3Bucket) -> None:
    """A part's body is covered by its signed x-amz-checksum-sha256 (S3 checks it), not hashed a second time."""
    storage = storage_for(s3_bucket)
    headers: dict[str, tuple[str, str]] = {}

    def record(request: Any, event_name: str, **_: Any) -> None:
        headers[event_name.rsplit(".", 1)[1]] = (header(request, "X-Amz-Content-SHA256"),
                                                  header(request, "Authorization"))

    for client in (storage.client, storage.data_client):
        client.meta.events.register("before-send.s3.*", record)
    upload(storage, "redis/x/dump.rdb", os.urandom(PART + 10))
    storage.put_bytes("redis/x/small", b"small")

    for operation in ("UploadPart", "PutObject"):
        content, authorization = headers[operation]
        assert content == "UNSIGNED-PAYLOAD"
        assert "x-amz-checksum-sha256" in authorization.split("SignedHeaders=")[1].split(",")[0]
    content, _ = headers["CompleteMultipartUpload"]  # the part list: no checksum of its own, so a signed body
    assert len(content) == 64 and content != hashlib.sha256(b"").hexdigest()


# --- failures ---------------------------------------------------------------------------------------------------


def test_a_part_that_fails_once_is_tried_again_on_its_own(s3_bucket: S3Bucket,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "bdr")
    storage = storage_for(s3_bucket, transfer_pauses=(0.1, 0.1))
    data = os.urandom(4 * PART + 1)
    attempts: dict[int, int] = {}
    lock = threading.Lock()

    def fail_part_two_once(number: int, request: Any) -> None:
        with lock:
            attempts[number] = attempts.get(number, 0) + 1
            tries = attempts[number]
        if number == 2 and tries <= 2:  # both of botocore's attempts (max_attempts 2): bdr's first try fails
            raise connection_closed(request)

    on_parts(storage, fail_part_two_once)
    upload(storage, "redis/x/dump.rdb", data)

    assert attempts == {1: 1, 2: 3, 3: 1, 4: 1, 5: 1}  # only part 2 was sent again
    assert "S3 UploadPart 2 of" in caplog.text and "trying again" in caplog.text
    assert stored(s3_bucket, "redis/x/dump.rdb") == data
    assert s3_bucket.pending_uploads() == []


def test_a_part_that_keeps_failing_aborts_the_upload_and_leaves_no_part(s3_bucket: S3Bucket) -> None:
    storage = storage_for(s3_bucket, transfer_pauses=(0.1, 0.1))
    sent_after_abort: list[int] = []
    aborted = threading.Event()

    def part_three_never(number: int, request: Any) -> None:
        if aborted.is_set():
            sent_after_abort.append(number)
        if number == 3:
            raise connection_closed(request)
        time.sleep(0.05)

    on_parts(storage, part_three_never)
    storage.client.meta.events.register("before-send.s3.AbortMultipartUpload", lambda **_: aborted.set())
    sink = storage.open_write("redis/x/dump.rdb")
    block = os.urandom(MIB)
    with pytest.raises(ServiceUnavailable) as raised:
        for _ in range(40):  # 8 parts' worth: part 3's failure stops the writer long before the end
            sink.write(block)
        sink.commit()

    message = raised.value.message
    assert raised.value.exit_code == 7 and "\n" not in message
    assert "(upload of redis/x/dump.rdb, gave up after 3 tries" in message
    assert aborted.is_set() and sent_after_abort == []  # the parts in flight ended before the abort
    assert s3_bucket.client.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", []) == []
    assert s3_bucket.keys("repo/") == []
    # a broken sink: the same error again on every write and commit; abort still works
    with pytest.raises(ServiceUnavailable, match="gave up after 3 tries"):
        sink.write(b"more")
    with pytest.raises(ServiceUnavailable, match="gave up after 3 tries"):
        sink.commit()
    sink.abort()
    sink.abort()


def test_a_refused_part_is_not_tried_again_and_aborts_at_once(s3_bucket: S3Bucket) -> None:
    """An answer (here: access denied) rather than an outage: no second try, the upload aborted."""
    storage = storage_for(s3_bucket, transfer_pauses=(5.0,))
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders

    class Raw:
        def stream(self, **_: Any) -> Any:
            yield b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>"

    def denied(request: Any, **_: Any) -> Any:
        if part_number(request) == 2:
            return AWSResponse(request.url, 403, HTTPHeaders(), Raw())
        return None

    storage.data_client.meta.events.register("before-send.s3.UploadPart", denied)
    started = time.monotonic()
    with pytest.raises(RemoteAccessDenied, match="AccessDenied"):
        upload(storage, "redis/x/dump.rdb", os.urandom(3 * PART))
    assert time.monotonic() - started < 5  # no pause of 5 s: not retried
    assert s3_bucket.pending_uploads() == []


def test_abort_while_parts_are_in_flight_leaves_no_part(s3_bucket: S3Bucket) -> None:
    storage = storage_for(s3_bucket)
    events: list[tuple[str, float]] = []
    lock = threading.Lock()

    def slow(number: int, request: Any) -> None:
        time.sleep(0.3)

    def mark(name: str) -> Callable[..., None]:
        def handler(**_: Any) -> None:
            with lock:
                events.append((name, time.monotonic()))
        return handler

    on_parts(storage, slow)
    storage.data_client.meta.events.register("after-call.s3.UploadPart", mark("part sent"))
    storage.client.meta.events.register("before-send.s3.AbortMultipartUpload", mark("abort"))
    sink = storage.open_write("redis/x/dump.rdb")
    block = os.urandom(MIB)
    for _ in range(3 * 5 + 2):  # three parts handed over and a fourth being filled
        sink.write(block)
    sink.abort()  # a failure further up the stack (tar, zstd, encryption) unwinds the sink

    [abort_at] = [at for name, at in events if name == "abort"]
    assert all(at < abort_at for name, at in events if name == "part sent")
    assert s3_bucket.client.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", []) == []
    assert s3_bucket.keys("repo/") == []


# --- memory -----------------------------------------------------------------------------------------------------

def test_memory_stays_at_concurrency_parts_for_a_200_mib_object(s3_bucket: S3Bucket) -> None:
    """200 MiB up and down in 5 MiB parts, 4 at a time, in a process of its own (moto's server here holds
    the object): Python's peak stays at 4 parts (plus a chunk of slack), far under the object's size."""
    result = transfer_memory(s3_bucket, 200 * MIB, CONCURRENCY, download=True, timeout=280)
    assert result["parts"] == 40 and result["same"]
    assert result["pipeline"] == CONCURRENCY and result["window"] == CONCURRENCY  # the bound, reached, not passed
    bound = CONCURRENCY * PART + 2 * MIB
    assert result["up"] < bound, f"upload peak {result['up'] / MIB:.1f} MiB"
    assert result["down"] < bound, f"download peak {result['down'] / MIB:.1f} MiB"


# --- a dropped range ----------------------------------------------------------------------------------------------


DROPS = [(1, "stall"), (CONCURRENCY, "stall"), (CONCURRENCY, "reset")]
"""(concurrency, how the network breaks). A stall keeps what reached bdr's sockets (its reads time out), so
where each range had got to is known to within a chunk; a reset also throws away what sat in their buffers."""


@pytest.mark.parametrize(("concurrency", "mode"), DROPS, ids=[f"{c}-{m}" for c, m in DROPS])
def test_a_drop_in_the_middle_of_a_range_resumes_that_range_only(
    s3_bucket: S3Bucket, flaky_proxy: FlakyProxy, caplog: pytest.LogCaptureFixture, concurrency: int, mode: str
) -> None:
    """The network drops while ranges are on their way: each range it broke is asked again from the byte it had
    reached, pinned to the object's ETag, and only that range; no range that had arrived is fetched again."""
    caplog.set_level(logging.WARNING, "bdr")
    data = os.urandom(6 * PART + 100)
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="repo/redis/x/dump.rdb", Body=data)
    storage = storage_for(s3_bucket, endpoint_url=flaky_proxy.endpoint, concurrency=concurrency,
                          transfer_pauses=(0.5, 1.0, 2.0), connect_timeout=1.0, read_timeout=1.0)
    pinned: list[bool] = []
    answered: list[tuple[int, int]] = []
    lock = threading.Lock()

    def sent(request: Any, **_: Any) -> None:
        with lock:
            pinned.append("If-Match" in request.headers)

    def answer(parsed: dict[str, Any], **_: Any) -> None:
        start, end = str(parsed["ContentRange"]).removeprefix("bytes ").split("/")[0].split("-")
        with lock:
            answered.append((int(start), int(end)))

    storage.client.meta.events.register("before-send.s3.GetObject", sent)
    storage.client.meta.events.register("after-call.s3.GetObject", answer)
    # one range at a time: the cut lands in the middle of the third; four at a time: in the middle of four
    cut_at = 2 * PART + PART // 2 if concurrency == 1 else 2 * PART
    with storage.open_read("redis/x/dump.rdb") as stream:
        flaky_proxy.cut_after(down=max(1, cut_at - flaky_proxy.bytes_down), mode=mode, seconds=2.0)
        got = stream.read()
        resumed = list(stream.resumed)  # type: ignore[attr-defined]

    assert got == data
    assert flaky_proxy.cuts == 1 and resumed and "resuming range" in caplog.text
    assert pinned[0] is False and all(pinned[1:])  # every GET after the first is pinned to the ETag
    ends = {index: min((index + 1) * PART, len(data)) - 1 for index in range(7)}
    for index, at in resumed:
        assert index * PART <= at <= ends[index]  # where that range had got to (in whole chunks)
    # what S3 was asked for and answered: each range once, then, for each break, the rest of that range only
    assert sorted(answered) == sorted([(index * PART, end) for index, end in ends.items()]
                                      + [(at, ends[index]) for index, at in resumed])
    if mode == "stall" and concurrency == 1:
        assert [index for index, _ in resumed] == [2] and resumed[0][1] > 2 * PART  # the middle of the third
    elif mode == "stall":
        assert any(at > index * PART for index, at in resumed)  # 10 MiB over 4 ranges: one got 2.5 MiB or more
    assert s3_bucket.pending_uploads() == []


# --- the setting ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 33, -1, True, "4", 2.5])
def test_concurrency_out_of_range_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match=r"remote\.concurrency must be between 1 and 32"):
        RemoteSettings(concurrency=value).validate("bdr.yaml")  # type: ignore[arg-type]


def test_concurrency_sizes_the_connection_pool(s3_bucket: S3Bucket) -> None:
    storage = storage_for(s3_bucket, concurrency=12)
    for client in (storage.client, storage.data_client):
        config: Any = client.meta.config
        assert config.max_pool_connections == 16
