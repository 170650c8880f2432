"""``bdr report``: re-render the compliance report of a drill run from its JSON result.

Every drill run writes ``drill-<ts>.json`` next to its HTML report; this command renders
the HTML again from it (after an upgrade of bdr, or from a result kept by CI), with the
trend taken from the ``history.jsonl`` beside it as it stood on that run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bdr.cli.app import App, json_option, pass_app


@click.command("report")
@click.argument("result", metavar="RESULT.json", type=click.Path(path_type=Path))
@click.option("--output", "-o", metavar="FILE.html", type=click.Path(path_type=Path),
              help="Where to write the HTML; '-' for stdout (default: RESULT with .html).")
@click.option("--history", "history_path", metavar="FILE", type=click.Path(path_type=Path),
              help="history.jsonl for the trend (default: the one next to RESULT, if any).")
@click.option("--no-history", is_flag=True, help="Leave the trend over past runs out.")
@json_option
@pass_app
def report_command(app: App, result: Path, output: Path | None, history_path: Path | None, no_history: bool) -> None:
    """Render the HTML compliance report of a drill run from its JSON result.

    \b
      bdr report reports/drill-20261125T060000Z.json
      bdr report drill.json --output /tmp/drill.html
    """
    from drills.report import HISTORY_FILE, load_run_report, render_html
    from drills.report.files import write_atomic
    from drills.report.history import History, entry_of, read_history
    from drills.report.view import summarize

    report = load_run_report(result)
    history = History()
    if not no_history:
        past = read_history(history_path or result.parent / HISTORY_FILE)
        history = past.including(entry_of(report)).until(report.run_id)
    html = render_html(report, history)
    summary = summarize(report)
    if output is not None and str(output) == "-":
        sys.stdout.write(html)
        return
    target = output or result.with_suffix(".html")
    write_atomic(target, html)
    if app.json_output:
        app.emit_json({"html": str(target), "run_id": report.run_id, "all_targets_met": report.all_met,
                       "headline": summary.headline})
        return
    app.line(f"wrote {target}: {summary.headline} ({len(report.results)} scenarios, run {report.run_id})")


def register(cli: click.Group) -> None:
    cli.add_command(report_command)
