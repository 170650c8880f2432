"""Tamper evidence of a report: its files against its record, the history's hash chain, the signatures.

A run's record in ``history.jsonl`` holds the sha256 of the run's JSON, HTML and JUnit
files; a sign-off (``bdr report sign``) appends a review record with the sha256 of the JSON
it reviewed and of the HTML re-rendered with the sign-off. Every line carries the hash of
the line before it, and a record may carry an Ed25519 signature (:mod:`.signing`).

:func:`verify_report` checks all of it and names what broke first: a file that differs
from its record (``drill-....html differs from its record: edited after ...``), the first
broken link of the chain (``history.jsonl line 5: ...``), a signature that does not match
or is not by the trusted key. Nothing here trusts the files it checks: the history is
re-read line by line, as bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bdr.report.history import HISTORY_FILE, REVIEW, SIGNATURE_FIELD, line_hash
from bdr.report.signing import check

PASSED = "passed"
FAILED = "FAILED"
NOT_CHECKED = "not checked"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_of_file(path: Path) -> str | None:
    try:
        return sha256_hex(path.read_bytes())
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing :func:`verify_report` checked, and what it found."""

    status: str
    """``passed``, ``FAILED`` or ``not checked``."""
    subject: str
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def line(self) -> str:
        return f"{self.status:<11} {self.subject}: {self.detail}"


@dataclass(frozen=True, slots=True)
class ChainLine:
    """One line of the history file as bytes, and what it parses to (None: it does not)."""

    number: int
    raw: bytes
    data: dict[str, Any] | None
    problem: str = ""


@dataclass(slots=True)
class Verification:
    """Everything checked about one run's report."""

    run_id: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.failed for f in self.findings)

    @property
    def first_failure(self) -> Finding | None:
        return next((f for f in self.findings if f.failed), None)

    def add(self, status: str, subject: str, detail: str) -> None:
        self.findings.append(Finding(status, subject, detail))

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "ok": self.ok,
                "findings": [{"status": f.status, "subject": f.subject, "detail": f.detail} for f in self.findings]}


def read_chain(path: Path) -> list[ChainLine]:
    """Every non-empty line of ``path`` with its number (a missing file: no lines)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    lines: list[ChainLine] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            lines.append(ChainLine(number, line, None, f"not valid JSON ({exc}): torn or edited"))
            continue
        if not isinstance(data, dict):
            lines.append(ChainLine(number, line, None, "not a JSON object: edited"))
            continue
        lines.append(ChainLine(number, line, data))
    return lines


def chain_break(lines: list[ChainLine]) -> str | None:
    """The first broken link of the chain, in words (None: every chained line links to the one before)."""
    previous: ChainLine | None = None
    chained = False
    for line in lines:
        name = f"line {line.number}"
        if line.data is None:
            return f"{name} is {line.problem}"
        run = line.data.get("run_id", "?")
        if "prev" not in line.data:
            if chained:
                return f"{name} (run {run}) has no link to the line before it: inserted or edited"
            previous = line  # a line of schema 1, written before the chain: not linked
            continue
        chained = True
        expected = line_hash(previous.raw) if previous is not None else None
        if line.data["prev"] != expected:
            before = f"line {previous.number}" if previous is not None else "the start of the file"
            return (f"{name} (run {run}) does not link to {before}: {before} was edited, or a line was removed "
                    "or inserted before it")
        previous = line
    return None


def verify_report(json_path: Path, history_path: Path | None = None,
                  trusted: Ed25519PublicKey | None = None) -> Verification:
    """Check the report whose JSON is ``json_path`` (its HTML and XML beside it) against its records."""
    history_path = history_path or json_path.parent / HISTORY_FILE
    raw_json = json_path.read_bytes()
    try:
        run_id = str(json.loads(raw_json)["run_id"])
    except (ValueError, KeyError, TypeError):
        run_id = json_path.stem
    result = Verification(run_id)
    lines = read_chain(history_path)
    if not lines:
        result.add(FAILED, history_path.name, "missing or empty: the run's record (sha256 of its files) is not there")
        return result
    broken = chain_break(lines)
    if broken:
        result.add(FAILED, f"{history_path.name} chain", f"first broken link: {broken}")
    else:
        result.add(PASSED, f"{history_path.name} chain", f"{len(lines)} line(s), every link matches the line "
                   "before it")
    records = [line for line in lines if line.data is not None and line.data.get("run_id") == run_id]
    runs = [line for line in records if line.data is not None and line.data.get("kind", "run") != REVIEW]
    reviews = [line for line in records if line.data is not None and line.data.get("kind") == REVIEW]
    if not runs:
        result.add(FAILED, "record", f"no record of run {run_id} in {history_path.name}: its files cannot be "
                   "checked")
        return result
    run = runs[-1]
    assert run.data is not None
    files = run.data.get("files") or {}
    _file(result, json_path, raw_json, files.get("json"), f"line {run.number}")
    latest_html = next(((line.number, (line.data or {}).get("files", {}).get("html"))
                        for line in reversed([run, *reviews]) if (line.data or {}).get("files", {}).get("html")),
                       (run.number, None))
    html_path = json_path.with_suffix(".html")
    _file(result, html_path, _read(html_path), latest_html[1], f"line {latest_html[0]}")
    xml_path = json_path.with_suffix(".xml")
    _file(result, xml_path, _read(xml_path), files.get("xml"), f"line {run.number}")
    json_sha = sha256_hex(raw_json)
    for review in reviews:
        assert review.data is not None
        reviewed = (review.data.get("files") or {}).get("json")
        if reviewed != json_sha:
            result.add(FAILED, f"review line {review.number}",
                       f"{review.data.get('reviewer')} signed off a different JSON (sha256 {str(reviewed)[:16]}…)")
    for line in [run, *reviews]:
        assert line.data is not None
        body = {k: v for k, v in line.data.items() if k != SIGNATURE_FIELD}
        signature = check(body, line.data.get(SIGNATURE_FIELD), trusted)
        what = f"signature of line {line.number} ({line.data.get('kind', 'run')})"
        if signature.ok is None:
            result.add(FAILED if trusted is not None else NOT_CHECKED, what,
                       "not signed" + ("; a trusted key was given, so a signature was expected" if trusted else
                                       " (set drill.signing_key to sign records)"))
        else:
            result.add(PASSED if signature.ok else FAILED, what, signature.detail)
    return result


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _file(result: Verification, path: Path, data: bytes | None, recorded: Any, where: str) -> None:
    if recorded is None:
        result.add(NOT_CHECKED, path.name, f"no sha256 recorded for it ({where})")
        return
    if data is None:
        result.add(FAILED, path.name, f"missing; its record ({where}) holds sha256 {str(recorded)[:16]}…")
        return
    actual = sha256_hex(data)
    if actual != recorded:
        result.add(FAILED, path.name, f"differs from its record ({where}: sha256 {str(recorded)[:16]}…, the file "
                   f"now {actual[:16]}…): edited after it was written")
        return
    result.add(PASSED, path.name, f"sha256 {actual[:16]}… as recorded ({where})")
