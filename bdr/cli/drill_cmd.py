"""``bdr drill``: run the disaster-recovery drills and write the compliance report.

Runs the drill suite (pytest with the ``bdr_drills`` plugin) in this process: every
scenario, or those named with ``--scenario``, or those a configuration change since a git
ref can affect (``--changed-since``). Exit code: pytest's (0 = every target met).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from bdr.cli.app import App, pass_app
from bdr.errors import UsageError


def _module_path(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise UsageError(detail=f"scenario module {module} is not installed")
    return spec.origin


@click.command("drill", context_settings={"ignore_unknown_options": True})
@click.option("--scenario", "-s", "scenarios", multiple=True, metavar="NAME",
              help="Run only this scenario (repeatable); see --list.")
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
@click.option("--changed-since", metavar="REF", help="Run only the scenarios that config changes since REF affect.")
@click.option("--runtime", type=click.Choice(["process", "docker"]), default="process", show_default=True)
@click.option("--scale", type=click.Choice(["small", "medium", "large"]), default="small", show_default=True)
@click.option("--policy", metavar="PATH", help="bdr.yaml holding the targets (default: ./bdr.yaml or built-in).")
@click.option("--reports", metavar="DIR", default="reports", show_default=True, help="Where reports go.")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def drill_command(app: App, scenarios: tuple[str, ...], list_only: bool, changed_since: str | None, runtime: str,
                  scale: str, policy: str | None, reports: str, pytest_args: tuple[str, ...]) -> None:
    """Break real services on purpose, recover them with bdr, and prove the RTO/RPO targets.

    \b
      bdr drill                                   every scenario, small scale
      bdr drill -s redis_restart -s redis_corruption
      bdr drill --scale large                     the monthly restore test
      bdr drill --changed-since origin/main       what a config change can affect (CI)
    """
    import pytest

    from drills.scenarios import SCENARIOS

    if list_only:
        for name, module in SCENARIOS.items():
            app.line(f"{name:<22} {module}")
        return
    chosen = list(scenarios)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        raise UsageError(detail=f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    if changed_since:
        from bdr.lint.changes import changed_files, scenarios_for_changes

        affected = scenarios_for_changes(changed_files(changed_since, Path.cwd()))
        if not affected:
            app.line(f"no configuration change since {changed_since} affects a drill: nothing to run")
            return
        for name, reasons in affected.items():
            app.line(f"  {name}: {'; '.join(reasons)}")
        chosen = [s for s in SCENARIOS if s in affected and (not chosen or s in chosen)]
    modules = [SCENARIOS[s] for s in (chosen or SCENARIOS)]
    paths = [p for p in (_installed(m) for m in modules) if p]
    args = [*paths, "-p", "no:cacheprovider", "--dr-runtime", runtime, "--dr-scale", scale, "--dr-reports",
            reports, "-o", "addopts=", "-q", *pytest_args]
    if scale != "small":
        args += ["-o", "timeout=7200"]  # the monthly (large) run loads a million keys per scenario
    if policy:
        args += ["--dr-policy", policy]
    elif app.config_path:
        args += ["--dr-policy", app.config_path]
    code = pytest.main(args)
    raise SystemExit(int(code))


def _installed(module: str) -> str | None:
    try:
        return _module_path(module)
    except UsageError:
        return None


def register(cli: click.Group) -> None:
    cli.add_command(drill_command)
