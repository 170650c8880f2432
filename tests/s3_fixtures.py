"""S3 for tests: moto's real S3 server on 127.0.0.1 (a free port), a fresh bucket per test.

A pytest plugin (``pytest_plugins = ["tests.s3_fixtures"]`` in the top-level conftest, or
``-p tests.s3_fixtures``). The server runs in a thread of the test process for the whole
session; each test gets its own bucket, fake credentials in the environment, and no path
to real AWS (no profile files, no instance metadata lookups).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from bdr.config import RemoteSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TEST_ACCESS_KEY = "AKIABDRTESTKEY000000"
TEST_SECRET_KEY = "bdr-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class MotoServer:
    """The running server: where it listens and how to switch its authentication on."""

    endpoint: str

    def client(self) -> S3Client:
        """A plain boto3 client, to look at (or tamper with) the bucket behind bdr's back."""
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=TEST_ACCESS_KEY, aws_secret_access_key=TEST_SECRET_KEY)

    def require_auth(self, after_requests: float) -> None:
        """Check signatures and keys after ``after_requests`` more requests (``inf``: never)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", data=str(after_requests).encode(),
                                         method="POST", headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


@dataclass(frozen=True, slots=True)
class S3Bucket:
    """A fresh, empty bucket on the moto server."""

    name: str
    server: MotoServer
    client: S3Client

    def url(self, prefix: str = "repo") -> str:
        return f"s3://{self.name}/{prefix}" if prefix else f"s3://{self.name}"

    def settings(self, **changes: Any) -> RemoteSettings:
        """Remote settings pointing at this bucket, with the smallest part size S3 allows (5 MiB)."""
        values: dict[str, Any] = {"url": self.url(), "endpoint_url": self.server.endpoint, "region": REGION,
                                  "part_size_mib": 5, "max_attempts": 2}
        values.update(changes)
        return RemoteSettings(**values)

    def pending_uploads(self) -> list[str]:
        """Keys of multipart uploads started and neither completed nor aborted (orphaned parts)."""
        return [u["Key"] for u in self.client.list_multipart_uploads(Bucket=self.name).get("Uploads", [])]

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's S3 server, in a thread, on 127.0.0.1 and a port the OS picked."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoServer(endpoint=f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials in the environment and nothing that could reach real AWS."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))


@pytest.fixture
def s3_bucket(moto_server: MotoServer, aws_env: None) -> Iterator[S3Bucket]:
    """A new empty bucket; emptied and removed after the test so the server's memory stays small."""
    client = moto_server.client()
    name = f"bdr-test-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name)
    yield S3Bucket(name, moto_server, client)
    for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
        client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=name)
    for page in pages:
        objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if objects:
            client.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})  # type: ignore[typeddict-item]
    client.delete_bucket(Bucket=name)


# --- a flaky network between bdr and S3 ---------------------------------------------------------------


