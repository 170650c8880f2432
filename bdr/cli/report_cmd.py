"""``bdr report``: re-render, sign off, verify and print the compliance report of a drill run.

- ``bdr report RUN [--pdf]``: the HTML again from the run's JSON (the trend from the
  ``history.jsonl`` beside it, as it stood on that run; the sign-offs it has); with the same
  bdr the bytes are those its record vouches for; ``--pdf`` prints it through headless
  Chromium;
- ``bdr report sign RUN --reviewer NAME --role ROLE --decision accepted|rejected``: appends
  a review record to the history (signed with ``drill.signing_key``) and re-renders the HTML
  with the sign-off block filled in (and its stored evidence, when there is some);
- ``bdr report verify RUN [--public-key FILE]``: the files against their records, the
  history's hash chain, the signatures; exit 6 naming the first broken link;
- ``bdr report keygen FILE``: an Ed25519 signing key (0600) and ``FILE.pub`` for the auditor.

``RUN`` is a ``drill-<ts>.json`` (or its ``.html``), a run id in the reports directory
(``--reports``, default ``drill.reports`` of bdr.yaml), or ``latest``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bdr.cli.app import App, json_option, pass_app
from bdr.errors import DrillResultNotFound, UsageError

SUBCOMMANDS = ("render", "sign", "verify", "keygen")


class DefaultGroup(click.Group):
    """``bdr report RUN`` means ``bdr report render RUN``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["render", *args]
        return super().parse_args(ctx, args)


