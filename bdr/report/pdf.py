"""The report as a PDF, printed by headless Chromium: auditors file PDFs.

The HTML is self-contained and has print styles (A4, page breaks kept out of tables and
charts), so printing it is all a PDF takes. Chromium runs headless, sandboxed from the
network (no fetch happens: the page has no external reference), with a throw-away
profile, and is killed after ``timeout`` seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bdr.errors import PdfUnavailable

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-pdf-header-footer")


def find_browser() -> str | None:
    """The first headless-capable Chromium on PATH (``$BDR_CHROMIUM`` wins)."""
    explicit = os.environ.get("BDR_CHROMIUM")
    if explicit:
        return explicit
    return next((p for p in (shutil.which(name) for name in BROWSERS) if p), None)


def print_pdf(html: Path, pdf: Path, timeout: float = 120.0) -> Path:
    """Print ``html`` to ``pdf`` (written atomically); a typed one-line error when it cannot."""
    browser = find_browser()
    if browser is None:
        raise PdfUnavailable(path=str(html), detail="no Chromium found (apt-get install chromium, or set "
                             "BDR_CHROMIUM to its path)")
    pdf.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bdr-pdf-") as scratch:
        out = Path(scratch) / "report.pdf"
        argv = [browser, *FLAGS, f"--user-data-dir={scratch}/profile", f"--print-to-pdf={out}",
                html.resolve().as_uri()]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                                  stdin=subprocess.DEVNULL, env={**os.environ, "HOME": scratch})
        except subprocess.TimeoutExpired as exc:
            raise PdfUnavailable(path=str(html), detail=f"{browser} did not finish within {timeout:g}s") from exc
        except OSError as exc:
            raise PdfUnavailable(path=str(html), detail=f"cannot run {browser}: {exc.strerror or exc}") from exc
        if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PdfUnavailable(path=str(html), detail=f"{browser} exited {done.returncode}: {tail[0][:200]}")
        tmp = pdf.with_name(f".{pdf.name}.{os.getpid()}.tmp")
        shutil.copyfile(out, tmp)
        os.replace(tmp, pdf)
    return pdf
