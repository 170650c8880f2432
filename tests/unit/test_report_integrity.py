"""Tamper evidence: the sha256 of the report files in the run's record, the hash chain, Ed25519 signatures,
sign-off records, and ``bdr report verify`` naming the first broken link."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from bdr.cli.main import cli
from bdr.errors import ReportNotRecorded, UsageError
from bdr.report import ReportPaths, sign_report, write_reports
from bdr.report.history import read_history
from bdr.report.integrity import FAILED, PASSED, verify_report
from bdr.report.signing import generate_key, load_public_key, load_signing_key
from tests.report_samples import RUN_ID, sample_history, sample_report


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "drill-signing.key"
    generate_key(path)
    return path


def _written(tmp_path: Path, key: Path | None = None, runs: int = 3) -> ReportPaths:
    out = tmp_path / "reports"
    signing = load_signing_key(key) if key else None
    for number, entry in enumerate(sample_history(runs)):
        past = sample_report()
        past.run_id, past.started_at = entry.run_id, entry.time
        past.finished_at = entry.time.replace("T06:00:00", "T06:19:13")
        write_reports(past, out, signing_key=signing)
        assert number < runs
    return write_reports(sample_report(), out, signing_key=signing)


def _statuses(result: object) -> dict[str, str]:
    return {f.subject: f.status for f in result.findings}  # type: ignore[attr-defined]


def test_keygen_writes_a_private_key_only_its_owner_reads_and_a_public_key(tmp_path: Path) -> None:
    path = tmp_path / "k" / "drill.key"
    code, out, err = _run("report", "keygen", str(path))
    assert code == 0, err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and (tmp_path / "k" / "drill.key.pub").is_file()
    assert "drill.key.pub" in out and "drill.signing_key" in out
    code, _, err = _run("report", "keygen", str(path))
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    path.chmod(0o644)
    with pytest.raises(Exception, match="open to other users"):
        load_signing_key(path)


def test_a_signed_report_verifies_against_the_trusted_key(tmp_path: Path, key: Path) -> None:
    paths = _written(tmp_path, key)
    record = paths.record
    assert record is not None and record.signature and record.signature["key_id"] == load_signing_key(key).key_id
    assert set(record.files) == {"json", "html", "xml"}
    result = verify_report(paths.json, trusted=load_public_key(key.with_name(key.name + ".pub")))
    assert result.ok, [f.line() for f in result.findings]
    statuses = _statuses(result)
    assert statuses[f"{RUN_ID}.json"] == statuses[f"{RUN_ID}.html"] == statuses[f"{RUN_ID}.xml"] == PASSED
    assert statuses["history.jsonl chain"] == PASSED
    html = paths.html.read_text()
    assert record.signature["key_id"] in html and (record.prev or "") in html  # the HTML names its chain link
    code, out, _ = _run("report", "verify", str(paths.json), "--public-key", str(key) + ".pub")
    assert code == 0 and "every file matches its record and the chain is intact" in out


@pytest.mark.parametrize("name", ["html", "json", "xml"])
def test_a_tampered_file_is_named(tmp_path: Path, name: str) -> None:
    paths = _written(tmp_path)
    target = {"html": paths.html, "json": paths.json, "xml": paths.junit}[name]
    target.write_text(target.read_text().replace("17m32s", "12m32s").replace("1052.4", "752.4"))
    result = verify_report(paths.json)
    assert not result.ok
    first = result.first_failure
    assert first is not None and first.subject == f"{RUN_ID}.{name}" and "differs from its record" in first.detail
    code, _, err = _run("report", "verify", str(paths.json))
    assert code == 6 and err.count("\n") == 1
    assert err.startswith(f"bdr: error: report {RUN_ID} failed verification: {RUN_ID}.{name}: differs")


def test_an_edited_history_line_is_the_first_broken_link(tmp_path: Path) -> None:
    paths = _written(tmp_path)
    history = tmp_path / "reports" / "history.jsonl"
    lines = history.read_bytes().split(b"\n")
    edited = json.loads(lines[1])
    edited["scenarios"]["complete_data_loss"]["verdict"] = "met"  # make an old breach disappear
    lines[1] = json.dumps(edited, separators=(",", ":")).encode()
    history.write_bytes(b"\n".join(lines))
    result = verify_report(paths.json)
    first = result.first_failure
    assert first is not None and first.subject == "history.jsonl chain"
    assert first.detail.startswith("first broken link: line 3 (run ") and "line 2 was edited" in first.detail
    code, _, err = _run("report", "verify", str(paths.json))
    assert code == 6 and "history.jsonl chain: first broken link: line 3" in err


def test_a_removed_history_line_breaks_the_chain(tmp_path: Path) -> None:
    paths = _written(tmp_path)
    history = tmp_path / "reports" / "history.jsonl"
    lines = history.read_bytes().split(b"\n")
    history.write_bytes(b"\n".join(lines[:1] + lines[2:]))
    first = verify_report(paths.json).first_failure
    assert first is not None and "line 2 (run " in first.detail and "removed or inserted" in first.detail


def test_a_record_rewritten_to_match_a_tampered_json_is_caught_by_its_signature(tmp_path: Path, key: Path) -> None:
    from bdr.report.integrity import sha256_hex

    paths = _written(tmp_path, key, runs=1)
    paths.json.write_text(paths.json.read_text().replace("1052.4", "752.4"))
    history = tmp_path / "reports" / "history.jsonl"
    lines = history.read_bytes().split(b"\n")
    last = json.loads(lines[-2])
    last["files"]["json"] = sha256_hex(paths.json.read_bytes())  # the forger updates the record too
    lines[-2] = json.dumps(last, separators=(",", ":")).encode()
    history.write_bytes(b"\n".join(lines))
    result = verify_report(paths.json)
    assert _statuses(result)[f"{RUN_ID}.json"] == PASSED  # the hash alone no longer proves anything
    signature = next(f for f in result.findings if f.subject.startswith("signature of line 2"))
    assert signature.status == FAILED and "edited after signing" in signature.detail


def test_a_signature_by_another_key_is_not_the_trusted_one(tmp_path: Path, key: Path) -> None:
    paths = _written(tmp_path, key, runs=0)
    other = tmp_path / "other.key"
    generate_key(other)
    result = verify_report(paths.json, trusted=load_public_key(other))
    assert not result.ok and "not by the trusted key" in (result.first_failure.detail if result.first_failure else "")
    unsigned = _written(tmp_path / "unsigned", None, runs=0)
    assert not verify_report(unsigned.json, trusted=load_public_key(key)).ok  # a signature was expected


def test_sign_off_appends_a_review_and_fills_the_sign_off_block(tmp_path: Path, key: Path) -> None:
    paths = _written(tmp_path, key, runs=1)
    assert "Not signed off yet" in paths.html.read_text()
    code, out, err = _run("report", "sign", str(paths.json), "--reviewer", "A. Auditor", "--role",
                          "external auditor", "--decision", "accepted", "--comment", "RTO breach tracked as an item",
                          "--signing-key", str(key))
    assert code == 0, err
    assert out.startswith("accepted by A. Auditor (external auditor) at ") and "signed with key" in out
    reviews = read_history(tmp_path / "reports" / "history.jsonl").reviews_of(RUN_ID)
    assert [(r.reviewer, r.role, r.decision) for r in reviews] == [("A. Auditor", "external auditor", "accepted")]
    text = " ".join(paths.html.read_text().split())
    assert "Not signed off yet" not in text and "A. Auditor" in text and "✔ ACCEPTED" in text
    assert "RTO breach tracked as an item" in text
    result = verify_report(paths.json, trusted=load_public_key(key))
    assert result.ok, [f.line() for f in result.findings]  # the HTML is the one the review recorded
    code, out, _ = _run("report", "render", str(paths.json))
    assert code == 0, "re-rendering with the same bdr gives the recorded bytes again"
    assert verify_report(paths.json).ok


def test_sign_off_is_refused_for_an_edited_report_and_a_blank_reviewer(tmp_path: Path) -> None:
    paths = _written(tmp_path, runs=0)
    with pytest.raises(UsageError, match="--reviewer must not be blank"):
        sign_report(paths.json, "  ", "auditor", "accepted")
    with pytest.raises(UsageError, match="--decision must be one of accepted, rejected"):
        sign_report(paths.json, "A. Auditor", "auditor", "maybe")
    paths.json.write_text(paths.json.read_text().replace("1052.4", "752.4"))
    with pytest.raises(ReportNotRecorded, match="differs from its record"):
        sign_report(paths.json, "A. Auditor", "auditor", "accepted")
    code, _, _ = _run("report", "sign", str(paths.json), "--reviewer", "A", "--role", "r", "--decision", "nope")
    assert code == 2


def test_a_re_render_that_would_replace_the_recorded_html_with_other_bytes_is_refused(tmp_path: Path) -> None:
    paths = _written(tmp_path, runs=0)
    paths.html.write_text(paths.html.read_text() + "<!-- edited -->")  # stands in for another bdr's rendering
    history = tmp_path / "reports" / "history.jsonl"
    lines = history.read_bytes().split(b"\n")
    record = json.loads(lines[-2])
    from bdr.report.integrity import sha256_hex

    record["files"]["html"] = sha256_hex(paths.html.read_bytes())
    lines[-2] = json.dumps(record, separators=(",", ":")).encode()
    history.write_bytes(b"\n".join(lines))
    code, _, err = _run("report", str(paths.json))
    assert code == 2 and "would break its tamper evidence" in err and err.count("\n") == 1
    code, _, _ = _run("report", str(paths.json), "--output", str(tmp_path / "elsewhere.html"))
    assert code == 0
