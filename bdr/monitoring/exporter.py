"""``bdr exporter``: the backup metrics over HTTP, for Prometheus to scrape.

prometheus_client serves them: its WSGI metrics app (the exposition format the scraper asks
for, gzip when accepted) on its threaded WSGI server, behind a small router that adds
``GET /healthz`` (``ok``), ``GET /`` (a pointer page) and a 404 for anything else. The
:class:`CachedCollector` recomputes the metrics from the repositories and the state file
(:class:`bdr.monitoring.metrics.BackupCollector`) at most once per ``cache_seconds`` however often it is
scraped, one computation at a time, so a busy Prometheus cannot turn into a storm of S3
listings. A repository that cannot be listed is a metric (``backup_repository_up 0``); should
the computation itself fail, the scrape gets a one-line 500 and the server lives on. Each
request has a socket timeout. It listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler

from prometheus_client import make_wsgi_app
from prometheus_client.core import Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from bdr.config import Config
from bdr.monitoring.metrics import BackupCollector, registry_of

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = 30.0
INDEX = b"""<html><head><title>bdr exporter</title></head><body><h1>bdr exporter</h1>
<p><a href="/metrics">/metrics</a>: backup and drill metrics</p></body></html>
"""
_TEXT = "text/plain; charset=utf-8"


class CachedCollector(Collector):
    """What ``inner`` collects, collected again only when older than ``ttl`` seconds; one collection at a time."""

    def __init__(self, inner: Collector, ttl: float) -> None:
        self._inner = inner
        self._ttl = ttl
        self._lock = threading.Lock()
        self._families: list[Metric] | None = None
        self._at = 0.0

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            if self._families is None or time.monotonic() - self._at >= self._ttl:
                self._families = list(self._inner.collect())
                self._at = time.monotonic()
            return self._families


def make_app(collector: Collector) -> WSGIApplication:
    """The exporter's WSGI application: prometheus_client's metrics app at ``/metrics``, plus health and index."""
    metrics = make_wsgi_app(registry_of(collector))

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            try:
                return metrics(environ, start_response)  # type: ignore[no-any-return]
            except Exception as exc:  # a scrape must get an answer, and the server must live on
                logger.exception("cannot compute metrics")
                return _reply(start_response, "500 Internal Server Error",
                              f"bdr exporter: cannot compute metrics: {type(exc).__name__}\n".encode())
        if path == "/healthz":
            return _reply(start_response, "200 OK", b"ok\n")
        if path == "/":
            return _reply(start_response, "200 OK", INDEX, "text/html; charset=utf-8")
        return _reply(start_response, "404 Not Found", b"not found: try /metrics\n")

    return app


def _reply(start_response: StartResponse, status: str, body: bytes, content_type: str = _TEXT) -> Iterator[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    yield body


class _Handler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT
    server_version = "bdr-exporter"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class ExporterServer(ThreadingWSGIServer):
    """prometheus_client's threaded WSGI server, serving :func:`make_app`."""

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/metrics"


def make_server(config: Config, host: str = "127.0.0.1", port: int = 9877, cache_seconds: float = 60.0,
                destinations: Sequence[str | Path] = ()) -> ExporterServer:
    """A bound server (port 0: any free port); run it with ``serve_forever()``, stop with ``shutdown()``."""
    server = ExporterServer((host, port), _Handler)
    server.set_app(make_app(CachedCollector(BackupCollector(config, destinations), cache_seconds)))
    return server
