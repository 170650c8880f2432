"""``bdr lint``: check the configuration against the recovery targets before it ships.

Reads redis.conf, docker-compose files, bdr.yaml (and its schedule, or a crontab) and
reports what a change would cost in RPO/RTO terms. Text on a terminal, ``--json``, or SARIF
for code-scanning UIs; ``--output FILE`` writes the report to a file and still prints the
text. Exit code 1 when a finding is an error (or at least ``--fail-on``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from rich.text import Text

from bdr.cli.app import App, json_option, pass_app
from bdr.errors import CheckFailed, UsageError
from bdr.lint.findings import RULES, Rule, Severity, display_path, human_duration
from bdr.lint.git import toplevel
from bdr.lint.runner import LintOptions, LintReport, installed_schedule, run_lint
from bdr.sources import source_names
from bdr.storage.local import translate_os_error
from bdr.util.durations import parse_duration

STYLES = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def _durations(values: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for value in values:
        source, sep, text = value.partition("=")
        try:
            if not sep or source not in source_names():
                raise ValueError(f"use SOURCE=DURATION with SOURCE one of {', '.join(source_names())}")
            out[source] = parse_duration(text)
        except ValueError as exc:
            raise UsageError(detail=f"--backup-duration {value!r}: {exc} (e.g. redis=2m)") from exc
    return out


@click.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["text", "json", "sarif"]), default="text",
              show_default=True, help="Report format (--json is --format json).")
@click.option("--output", "-o", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report to FILE (the text summary still goes to stdout).")
@click.option("--crontab", "crontabs", multiple=True, metavar="FILE", type=click.Path(path_type=Path),
              help="A crontab whose backup jobs are the schedule (repeatable).")
@click.option("--systemd", "unit_dirs", multiple=True, metavar="DIR", type=click.Path(path_type=Path),
              help="A directory of systemd units whose backup timers are the schedule (repeatable), e.g. "
              "/etc/systemd/system.")
@click.option("--installed", is_flag=True, help="Check what this host has installed: the timers of "
              "/etc/systemd/system, /etc/crontab and /etc/cron.d/*.")
@click.option("--changed-since", metavar="REF", help="Report only on config files changed since this git ref.")
@click.option("--ignore", multiple=True, metavar="RULE", help="Do not report this rule id (repeatable).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Leave out matching files (repeatable).")
@click.option("--backup-duration", "durations", multiple=True, metavar="SOURCE=DURATION",
              help="How long a backup takes (default: measured in the repository, else lint.backup_duration).")
@click.option("--fail-on", type=click.Choice(["error", "warning", "info"]), default="error", show_default=True,
              help="Exit 1 when a finding is at least this severe.")
@click.option("--list-rules", is_flag=True, help="Print the rule catalogue and exit.")
@json_option
@pass_app
def lint_command(app: App, paths: tuple[Path, ...], output_format: str, output: Path | None,
                 crontabs: tuple[Path, ...], unit_dirs: tuple[Path, ...], installed: bool, changed_since: str | None,
                 ignore: tuple[str, ...], exclude: tuple[str, ...], durations: tuple[str, ...], fail_on: str,
                 list_rules: bool) -> None:
    """Check redis.conf, docker-compose*.yml and bdr.yaml against the RPO/RTO targets.

    \b
      bdr lint                                  everything in the current checkout
      bdr lint redis.conf docker-compose.yml    just these files
      bdr lint --crontab /etc/cron.d/backups    with the schedule cron really runs
      bdr lint --installed                      with the timers and crontabs of this host
      bdr lint --format sarif -o lint.sarif     for GitHub code scanning
      bdr lint --changed-since origin/main      only what a pull request changed
    """
    if list_rules:
        _list_rules(app)
        return
    if app.json_output:
        output_format = "json"
    if installed:
        found_dirs, found_crontabs = installed_schedule()
        unit_dirs, crontabs = (*unit_dirs, *found_dirs), (*crontabs, *found_crontabs)
    report = run_lint(LintOptions(
        paths=paths, crontabs=crontabs, unit_dirs=unit_dirs, config_path=app.config_path,
        changed_since=changed_since, ignore=ignore, exclude=exclude, backup_durations=_durations(durations),
    ))
    rendered = _render(report, output_format)
    if output is not None:
        _write(output, rendered)
        if not app.json_output:
            _print_text(app, report)
            app.line(f"wrote the {output_format} report to {output}")
    elif output_format == "text":
        _print_text(app, report)
    else:
        click.echo(rendered, nl=False)
        app.emitted = True  # the report is the document: an exit 1 adds no error document after it
    threshold = Severity(fail_on)
    if report.failed(threshold):
        failing = [f for f in report.findings if f.severity.rank >= threshold.rank]
        ids = ", ".join(dict.fromkeys(f.rule for f in failing))
        raise CheckFailed(detail=f"lint: {len(failing)} finding(s) at {fail_on} level or worse ({ids})")


def _render(report: LintReport, output_format: str) -> str:
    if output_format == "sarif":
        from bdr.lint.sarif import to_sarif

        root = toplevel(report.cwd) or report.cwd
        return json.dumps(to_sarif(report, root), indent=2) + "\n"
    if output_format == "json":
        return json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str) + "\n"
    return "\n".join(text_lines(report)) + "\n"


def _write(path: Path, content: str) -> None:
    """Write atomically: a temporary file next to it, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise translate_os_error(exc, path) from exc


