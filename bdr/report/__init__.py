"""The compliance report of a drill run: what an auditor reads, what CI parses.

:func:`write_reports` turns one :class:`~drills.evidence.RunReport` into
``drill-<UTC timestamp>.html`` (standalone, printable), ``.json`` (the documented schema,
``RunReport.to_dict()``) and ``.xml`` (JUnit) in the reports directory, and appends the run
to ``history.jsonl`` so the next report can show the trend. :func:`load_run_report` reads a
JSON result back (``bdr report`` re-renders the HTML from it).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdr.errors import DrillResultNotFound, InvalidDrillResult, StorageError
from bdr.report.records import JSON_SCHEMA_VERSION, RunReport
from bdr.report.files import ensure_dir, write_atomic
from bdr.report.history import HISTORY_FILE, History, append_history, entry_of, read_history
from bdr.report.html import render_html
from bdr.report.junit import render_junit

__all__ = ["HISTORY_FILE", "ReportPaths", "load_run_report", "render_html", "render_json", "render_junit",
           "write_reports"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReportPaths:
    """Where the files of one run were written."""

    html: Path
    json: Path
    junit: Path
    history: Path | None
    """None when the history was not updated."""


def render_json(report: RunReport) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"


def _stem(run_id: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._") or "drill"
    return stem if stem.startswith("drill") else f"drill-{stem}"


def write_reports(report: RunReport, out_dir: Path, history: bool = True) -> ReportPaths:
    """Write the HTML, JSON and JUnit reports of ``report`` into ``out_dir``, and append to its history.

    The JSON goes first (it is the record; the others are views of it), the history last,
    so an interrupted write never leaves a history line without its report.
    """
    ensure_dir(out_dir)
    stem = _stem(report.run_id)
    history_path = out_dir / HISTORY_FILE
    entry = entry_of(report)
    past = read_history(history_path) if history else History()
    json_path = write_atomic(out_dir / f"{stem}.json", render_json(report))
    junit_path = write_atomic(out_dir / f"{stem}.xml", render_junit(report))
    html_path = write_atomic(out_dir / f"{stem}.html", render_html(report, past.including(entry)))
    if history:
        append_history(history_path, entry)
    logger.info("drill report %s written to %s", report.run_id, out_dir)
    return ReportPaths(html=html_path, json=json_path, junit=junit_path, history=history_path if history else None)


def load_run_report(path: Path) -> RunReport:
    """The run recorded in a ``drill-<ts>.json``; a typed one-line error when it is not one."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DrillResultNotFound(path=str(path)) from exc
    except IsADirectoryError as exc:
        raise InvalidDrillResult(path=str(path), detail="it is a directory") from exc
    except OSError as exc:
        raise StorageError(detail=f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data: Any = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidDrillResult(path=str(path), detail=f"not valid JSON ({_reason(exc)})") from exc
    if not isinstance(data, dict):
        raise InvalidDrillResult(path=str(path), detail=f"expected a JSON object, found {type(data).__name__}")
    version = data.get("schema_version")
    if isinstance(version, int) and version > JSON_SCHEMA_VERSION:
        raise InvalidDrillResult(path=str(path), detail=f"schema version {version} is newer than this bdr "
                                 f"understands ({JSON_SCHEMA_VERSION}): upgrade bdr")
    try:
        report = RunReport.from_dict(data)
    except KeyError as exc:
        raise InvalidDrillResult(path=str(path), detail=f"missing field {exc.args[0]!r}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidDrillResult(path=str(path), detail=f"unexpected content ({exc})") from exc
    if not isinstance(report.results, list) or not isinstance(report.environment, dict):
        raise InvalidDrillResult(path=str(path), detail="results must be a list and environment an object")
    return report


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return str(exc)
