"""``bdr drill``: the sandbox drills (bdr proves itself), or ``--live``: the restore test of your own backups.

Without ``--live`` it runs the drill suite (pytest with the ``bdr_drills`` plugin) in this
process: every scenario, or those named with ``--scenario``, or those a configuration change
since a git ref can affect (``--changed-since``); exit code: pytest's (0 = every target met).

With ``--live`` it runs :func:`bdr.drill.live.run_live` on the user's bdr.yaml (the monthly
restore test), writes the report through :mod:`bdr.report` (HTML, JSON, JUnit, history,
signed with ``drill.signing_key``), stores it as evidence in the repository (and off-site
with ``--remote``), and exits 1 on a BREACH (a missed target or a failed check), naming it.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import click

from bdr.cli.app import App, json_option, newest_json, pass_app
from bdr.drill.settings import DRILL_SOURCES
from bdr.errors import UsageError


def _module_path(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise UsageError(detail=f"scenario module {module} is not installed")
    return spec.origin


@click.command("drill", context_settings={"ignore_unknown_options": True})
@click.option("--live", is_flag=True, help="Restore-test the newest backups of bdr.yaml's sources into their test "
              "targets (the monthly restore test), instead of the sandbox drills.")
@click.option("--remote", metavar="URL", is_flag=False, flag_value="", default=None,
              help="--live: take the sets from the off-site repository (default URL: remote.url); the download is "
                   "timed.")
@click.option("--source", "sources", multiple=True, type=click.Choice(list(DRILL_SOURCES)),
              help="--live: test only this source (repeatable; default: every enabled one, prometheus and grafana "
                   "when configured).")
@click.option("--operator", metavar="NAME", help="Who runs the drill, for the report (default: the login user).")
@click.option("--signing-key", metavar="FILE", type=click.Path(dir_okay=False),
              help="Ed25519 key that signs the run's record (default: drill.signing_key).")
@click.option("--no-evidence", is_flag=True, help="--live: do not store the reports in the repository's evidence/.")
@click.option("--pdf", is_flag=True, help="--live: also print the report to PDF (headless Chromium).")
@click.option("--scenario", "-s", "scenarios", multiple=True, metavar="NAME",
              help="Run only this scenario (repeatable); see --list.")
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
@click.option("--changed-since", metavar="REF", help="Run only the scenarios that config changes since REF affect.")
@click.option("--runtime", type=click.Choice(["process", "docker"]), default="process", show_default=True)
@click.option("--scale", type=click.Choice(["small", "medium", "large"]), default="small", show_default=True)
@click.option("--policy", metavar="PATH", help="bdr.yaml holding the targets (default: ./bdr.yaml or built-in).")
@click.option("--reports", metavar="DIR", default=None, help="Where reports go (default: drill.reports, reports/).")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@json_option
@pass_app
def drill_command(app: App, live: bool, remote: str | None, sources: tuple[str, ...], operator: str | None,
                  signing_key: str | None, no_evidence: bool, pdf: bool, scenarios: tuple[str, ...], list_only: bool,
                  changed_since: str | None, runtime: str, scale: str, policy: str | None, reports: str | None,
                  pytest_args: tuple[str, ...]) -> None:
    """Prove the RTO/RPO targets: break sandbox services on purpose, or (--live) restore-test your own backups.

    \b
      bdr drill                                   every sandbox scenario, small scale
      bdr drill -s redis_restart -s redis_corruption
      bdr drill --scale large                     the sandbox at full size
      bdr drill --changed-since origin/main       what a config change can affect (CI)
      bdr drill --live                            the monthly restore test of your backups
      bdr drill --live --remote                   ... from the off-site copies (download timed)
    """
    if live:
        if scenarios or list_only or changed_since or pytest_args:
            raise UsageError(detail="--live tests your own backups; --scenario, --list, --changed-since and pytest "
                             "arguments are for the sandbox drills")
        _live(app, remote, sources, operator, signing_key, no_evidence, pdf, reports)
        return
    if remote is not None or sources or no_evidence or pdf:
        raise UsageError(detail="--remote, --source, --no-evidence and --pdf are for bdr drill --live")
    _sandbox(app, scenarios, list_only, changed_since, runtime, scale, policy, reports or "reports", operator,
             signing_key, pytest_args)


def _live(app: App, remote: str | None, sources: tuple[str, ...], operator: str | None, signing_key: str | None,
          no_evidence: bool, pdf: bool, reports: str | None) -> None:
    from bdr.drill.live import run_live
    from bdr.errors import DrillBreached
    from bdr.report import write_reports
    from bdr.report.signing import load_signing_key
    from bdr.report.view import summarize

    config = app.config
    if remote == "":
        if not config.remote.url:
            raise UsageError(detail="--remote without a URL needs remote.url in bdr.yaml; or pass --remote "
                             "s3://bucket/prefix")
        remote = config.remote.url
    key_file = signing_key or (str(config.resolve(config.drill.signing_key)) if config.drill.signing_key else None)
    key = load_signing_key(key_file) if key_file else None
    out = Path(reports) if reports else config.resolve(config.drill.reports)
    with app.progress("live restore test"):
        report = run_live(config, remote=remote, operator=operator, sources=sources,
                          progress=app.note if app.interactive else None)
    paths = write_reports(report, out, owners=config.owners, due_after=config.drill.remediation_due,
                          signing_key=key)
    stored: list[str] = []
    if not no_evidence:
        from bdr.repository.evidence import store_run

        stored = store_run(config, paths, remote=remote)
    pdf_path = None
    if pdf:
        from bdr.report.pdf import print_pdf

        pdf_path = print_pdf(paths.html, paths.html.with_suffix(".pdf"))
    try:
        from bdr.monitoring.metrics import record_drill_report
        from bdr.report.for_metrics import for_metrics

        record_drill_report(config, for_metrics(report))
    except ImportError:
        pass
    summary = summarize(report)
    if app.json_output:
        app.emit_json({"run_id": report.run_id, "scope": "live", "all_targets_met": report.all_met,
                       "headline": summary.headline, "html": str(paths.html), "json": str(paths.json),
                       "junit": str(paths.junit), "pdf": str(pdf_path) if pdf_path else None, "evidence": stored,
                       "results": [{"scenario": r.key, "targets_met": r.targets_met, "outcome": str(r.outcome)}
                                   for r in report.results]})
    else:
        from bdr.report.verdict import verdict_of

        for result in report.results:
            parts = [c.describe() for c in result.checks]
            parts += [f"{v.kind} check {v.name}: {v.status}" for v in result.verifications if v.status != "passed"]
            app.line(f"{str(verdict_of(result)).upper():<9} {result.title}: {'; '.join(parts) or result.failure}")
        app.line(f"compliance report: {paths.html}")
        if pdf_path:
            app.line(f"pdf: {pdf_path}")
        for where in stored:
            app.line(f"stored as evidence: {where}")
    if not report.all_met:
        broken = [i.title for i in report.remediation if i.open and i.last_seen_run == report.run_id]
        raise DrillBreached(detail="; ".join(broken) or summary.headline, report=paths.html)


def _sandbox(app: App, scenarios: tuple[str, ...], list_only: bool, changed_since: str | None, runtime: str,
             scale: str, policy: str | None, reports: str, operator: str | None, signing_key: str | None,
             pytest_args: tuple[str, ...]) -> None:
    import pytest

    from bdr.drill import catalogue

    known = catalogue.names()
    if list_only:
        if app.json_output:
            app.emit_json([{"name": s.name, "title": s.title, "module": s.module_names[0], "modules": s.module_names,
                            "affected_by": [str(k) for k in s.affected_by]} for s in catalogue.SCENARIOS])
        for item in catalogue.SCENARIOS:
            app.line(f"{item.name:<28} {item.title} ({', '.join(item.modules)})")
        return
    chosen = list(scenarios)
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise UsageError(detail=f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if changed_since:
        from bdr.lint.changes import changed_files, scenarios_for_changes

        affected = scenarios_for_changes(changed_files(changed_since, Path.cwd()))
        if not affected:
            app.line(f"no configuration change since {changed_since} affects a drill: nothing to run")
            return
        for name, reasons in affected.items():
            app.line(f"  {name}: {'; '.join(reasons)}")
        chosen = [s for s in known if s in affected and (not chosen or s in chosen)]
    modules = [m for name in (chosen or known) for m in catalogue.scenario(name).module_names]
    paths = [p for p in (_installed(m) for m in modules) if p]
    args = [*paths, "-p", "no:cacheprovider", "--dr-runtime", runtime, "--dr-scale", scale, "--dr-reports",
            reports, "-o", "addopts=", "-q", *pytest_args]
    if scale != "small":
        args += ["-o", "timeout=7200"]  # the monthly (large) run loads a million keys per scenario
    if policy:
        args += ["--dr-policy", policy]
    elif app.config_path:
        args += ["--dr-policy", app.config_path]
    if operator:
        args += ["--dr-operator", operator]
    if signing_key:
        args += ["--dr-signing-key", signing_key]
    started = time.time()
    with app.stdout_to_stderr():  # --json: pytest's report goes to stderr, the run's JSON to stdout
        code = pytest.main(args)
    if app.json_output:
        written = newest_json(Path(reports), "drill-*.json", started)
        app.emit_json({"exit_code": int(code), "passed": int(code) == 0,
                       "json": str(written[0]) if written else None, "report": written[1] if written else None})
    raise SystemExit(int(code))


def _installed(module: str) -> str | None:
    try:
        return _module_path(module)
    except UsageError:
        return None


def register(cli: click.Group) -> None:
    cli.add_command(drill_command)
