"""The compliance report of a drill run (sandbox or live): what an auditor reads and signs, what CI parses.

:func:`write_reports` turns one :class:`~bdr.report.records.RunReport` into
``drill-<UTC timestamp>.json`` (the record: the documented schema), ``.html`` (standalone,
printable) and ``.xml`` (JUnit) in the reports directory, and appends the run's record to
``history.jsonl``: the sha256 of the three files, the objectives per scenario case (for the
trend), the remediation items still open (carried over by the next run), chained to the
line before it and, with a key, signed (Ed25519). :func:`load_run_report` reads a JSON
result back (``bdr report`` re-renders the HTML from it), :func:`sign_report` appends a
reviewer's sign-off, :func:`bdr.report.integrity.verify_report` checks it all, and
:func:`bdr.report.pdf.print_pdf` prints the HTML through headless Chromium.

The product owns this package; the drill suite (``drills/``) and the live restore test
(:mod:`bdr.drill`) both write their runs through it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bdr.errors import DrillResultNotFound, InvalidDrillResult, ReportNotRecorded, StorageError, UsageError
from bdr.report.coverage import coverage_of
from bdr.report.files import ensure_dir, write_atomic
from bdr.report.history import (
    HISTORY_FILE,
    ChainedAppend,
    History,
    HistoryEntry,
    ReviewEntry,
    entry_of,
    read_history,
)
from bdr.report.html import render_html
from bdr.report.integrity import sha256_hex
from bdr.report.junit import render_junit
from bdr.report.records import JSON_SCHEMA_VERSION, RunReport
from bdr.report.remediation import DEFAULT_DUE_SECONDS, remediation_items
from bdr.report.signing import SigningKey
from bdr.report.view import Integrity
from bdr.repository.manifest import to_iso

__all__ = ["HISTORY_FILE", "ReportPaths", "load_run_report", "render_html", "render_json", "render_junit",
           "rerender", "sign_report", "write_reports"]

logger = logging.getLogger(__name__)

DECISIONS = ("accepted", "rejected")


@dataclass(frozen=True, slots=True)
class ReportPaths:
    """Where the files of one run were written, and the record that vouches for them."""

    html: Path
    json: Path
    junit: Path
    history: Path | None
    """None when the history was not updated."""
    record: HistoryEntry | None = None


def render_json(report: RunReport) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"


def _stem(run_id: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._") or "drill"
    return stem if stem.startswith("drill") else f"drill-{stem}"


def finalize(report: RunReport, past: History, owners: Mapping[str, str] | None = None,
             due_after: float = DEFAULT_DUE_SECONDS, now: datetime | None = None) -> None:
    """Fill in what a run's record derives from the runs before it: remediation items and coverage."""
    previous = past.before(report.run_id).latest
    moment = now or datetime.now(UTC)
    report.remediation = remediation_items(report, previous.open_items if previous else (), owners or {}, moment,
                                           due_after)
    report.coverage = coverage_of(report.results, report.policy)


def integrity_of(record: HistoryEntry | None, json_sha256: str, prev: str | None = None,
                 key_id: str = "") -> Integrity:
    if record is not None:
        signed = str(record.signature.get("key_id", "")) if record.signature else ""
        return Integrity(json_sha256=record.files.get("json", json_sha256), prev=record.prev, signing_key_id=signed)
    return Integrity(json_sha256=json_sha256, prev=prev, signing_key_id=key_id)


def write_reports(report: RunReport, out_dir: Path, history: bool = True, *, owners: Mapping[str, str] | None = None,
                  due_after: float = DEFAULT_DUE_SECONDS, signing_key: SigningKey | None = None,
                  now: datetime | None = None) -> ReportPaths:
    """Write the JSON, HTML and JUnit reports of ``report`` into ``out_dir``, and append its record to the history.

    The history file is locked from the moment the previous records are read until the new
    one is appended, so the carried-over items, the chain link the HTML shows and the record
    agree even when two runs finish at once. The JSON goes first (it is the record; the
    others are views of it), the history line last, so an interrupted write never leaves a
    record without its files.
    """
    ensure_dir(out_dir)
    stem = _stem(report.run_id)
    history_path = out_dir / HISTORY_FILE
    if not history:
        finalize(report, History(), owners, due_after, now)
        return _write_files(report, out_dir, stem, History(), None, signing_key, history_path=None)
    with ChainedAppend(history_path) as tail:
        past = read_history(history_path)
        finalize(report, past, owners, due_after, now)
        paths = _write_files(report, out_dir, stem, past, tail.prev, signing_key, history_path)
        files = {"json": sha256_hex(paths.json.read_bytes()), "html": sha256_hex(paths.html.read_bytes()),
                 "xml": sha256_hex(paths.junit.read_bytes())}
        record = tail.append(entry_of(report, files), signing_key.sign if signing_key else None)
    assert isinstance(record, HistoryEntry)
    logger.info("drill report %s written to %s", report.run_id, out_dir)
    return ReportPaths(paths.html, paths.json, paths.junit, history_path, record)


