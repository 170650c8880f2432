"""The compliance report as people and CI meet it: in a real browser, and from a real pytest run.

Headless Chromium renders the sample report to a PNG and a PDF (skipped, saying why, when
Chromium is not installed); pytester runs drills through the real plugin (no services: the
drills only use the recorder) and the report files, JUnit XML and pytest-html's columns are
checked as CI would read them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from bdr.report import write_reports
from bdr.report.history import append_history
from tests.report_samples import RUN_ID, sample_history, sample_report

pytest_plugins = ("pytester",)

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                                    "(apt-get install chromium) so the report cannot be rendered in a browser")


def _chromium(tmp_path: Path, *args: str) -> None:
    assert CHROMIUM is not None
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", *args], check=True, capture_output=True, timeout=120,
                   env={**os.environ, "HOME": str(tmp_path)})


def _png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, width, height = 8, b"", 0, 0
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind = data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    return width, height, zlib.decompress(idat)


@pytest.fixture
def report_file(tmp_path: Path) -> Path:
    out = tmp_path / "reports"
    out.mkdir()
    for entry in sample_history():
        append_history(out / "history.jsonl", entry)
    return write_reports(sample_report(), out).html


@needs_chromium
def test_the_report_renders_in_a_browser(tmp_path: Path, report_file: Path) -> None:
    png = tmp_path / "report.png"
    _chromium(tmp_path, "--window-size=1280,4000", f"--screenshot={png}", report_file.as_uri())
    width, height, pixels = _png_pixels(png)
    assert (width, height) == (1280, 4000)
    sample = pixels[: len(pixels) // 2]
    assert len(set(sample)) > 64, "the screenshot is (nearly) blank"
    assert png.stat().st_size > 150_000


@needs_chromium
def test_bdr_report_pdf_prints_it_through_headless_chromium(tmp_path: Path, report_file: Path) -> None:
    from click.testing import CliRunner

    from bdr.cli.main import cli

    result = CliRunner().invoke(cli, ["report", str(report_file.with_suffix(".json")), "--pdf"])
    assert result.exit_code == 0, result.stderr
    pdf = report_file.with_suffix(".pdf")
    data = pdf.read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    assert data.startswith(b"%PDF") and pages >= 4, f"{pages} page(s)"
    assert f"wrote {pdf}" in result.stdout


@needs_chromium
def test_the_report_prints_to_several_pages(tmp_path: Path, report_file: Path) -> None:
    pdf = tmp_path / "report.pdf"
    _chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", report_file.as_uri())
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(data) > 50_000


SCENARIOS = '''
import pytest

pytestmark = pytest.mark.drill("redis_restart", title="A drill that meets its target")


def test_met(drill):
    with drill.step("prepare", "nothing to do"):
        pass
    drill.fault("simulated fault")
    with drill.step("restore"):
        pass
    drill.verified()
    drill.rto("redis_restart")
    drill.evidence["backup_id"] = "redis-20261125T060000Z-abc123"
    drill.assert_targets()


@pytest.mark.drill("redis_local_restore", title="A drill that breaches its target")
def test_breached(drill):
    drill.fault("simulated fault")
    drill.verified()
    drill.check("rto", "redis_local_restore", 0.0, 5.0, note="impossible target")
    drill.assert_targets()


@pytest.mark.drill("offsite_restore", title="A skipped drill")
def test_skipped(drill):
    pytest.skip("no S3 in this environment")


@pytest.fixture
def broken():
    raise RuntimeError("the stack did not start")


@pytest.mark.drill("complete_data_loss", title="A drill that cannot run")
def test_error(drill, broken):
    pass
'''


def test_a_pytest_run_writes_the_reports_and_pytest_html_columns(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_drills=SCENARIOS)
    reports = pytester.path / "out"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--dr-reports", str(reports),
                                           "--html", str(pytester.path / "pytest.html"), "--self-contained-html")
    result.assert_outcomes(passed=1, failed=1, skipped=1, errors=1)
    result.stdout.fnmatch_lines(["*disaster recovery drills*",
                                 "BREACHED  *RTO redis_local_restore: achieved 5.0s, target 0ms*",
                                 f"compliance report: {reports}/drill-*.html"])
    htmls = list(reports.glob("drill-*.html"))
    assert len(htmls) == 1
    stem = htmls[0].with_suffix("")
    html = " ".join(htmls[0].read_text().split())
    assert "1 TARGET BREACHED" in html and "redis-20261125T060000Z-abc123" in html
    data = json.loads(stem.with_suffix(".json").read_text())
    assert {r["scenario"]: r["outcome"] for r in data["results"]} == {
        "redis_restart": "passed", "redis_local_restore": "failed", "offsite_restore": "skipped",
        "complete_data_loss": "error"}
    suite = ET.parse(stem.with_suffix(".xml")).getroot().find("testsuite")
    assert suite is not None
    counts = [suite.get(k) for k in ("tests", "failures", "errors", "skipped")]
    assert counts == ["4", "1", "1", "1"]
    assert len((reports / "history.jsonl").read_text().splitlines()) == 1
    assert data["scope"]["kind"] == "sandbox" and data["operator"], "who ran it is never blank"
    assert data["environment"]["policy_git_commit"]
    restart = next(r for r in data["results"] if r["scenario"] == "redis_restart")
    assert restart["case"] == "met" and restart["key"] == "redis_restart/met"
    assert {i["id"] for i in data["remediation"]} >= {"redis_local_restore/breached: RTO redis_local_restore",
                                                       "offsite_restore/skipped: not run"}
    assert {c["objective"]: c["tested"] for c in data["coverage"]}["rpo metrics"] is False
    pytest_html = (pytester.path / "pytest.html").read_text()
    for column in ("drillScenario", "drillRto", "drillRpo", "drillVerdict"):
        assert f"col-{column}" in pytest_html
    assert "BREACHED" in pytest_html


def test_sample_report_run_id_is_the_file_name(report_file: Path) -> None:
    assert report_file.name == f"{RUN_ID}.html"