class FlakyProxy:
    """A TCP proxy on 127.0.0.1 in front of moto that a test can cut and restore, mid-transfer.

    ``cut("reset")`` resets every open connection and every new one; ``cut("refuse")`` resets
    the open ones and closes the listening socket, so connecting is refused; ``cut("stall")``
    stops forwarding while keeping the connections open (the client's read times out).
    ``seconds`` restores it by itself; :meth:`cut_after` arms a cut for when ``up`` bytes
    (requests) or ``down`` bytes (responses) have gone through, so it lands mid-transfer;
    :meth:`lose_answer_to` lets one request whose bytes hold a marker through and resets its
    connection instead of passing on the answer (S3 did it; the client never hears so).
    """

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.mode = "forward"
        self.connections = 0
        self.cuts = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._trigger: tuple[str, int, str, float | None] | None = None
        self._lose_marker: bytes | None = None
        self.answers_lost = 0
        self._lock = threading.Lock()
        self._stopped = False
        self._listener: socket.socket | None = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, name="flaky-proxy", daemon=True).start()

    @staticmethod
    def _listen(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(64)
        sock.settimeout(0.05)
        return sock

    # --- what a test does -----------------------------------------------------------------------

    def cut(self, mode: str = "reset", seconds: float | None = None) -> None:
        """Break the network (``reset``, ``refuse`` or ``stall``); back by itself after ``seconds``."""
        if mode not in ("reset", "refuse", "stall"):
            raise ValueError(mode)
        with self._lock:
            self.mode = mode
            self.cuts += 1
            if mode == "refuse" and self._listener is not None:
                self._listener.close()
                self._listener = None
        if seconds is not None:
            timer = threading.Timer(seconds, self.restore)
            timer.daemon = True
            timer.start()

    def cut_after(self, *, up: int | None = None, down: int | None = None, mode: str = "reset",
                  seconds: float | None = None) -> None:
        """Cut once ``up`` more request bytes (or ``down`` more response bytes) have gone through."""
        with self._lock:
            if up is not None:
                self._trigger = ("up", self.bytes_up + up, mode, seconds)
            elif down is not None:
                self._trigger = ("down", self.bytes_down + down, mode, seconds)

    def lose_answer_to(self, marker: bytes) -> None:
        """Let the next request containing ``marker`` reach S3, then reset instead of answering."""
        self._lose_marker = marker

    def restore(self) -> None:
        with self._lock:
            if self._listener is None and not self._stopped:
                self._listener = self._listen(self.port)
            self.mode = "forward"

    def close(self) -> None:
        with self._lock:
            self._stopped = True
            self.mode = "reset"
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    # --- the proxy ------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped:
            listener = self._listener
            if listener is None:
                time.sleep(0.02)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def _count(self, direction: str, size: int) -> None:
        with self._lock:
            if direction == "up":
                self.bytes_up += size
                total = self.bytes_up
            else:
                self.bytes_down += size
                total = self.bytes_down
            trigger = self._trigger
            if trigger is None or trigger[0] != direction or total < trigger[1]:
                return
            self._trigger = None
        self.cut(trigger[2], trigger[3])

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            while self.mode == "stall":
                time.sleep(0.02)
            if self.mode != "forward":
                return
            upstream = socket.create_connection(self.upstream)
            peers = {client: (upstream, "up"), upstream: (client, "down")}
            losing = False
            while True:
                while self.mode == "stall":
                    time.sleep(0.02)
                if self.mode != "forward":
                    return
                ready, _, _ = select.select(list(peers), [], [], 0.05)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    other, direction = peers[sock]
                    self._count(direction, len(data))
                    marker = self._lose_marker
                    if direction == "up" and marker is not None and marker in data:
                        self._lose_marker, losing = None, True
                    if direction == "down" and losing:
                        self.answers_lost += 1
                        self._reset(client)
                        return
                    while self.mode == "stall":  # a stalled network delays bytes, it does not lose them
                        time.sleep(0.02)
                    if self.mode != "forward":
                        return
                    other.sendall(data)
        except OSError:
            return
        finally:
            if self.mode == "forward":
                client.close()
            else:
                self._reset(client)
            if upstream is not None:
                upstream.close()


@pytest.fixture
def flaky_proxy(moto_server: MotoServer) -> Iterator[FlakyProxy]:
    """A proxy in front of moto's server, to cut the network between bdr and S3."""
    proxy = FlakyProxy(moto_server.endpoint)
    try:
        yield proxy
    finally:
        proxy.close()


TRANSFER_SCRIPT = """
import hashlib, json, os, sys, tracemalloc
from bdr.config import RemoteSettings
from bdr.storage.s3 import open_s3
url, endpoint, size, concurrency, down = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
storage = open_s3(url, RemoteSettings(endpoint_url=endpoint, part_size_mib=5, concurrency=concurrency))
block = os.urandom(1024 * 1024)
tracemalloc.start()
sink = storage.open_write("redis/big/object")
for _ in range(size // len(block)):
    sink.write(block)
written = sink.commit()
result = {"up": tracemalloc.get_traced_memory()[1], "parts": len(written.parts), "pipeline": sink.pipeline.peak}
if down == "down":
    tracemalloc.reset_peak()
    digest = hashlib.sha256()
    with storage.open_read("redis/big/object") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
        result["window"] = stream.window.peak
    result.update(down=tracemalloc.get_traced_memory()[1], same=digest.hexdigest() == written.sha256)
print(json.dumps(result))
"""
"""Uploads ``size`` bytes of random data to ``redis/big/object`` (and reads them back with ``down``), printing
Python's peak memory (tracemalloc) for each way as JSON."""


def transfer_memory(bucket: S3Bucket, size: int, concurrency: int, *, download: bool = False,
                    timeout: float = 120) -> dict[str, Any]:
    """Run :data:`TRANSFER_SCRIPT` in a process of its own (here moto's server would count the bytes it stores)."""
    done = subprocess.run([sys.executable, "-c", TRANSFER_SCRIPT, bucket.url(), bucket.server.endpoint, str(size),
                           str(concurrency), "down" if download else "up"],
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result
