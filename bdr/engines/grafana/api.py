"""Grafana's HTTP API, the few calls bdr makes: health, dashboard search, export, import, folders.

Authenticated with a service account token (``Authorization: Bearer``), read from the file
or the environment variable bdr.yaml names, never from bdr.yaml, never logged. Every
failure is a :class:`~bdr.errors.GrafanaApiError` naming the instance and the call.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from bdr.config import GrafanaInstance
from bdr.errors import ConfigError, GrafanaApiError

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class GrafanaApi:
    """A client of one Grafana instance's HTTP API."""

    name: str
    url: str
    token: str | None
    timeout: float = 30.0

    @classmethod
    def of(cls, instance: GrafanaInstance) -> GrafanaApi:
        if not instance.url:
            raise ConfigError(path="bdr.yaml", detail=f"grafana.{instance.name}.url is not set: the HTTP API is "
                              "needed for this")
        return cls(instance.name, instance.url.rstrip("/"), instance.token(), instance.timeout)

    def _fail(self, detail: str) -> GrafanaApiError:
        return GrafanaApiError(name=self.name, url=self.url, detail=detail)

    def call(self, method: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
        """``method path`` with a JSON ``body``; the decoded JSON answer (None for a 404 with ``missing_ok``)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                return None
            text = exc.read()[:300].decode(errors="replace").strip()
            hint = "; check the token (token_file/token_env of grafana." + self.name + ")" \
                if exc.code in (401, 403) else ""
            raise self._fail(f"{method} {path} answered {exc.code} {exc.reason}: {text or 'no body'}{hint}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise self._fail(f"{method} {path} failed: {reason}; is Grafana running?") from exc
        try:
            return json.loads(raw) if raw else {}
        except ValueError as exc:
            raise self._fail(f"{method} {path} did not answer JSON") from exc

    def health(self) -> dict[str, Any]:
        """``GET /api/health``: version and database state."""
        answer = self.call("GET", "/api/health")
        return answer if isinstance(answer, dict) else {}

    def dashboard_uids(self) -> list[str]:
        """Every dashboard's uid (``/api/search?type=dash-db``, paged)."""
        uids: list[str] = []
        page = 1
        while True:
            query = urllib.parse.urlencode({"type": "dash-db", "limit": 1000, "page": page})
            found = self.call("GET", f"/api/search?{query}") or []
            uids += [str(item["uid"]) for item in found if isinstance(item, dict) and item.get("uid")]
            if len(found) < 1000:
                return uids
            page += 1

    def dashboard(self, uid: str) -> dict[str, Any] | None:
        """``GET /api/dashboards/uid/UID``: ``{"dashboard": ..., "meta": {folderUid, version ...}}``; None: absent."""
        answer = self.call("GET", f"/api/dashboards/uid/{urllib.parse.quote(uid, safe='')}", missing_ok=True)
        return answer if isinstance(answer, dict) else None

    def folder(self, uid: str) -> dict[str, Any] | None:
        answer = self.call("GET", f"/api/folders/{urllib.parse.quote(uid, safe='')}", missing_ok=True)
        return answer if isinstance(answer, dict) else None

    def create_folder(self, uid: str, title: str) -> None:
        self.call("POST", "/api/folders", {"uid": uid, "title": title})

    def import_dashboard(self, exported: dict[str, Any], message: str) -> dict[str, Any]:
        """``POST /api/dashboards/db`` with ``overwrite``, in the folder it was exported from."""
        dashboard = dict(exported["dashboard"])
        dashboard.pop("id", None)
        meta = exported.get("meta") or {}
        body = {"dashboard": dashboard, "overwrite": True, "message": message,
                "folderUid": str(meta.get("folderUid") or "")}
        answer = self.call("POST", "/api/dashboards/db", body)
        return answer if isinstance(answer, dict) else {}

    def delete_dashboard(self, uid: str) -> None:
        self.call("DELETE", f"/api/dashboards/uid/{urllib.parse.quote(uid, safe='')}", missing_ok=True)


__all__ = ["GrafanaApi"]