def _write_files(report: RunReport, out_dir: Path, stem: str, past: History, prev: str | None,
                 signing_key: SigningKey | None, history_path: Path | None) -> ReportPaths:
    json_text = render_json(report)
    json_path = write_atomic(out_dir / f"{stem}.json", json_text)
    junit_path = write_atomic(out_dir / f"{stem}.xml", render_junit(report))
    integrity = integrity_of(None, sha256_hex(json_text.encode("utf-8")), prev,
                             signing_key.key_id if signing_key else "")
    html = render_html(report, past.including(entry_of(report)), integrity)
    html_path = write_atomic(out_dir / f"{stem}.html", html)
    return ReportPaths(html=html_path, json=json_path, junit=junit_path, history=history_path)


def rerender(report: RunReport, history: History | None, json_sha256: str) -> str:
    """The HTML of a recorded run as it was written (or as last signed), from its JSON and the history.

    Deterministic: with the same bdr, the bytes equal those the record's sha256 describes.
    ``history`` None: without the trend, the record and the sign-offs.
    """
    if not report.coverage:
        report.coverage = coverage_of(report.results, report.policy)
    if history is None:
        return render_html(report, History(), Integrity(json_sha256=json_sha256, prev=None))
    record = history.run(report.run_id)
    reviews = history.reviews_of(report.run_id)
    trend = history.including(record if record is not None else entry_of(report)).until(report.run_id)
    return render_html(report, trend, integrity_of(record, json_sha256), reviews)


def sign_report(json_path: Path, reviewer: str, role: str, decision: str, comment: str = "",
                signing_key: SigningKey | None = None, history_path: Path | None = None,
                now: datetime | None = None) -> tuple[ReviewEntry, Path]:
    """Append a reviewer's sign-off of the run in ``json_path`` to its history, and re-render its HTML with it.

    Refused when the JSON differs from the run's record: nobody signs off a report that was
    edited after the run.
    """
    if decision not in DECISIONS:
        raise UsageError(detail=f"--decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    for name, value in (("--reviewer", reviewer), ("--role", role)):
        if not value.strip():
            raise UsageError(detail=f"{name} must not be blank: the sign-off names who signed and in which role")
    report = load_run_report(json_path)
    raw = json_path.read_bytes()
    history_path = history_path or json_path.parent / HISTORY_FILE
    with ChainedAppend(history_path) as tail:
        history = read_history(history_path)
        record = history.run(report.run_id)
        if record is None:
            raise ReportNotRecorded(run_id=report.run_id, history=history_path,
                                    detail="only a report bdr recorded can be signed off")
        json_sha = sha256_hex(raw)
        if record.files.get("json") != json_sha:
            raise ReportNotRecorded(run_id=report.run_id, history=history_path,
                                    detail=f"{json_path.name} differs from its record (edited after the run); "
                                    f"run bdr report verify {json_path}")
        moment = to_iso(now or datetime.now(UTC))
        review = ReviewEntry(run_id=report.run_id, time=moment, reviewer=reviewer.strip(), role=role.strip(),
                             decision=decision, comment=comment.strip(), files={"json": json_sha})
        shown = ReviewEntry(**{**_fields(review), "signature": {"key_id": signing_key.key_id}}) if signing_key \
            else review  # the page names the key that is about to sign the review
        reviews = [*history.reviews_of(report.run_id), shown]
        signed = str(record.signature.get("key_id", "")) if record.signature else ""
        integrity = Integrity(json_sha256=json_sha, prev=record.prev, signing_key_id=signed)
        trend = history.until(report.run_id)
        html = render_html(report, trend, integrity, reviews)
        review = ReviewEntry(**{**_fields(review), "files": {"json": json_sha, "html": sha256_hex(html.encode())}})
        html_path = write_atomic(json_path.with_suffix(".html"), html)
        written = tail.append(review, signing_key.sign if signing_key else None)
    assert isinstance(written, ReviewEntry)
    return written, html_path


def _fields(review: ReviewEntry) -> dict[str, Any]:
    return {name: getattr(review, name) for name in review.__dataclass_fields__}


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
