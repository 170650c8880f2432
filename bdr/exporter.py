"""``bdr exporter``: the backup metrics over HTTP, for Prometheus to scrape.

A deliberately small server (the standard library's ``http.server``): one request at a
time, a socket timeout per request, ``GET /metrics`` recomputed from the repositories and
the state file (:mod:`bdr.metrics`), at most once per ``cache_seconds`` however often it is
scraped, so a busy Prometheus cannot turn into a storm of S3 listings. ``GET /`` is a
pointer page, ``GET /healthz`` answers ``ok``. It listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from bdr.config import Config
from bdr.metrics import CONTENT_TYPE, exposition

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = 30.0
INDEX = b"""<html><head><title>bdr exporter</title></head><body><h1>bdr exporter</h1>
<p><a href="/metrics">/metrics</a>: backup and drill metrics</p></body></html>
"""


class MetricsCache:
    """The exposition text, recomputed when older than ``ttl`` seconds; one computation at a time."""

    def __init__(self, compute: Callable[[], str], ttl: float) -> None:
        self._compute = compute
        self._ttl = ttl
        self._lock = threading.Lock()
        self._text: str | None = None
        self._at = 0.0

    def get(self) -> str:
        with self._lock:
            if self._text is None or time.monotonic() - self._at >= self._ttl:
                self._text = self._compute()
                self._at = time.monotonic()
            return self._text


class MetricsHandler(BaseHTTPRequestHandler):
    server: ExporterServer
    timeout = REQUEST_TIMEOUT
    server_version = "bdr-exporter"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                body = self.server.cache.get().encode()
            except Exception as exc:  # a scrape must get an answer, and the server must live on
                logger.exception("cannot compute metrics")
                self._send(500, f"bdr exporter: cannot compute metrics: {type(exc).__name__}\n".encode(),
                           "text/plain; charset=utf-8")
                return
            self._send(200, body, CONTENT_TYPE)
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/":
            self._send(200, INDEX, "text/html; charset=utf-8")
        else:
            self._send(404, b"not found: try /metrics\n", "text/plain; charset=utf-8")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class ExporterServer(HTTPServer):
    """An HTTP server that answers scrapes from a :class:`MetricsCache`."""

    def __init__(self, address: tuple[str, int], cache: MetricsCache) -> None:
        self.cache = cache
        super().__init__(address, MetricsHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/metrics"


def make_server(config: Config, host: str = "127.0.0.1", port: int = 9877, cache_seconds: float = 60.0,
                destinations: Sequence[str | Path] = ()) -> ExporterServer:
    """A bound server (port 0: any free port); run it with ``serve_forever()``, stop with ``shutdown()``."""
    cache = MetricsCache(lambda: exposition(config, destinations), cache_seconds)
    return ExporterServer((host, port), cache)