def text_lines(report: LintReport) -> list[str]:
    """The plain-text report (what ``--format text -o FILE`` writes)."""
    lines = [_header(report), ""]
    for f in report.findings:
        lines += [f"{f.where(report.cwd)}: {f.severity} {f.rule} {f.message}",
                  f"    impact: {f.impact}", *(f"    fix: {part}" if i == 0 else f"         {part}"
                                                for i, part in enumerate(f.fix.splitlines())), ""]
    if report.exposures:
        lines.append("worst-case data loss against the RPO:")
        for e in report.exposures:
            verdict = "ok" if not e.breached else "BREACHED"
            lines.append(f"  {e.data_type:<9} {e.event!s:<11} {e.window_text:>9} / RPO {human_duration(e.rpo):>7}"
                         f"  {verdict:<8} {e.setup}")
        lines.append("")
    lines += [f"note: {n}" for n in report.notes]
    lines.append(_summary(report))
    return lines


def _header(report: LintReport) -> str:
    scope = f", changed since {report.changed_since}" if report.changed_since else ""
    policy = report.policy if report.policy_path is None else display_path(report.policy_path, report.cwd)
    return f"bdr lint: {len(report.files)} file(s){scope}; policy: {policy}"


def _summary(report: LintReport) -> str:
    counts = ", ".join(f"{report.count(s)} {s}" for s in Severity)
    return f"{counts}" if report.findings else f"no findings ({counts})"


def _print_text(app: App, report: LintReport) -> None:
    if app.quiet:
        return
    out = app.out
    out.print(Text(_header(report), style="bold"))
    for f in report.findings:
        head = Text()
        head.append(f"\n{f.where(report.cwd)}", style="bold")
        head.append("  ")
        head.append(f"{f.severity}", style=STYLES[f.severity])
        head.append(f"  {f.rule}  ", style="dim")
        head.append(f.message)
        out.print(head)
        out.print(Text(f"    impact: {f.impact}"))
        for i, part in enumerate(f.fix.splitlines()):
            out.print(Text(("    fix: " if i == 0 else "         ") + part, style="green"))
    if report.exposures:
        out.print()
        app.table("worst-case data loss against the RPO", ["data type", "event", "loss", "RPO", "", "where"], [
            (e.data_type, str(e.event), e.window_text, human_duration(e.rpo),
             "ok" if not e.breached else "BREACHED", e.setup)
            for e in report.exposures
        ])
    for note in report.notes:
        out.print(Text(f"note: {note}", style="dim"))
    style = "bold red" if report.failed() else ("yellow" if report.findings else "green")
    out.print(Text(_summary(report), style=style))


def _list_rules(app: App) -> None:
    if app.json_output:
        app.emit_json([{"id": r.id, "name": r.name, "severity": str(r.severity), "summary": r.summary,
                        "help": r.help} for r in _sorted_rules()])
        return
    app.table("bdr lint rules", ["id", "severity", "name", "summary"],
              [(r.id, str(r.severity), r.name, r.summary) for r in _sorted_rules()])


def _sorted_rules() -> list[Rule]:
    return [RULES[rule_id] for rule_id in sorted(RULES)]


def register(cli: click.Group) -> None:
    cli.add_command(lint_command)