def resolve_run(app: App, run: str, reports: str | None) -> Path:
    """The JSON of ``run``: a path (.json or .html), a run id in the reports directory, or ``latest``."""
    path = Path(run)
    if path.suffix in (".json", ".html", ".xml") or path.exists():
        return path.with_suffix(".json") if path.suffix in (".html", ".xml") else path
    directory = Path(reports) if reports else (app.config.resolve(app.config.drill.reports))
    if run == "latest":
        found = sorted(directory.glob("drill-*.json"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise DrillResultNotFound(path=str(directory / "drill-*.json"))
        return found[-1]
    return directory / (run if run.endswith(".json") else f"{run}.json")


reports_option = click.option("--reports", metavar="DIR", help="Where to find RUN when it is a run id "
                              "(default: drill.reports of bdr.yaml, reports/).")


@click.group("report", cls=DefaultGroup)
def report_group() -> None:
    """Re-render (default), sign off, verify or print a drill run's compliance report.

    \b
      bdr report reports/drill-20261125T060000Z.json
      bdr report latest --pdf
      bdr report sign latest --reviewer "A. Auditor" --role "external auditor" --decision accepted
      bdr report verify latest --public-key /etc/bdr/drill-signing.key.pub
      bdr report keygen /etc/bdr/drill-signing.key
    """


@report_group.command("render")
@click.argument("run", metavar="RUN")
@click.option("--output", "-o", metavar="FILE.html", type=click.Path(path_type=Path),
              help="Where to write the HTML; '-' for stdout (default: RUN with .html).")
@click.option("--history", "history_path", metavar="FILE", type=click.Path(path_type=Path),
              help="history.jsonl for the trend and the sign-offs (default: the one next to RUN, if any).")
@click.option("--no-history", is_flag=True, help="Leave the trend over past runs (and the sign-offs) out.")
@click.option("--pdf", is_flag=True, help="Also print the HTML to RUN.pdf through headless Chromium.")
@click.option("--force", is_flag=True, help="Replace the recorded HTML even when the new one differs from it.")
@reports_option
@json_option
@pass_app
def render_command(app: App, run: str, output: Path | None, history_path: Path | None, no_history: bool, pdf: bool,
                   force: bool, reports: str | None) -> None:
    """Render the HTML compliance report of a drill run from its JSON result."""
    from bdr.report import HISTORY_FILE, load_run_report, rerender
    from bdr.report.files import write_atomic
    from bdr.report.history import read_history
    from bdr.report.integrity import sha256_hex
    from bdr.report.view import summarize

    result = resolve_run(app, run, reports)
    report = load_run_report(result)
    history = None if no_history else read_history(history_path or result.parent / HISTORY_FILE)
    html = rerender(report, history, sha256_hex(result.read_bytes()))
    summary = summarize(report)
    if output is not None and str(output) == "-":
        sys.stdout.write(html)
        return
    target = output or result.with_suffix(".html")
    if output is None and not force and history is not None:
        _refuse_replacing_recorded(history, report.run_id, target, html)
    write_atomic(target, html)
    pdf_path = None
    if pdf:
        from bdr.report.pdf import print_pdf

        pdf_path = print_pdf(target, target.with_suffix(".pdf"))
    if app.json_output:
        app.emit_json({"html": str(target), "pdf": str(pdf_path) if pdf_path else None, "run_id": report.run_id,
                       "all_targets_met": report.all_met, "headline": summary.headline})
        return
    app.line(f"wrote {target}: {summary.headline} ({len(report.results)} scenarios, run {report.run_id})")
    if pdf_path:
        app.line(f"wrote {pdf_path}")


def _refuse_replacing_recorded(history: Any, run_id: str, target: Path, html: str) -> None:
    from bdr.report.integrity import sha256_hex

    record = history.run(run_id)
    if record is None or not target.exists():
        return
    recorded = [record.files.get("html"), *(r.files.get("html") for r in history.reviews_of(run_id))]
    latest = next((sha for sha in reversed(recorded) if sha), None)
    if latest and sha256_hex(html.encode()) != latest:
        raise UsageError(detail=f"the re-rendered HTML differs from the one recorded for {run_id} (another bdr "
                         f"version?); replacing {target} would break its tamper evidence: write it elsewhere with "
                         "--output FILE (or --force)")


@report_group.command("sign")
@click.argument("run", metavar="RUN")
@click.option("--reviewer", required=True, metavar="NAME", help="Who reviewed the report.")
@click.option("--role", required=True, metavar="ROLE", help="In which role (auditor, service owner ...).")
@click.option("--decision", required=True, type=click.Choice(["accepted", "rejected"]))
@click.option("--comment", default="", metavar="TEXT", help="Why, conditions, follow-ups.")
@click.option("--signing-key", metavar="FILE", type=click.Path(dir_okay=False),
              help="Ed25519 key that signs the review record (default: drill.signing_key).")
@click.option("--history", "history_path", metavar="FILE", type=click.Path(path_type=Path))
@reports_option
@json_option
@pass_app
def sign_command(app: App, run: str, reviewer: str, role: str, decision: str, comment: str, signing_key: str | None,
                 history_path: Path | None, reports: str | None) -> None:
    """Sign off a run: append a review record and re-render the HTML with the sign-off block."""
    from bdr.report import HISTORY_FILE, sign_report
    from bdr.report.signing import load_signing_key

    result = resolve_run(app, run, reports)
    config = app.config
    key_file = signing_key or (str(config.resolve(config.drill.signing_key)) if config.drill.signing_key else None)
    key = load_signing_key(key_file) if key_file else None
    history = history_path or result.parent / HISTORY_FILE
    review, html = sign_report(result, reviewer, role, decision, comment, key, history)
    stored: list[str] = []
    if config.path is not None:
        from bdr.repository.evidence import restore_review

        stored = restore_review(config, result, history, review.run_id)
    if app.json_output:
        app.emit_json({"run_id": review.run_id, "reviewer": review.reviewer, "role": review.role,
                       "decision": review.decision, "time": review.time, "html": str(html),
                       "signed_by": review.signed_by or None, "evidence": stored})
        return
    signed = f", signed with key {review.signed_by}" if review.signed_by else " (unsigned: no signing key)"
    app.line(f"{review.decision} by {review.reviewer} ({review.role}) at {review.time}{signed}; wrote {html}")
    for where in stored:
        app.line(f"evidence updated: {where}")


@report_group.command("verify")
@click.argument("run", metavar="RUN")
@click.option("--public-key", metavar="FILE", type=click.Path(dir_okay=False),
              help="The trusted public key (FILE.pub of bdr report keygen): signatures must be by it.")
@click.option("--history", "history_path", metavar="FILE", type=click.Path(path_type=Path))
@reports_option
@json_option
@pass_app
def verify_command(app: App, run: str, public_key: str | None, history_path: Path | None, reports: str | None) -> None:
    """Check a report's files against their records, the history's hash chain and the signatures."""
    from bdr.errors import ReportTampered
    from bdr.report.integrity import verify_report
    from bdr.report.signing import load_public_key

    result = resolve_run(app, run, reports)
    if not result.is_file():
        raise DrillResultNotFound(path=str(result))
    trusted = load_public_key(public_key) if public_key else None
    outcome = verify_report(result, history_path, trusted)
    if app.json_output:
        app.emit_json(outcome.to_dict())
    else:
        for finding in outcome.findings:
            app.line(finding.line(), style=None if not finding.failed else "red")
    first = outcome.first_failure
    if first is not None:
        raise ReportTampered(run_id=outcome.run_id, detail=f"{first.subject}: {first.detail}")
    if not app.json_output:
        app.line(f"report {outcome.run_id}: every file matches its record and the chain is intact")


@report_group.command("keygen")
@click.argument("path", metavar="FILE", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing key file.")
@json_option
@pass_app
def keygen_command(app: App, path: Path, force: bool) -> None:
    """Write a new Ed25519 signing key (0600) and FILE.pub, the public key to hand to the auditor."""
    from bdr.report.signing import generate_key

    key_id, public = generate_key(path, force)
    if app.json_output:
        app.emit_json({"key_file": str(path), "public_key": str(public), "key_id": key_id})
        return
    app.line(f"wrote {path} (key id {key_id}) and {public}; set drill.signing_key: {path} in bdr.yaml and give "
             f"{public.name} to the auditor (bdr report verify --public-key {public.name})")


def register(cli: click.Group) -> None:
    cli.add_command(report_group)
