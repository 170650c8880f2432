"""A small client of the Prometheus HTTP API: the calls a backup and a restore make, errors typed.

Only what bdr needs: the TSDB snapshot (admin API), build info, TSDB status, flags,
readiness and a range query. Every failure becomes a :class:`~bdr.errors.ServiceError`
family error naming the server; ``urllib`` exceptions never reach the user.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from bdr.errors import AdminApiDisabled, ServiceError, ServiceUnavailable, TsdbSnapshotFailed

ADMIN_OFF = ("admin apis disabled", "admin api disabled")


@dataclass(frozen=True, slots=True)
class PrometheusClient:
    """The HTTP API of Prometheus ``name`` at ``url``."""

    name: str
    url: str
    timeout: float = 30.0

    def _open(self, path: str, method: str = "GET", timeout: float | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url.rstrip("/") + path, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceUnavailable(service=f"Prometheus {self.name}", address=self.url, detail=str(reason)) \
                from exc

    def _json(self, path: str, method: str = "GET", timeout: float | None = None) -> Any:
        status, body = self._open(path, method, timeout)
        try:
            data = json.loads(body)
        except ValueError:
            raise ServiceError(detail=f"Prometheus {self.name} at {self.url} answered {path} with HTTP {status} "
                               f"and no JSON: {body[:120]!r}") from None
        if status != 200 or data.get("status") != "success":
            raise ServiceError(detail=f"Prometheus {self.name} at {self.url} refused {path} (HTTP {status}): "
                               f"{data.get('error') or body[:120]!r}")
        return data.get("data")

    def ready(self) -> bool:
        """``/-/ready`` answers 200 (the TSDB is loaded)."""
        try:
            return self._open("/-/ready", timeout=2.0)[0] == 200
        except ServiceError:
            return False

    def snapshot(self, timeout: float) -> str:
        """``POST /api/v1/admin/tsdb/snapshot?skip_head=false``: the snapshot's directory name under ``snapshots/``."""
        path = "/api/v1/admin/tsdb/snapshot?skip_head=false"
        status, body = self._open(path, "POST", timeout)
        text = body.decode(errors="replace")
        if status in (404, 405) or any(marker in text.lower() for marker in ADMIN_OFF):
            raise AdminApiDisabled(name=self.name, url=self.url, detail=f"HTTP {status}: {text.strip()[:80]}")
        try:
            data = json.loads(body)
            name = str(data["data"]["name"])
        except (ValueError, KeyError, TypeError):
            raise TsdbSnapshotFailed(name=self.name, detail=f"HTTP {status}: {text.strip()[:200]}") from None
        if status != 200 or "/" in name or name in ("", ".", ".."):
            raise TsdbSnapshotFailed(name=self.name, detail=f"HTTP {status}: {text.strip()[:200]}")
        return name

    def buildinfo(self) -> dict[str, Any]:
        return dict(self._json("/api/v1/status/buildinfo") or {})

    def runtime_info(self) -> dict[str, Any]:
        """``/api/v1/status/runtimeinfo``: the server's start time, reload and storage status."""
        return dict(self._json("/api/v1/status/runtimeinfo") or {})

    def flags(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self._json("/api/v1/status/flags") or {}).items()}

    def head_stats(self) -> dict[str, int]:
        """``headStats`` of ``/api/v1/status/tsdb``: numSeries, chunkCount, minTime, maxTime (ms)."""
        data = self._json("/api/v1/status/tsdb") or {}
        return {str(k): int(v) for k, v in (data.get("headStats") or {}).items()}

    def range_series(self, query: str, start_ms: int, end_ms: int, step: float) -> list[dict[str, Any]]:
        """The series a range query answers with (each with ``metric`` and ``values``)."""
        params = urllib.parse.urlencode({"query": query, "start": f"{start_ms / 1000:.3f}",
                                         "end": f"{end_ms / 1000:.3f}", "step": f"{step:.3f}"})
        data = self._json(f"/api/v1/query_range?{params}") or {}
        return list(data.get("result") or [])

    def instant(self, query: str, time_ms: int) -> list[dict[str, Any]]:
        """The result vector of ``query`` evaluated at ``time_ms``."""
        params = urllib.parse.urlencode({"query": query, "time": f"{time_ms / 1000:.3f}"})
        data = self._json(f"/api/v1/query?{params}") or {}
        return list(data.get("result") or [])

    def scalar(self, query: str, time_ms: int) -> float | None:
        """The single value ``query`` answers at ``time_ms`` (None: no data)."""
        result = self.instant(query, time_ms)
        if not result:
            return None
        return float(result[0]["value"][1])

    def series_count(self, start_ms: int, end_ms: int) -> int:
        """How many series hold a sample between ``start_ms`` and ``end_ms`` (``/api/v1/series``)."""
        params = urllib.parse.urlencode({"match[]": '{__name__=~".+"}', "start": f"{start_ms / 1000:.3f}",
                                         "end": f"{end_ms / 1000:.3f}"})
        return len(self._json(f"/api/v1/series?{params}") or [])
