"""The pytest plugin of the drill suite: options, fixtures, and the compliance reporter.

Registered through the ``pytest11`` entry point ``bdr_drills``. Options live in the
``disaster recovery drills`` group; the reporter is registered in ``pytest_configure``
(not on xdist workers) and writes the HTML/JSON/JUnit reports and the history at the end.
Per-test evidence travels from the ``drill`` fixture into the item's stash, then into the
test report (``user_properties``) through the ``pytest_runtest_makereport`` hookwrapper.

A scenario's marker names what it exercises: ``@pytest.mark.drill(name, title=...,
sources=(...), objectives=(...))``; the sources pick the owners of its remediation items,
the objectives feed the coverage matrix (a skipped scenario still shows what it would have
tested). The report itself is :mod:`bdr.report`'s, the same as the live restore test's.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bdr.report.provenance import host_facts, operator_name
from bdr.report.records import DrillResult, Outcome, RunReport
from bdr.report.verdict import verdict_of
from bdr.repository.manifest import to_iso
from bdr.util.durations import format_duration
from drills import pytest_html_columns
from drills.policy import Policy, load_policy
from drills.recorder import Drill
from drills.scope import sandbox_scope
from drills.stack import RUNTIMES, SCALES, Stack, runtime_environment

RESULT_KEY = pytest.StashKey[DrillResult]()
REPORTER_KEY = pytest.StashKey["DrillReporter"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dr", "disaster recovery drills")
    group.addoption("--dr-policy", metavar="PATH", default=None,
                    help="bdr.yaml whose targets the drills are held to (default: ./bdr.yaml, else the "
                    "runbook's targets).")
    group.addoption("--dr-runtime", choices=sorted(RUNTIMES.names()), default="process",
                    help="Run the services as local processes or containers (default: process).")
    group.addoption("--dr-scale", choices=sorted(SCALES), default="small",
                    help="Workload size: small (CI), medium, large (monthly: ≥1M keys, 100k vectors).")
    group.addoption("--dr-reports", metavar="DIR", default="reports",
                    help="Where the compliance reports and history.jsonl go (default: reports/).")
    group.addoption("--dr-no-report", action="store_true", help="Do not write the compliance report.")
    group.addoption("--dr-operator", metavar="NAME", default=None,
                    help="Who runs the drill, for the report (default: the login user).")
    group.addoption("--dr-signing-key", metavar="FILE", default=None,
                    help="Ed25519 key that signs the run's record (default: drill.signing_key of the policy).")
    group.addoption("--dr-evidence", action="store_true",
                    help="Also store the reports as evidence in the policy's repository (evidence/<run id>/).")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "drill(name, title, case, sources, objectives): a disaster-recovery scenario of "
                            "the runbook, the sources it exercises and the objectives it measures")
    if hasattr(config, "workerinput"):  # xdist worker: the controller reports
        return
    reporter = DrillReporter(config)
    config.stash[REPORTER_KEY] = reporter
    config.pluginmanager.register(reporter, "bdr-drill-reporter")
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(HtmlColumns(), "bdr-drill-html-columns")


def pytest_unconfigure(config: pytest.Config) -> None:
    reporter = config.stash.get(REPORTER_KEY, None)
    if reporter is not None:
        del config.stash[REPORTER_KEY]
        config.pluginmanager.unregister(reporter)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    result = item.stash.get(RESULT_KEY, None)
    if result is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        if report.skipped:
            result.outcome = Outcome.SKIPPED
            result.failure = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
        elif report.failed:
            result.outcome = Outcome.FAILED if report.when == "call" else Outcome.ERROR
            crash = getattr(report.longrepr, "reprcrash", None)
            result.failure = (crash.message if crash else str(report.longrepr)).strip()
        report.user_properties.extend(drill_properties(result))


def drill_properties(result: DrillResult) -> list[tuple[str, str]]:
    """What pytest-html and JUnit show for a drill: scenario, RTO, RPO, verdict."""
    def target(seconds: float | None) -> str:
        return "no target" if seconds is None else format_duration(seconds)

    rto = result.rto
    rto_text = (
        f"{format_duration(rto.achieved_seconds)} / {target(rto.target_seconds)}"
        if rto and rto.achieved_seconds is not None else "-"
    )
    rpo_text = ", ".join(
        f"{c.name} {format_duration(c.achieved_seconds) if c.achieved_seconds is not None else '?'} / "
        f"{target(c.target_seconds)}"
        for c in result.rpos
    ) or "-"
    return [("drill_scenario", result.key), ("drill_rto", rto_text), ("drill_rpo", rpo_text),
            ("drill_verdict", str(verdict_of(result)))]


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dr_policy(pytestconfig: pytest.Config) -> Policy:
    """The policy file in force."""
    return load_policy(pytestconfig.getoption("--dr-policy"))


@pytest.fixture
def stack(request: pytest.FixtureRequest, tmp_path: Path, dr_policy: Policy, drill: Drill) -> Iterator[Stack]:
    """The agent backend's services with their workload loaded, on the chosen runtime (skips when
    that runtime cannot run here); removed afterwards, pass or fail. The runtime, images and
    container ids go into the drill's evidence."""
    runtime = request.config.getoption("--dr-runtime")
    scale = SCALES[request.config.getoption("--dr-scale")]
    started = Stack.start(tmp_path / "stack", runtime, scale, dr_policy.config)
    try:
        started.record(drill.evidence)
        started.load_workload()
        yield started
    finally:
        try:
            started.record(drill.evidence)
        finally:
            started.stop()


@pytest.fixture
def drill(request: pytest.FixtureRequest, dr_policy: Policy) -> Iterator[Drill]:
    """The recorder of the scenario: steps, fault, verification, objectives."""
    marker = request.node.get_closest_marker("drill")
    name = marker.args[0] if marker and marker.args else request.node.name
    kwargs = marker.kwargs if marker else {}
    title = kwargs.get("title", name)
    function = getattr(request.node, "originalname", request.node.name)
    result = DrillResult(
        scenario=name,
        title=title,
        nodeid=request.node.nodeid,
        runtime=request.config.getoption("--dr-runtime"),
        started_at=to_iso(datetime.now(UTC)),
        case=kwargs.get("case") or function.removeprefix("test_"),
        sources=list(kwargs.get("sources", ())),
        planned=list(kwargs.get("objectives", ())),
    )
    request.node.stash[RESULT_KEY] = result
    recorder = Drill(result, dr_policy)
    yield recorder
    result.finished_at = to_iso(datetime.now(UTC))
    reporter = request.config.stash.get(REPORTER_KEY, None)
    if reporter is not None:
        reporter.results.append(result)


class HtmlColumns:
    """pytest-html's results table gains the scenario, RTO, RPO and verdict (only when pytest-html runs)."""

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        pytest_html_columns.table_header(cells)

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        pytest_html_columns.table_row(report, cells)


# --- the reporter --------------------------------------------------------------------------


class DrillReporter:
    """Collects every scenario's result and writes the compliance report at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: list[DrillResult] = []
        self.started = datetime.now(UTC)
        self.paths: Any = None
        self.stored: Any = None

    def environment(self, policy: Policy) -> dict[str, Any]:
        from drills.versions import service_versions

        runtime = self.config.getoption("--dr-runtime")
        return {
            **host_facts(),
            "user": operator_name(),
            "runtime": runtime,
            **runtime_environment(runtime),
            "scale": self.config.getoption("--dr-scale"),
            "policy_file": policy.path,
            "policy_sha256": policy.sha256,
            "policy_git_commit": policy.git_commit,
            **service_versions(),
        }

    def build(self) -> RunReport:
        policy = load_policy(self.config.getoption("--dr-policy"))
        results = list(self.results)
        scale = SCALES[self.config.getoption("--dr-scale")]
        return RunReport(
            run_id=f"drill-{self.started:%Y%m%dT%H%M%SZ}",
            started_at=to_iso(self.started),
            finished_at=to_iso(datetime.now(UTC)),
            results=results,
            environment=self.environment(policy),
            policy=policy.to_dict(),
            scope=sandbox_scope(results, self.config.getoption("--dr-runtime"), scale),
            operator=operator_name(self.config.getoption("--dr-operator")),
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.results or self.config.getoption("--dr-no-report"):
            return
        from bdr.report import write_reports
        from bdr.report.signing import load_signing_key

        out = Path(self.config.getoption("--dr-reports"))
        if not out.is_absolute():
            out = Path(str(self.config.invocation_params.dir)) / out
        policy = load_policy(self.config.getoption("--dr-policy"))
        settings = policy.config.drill
        key_file = self.config.getoption("--dr-signing-key") or settings.signing_key
        key = load_signing_key(policy.config.resolve(key_file)) if key_file else None
        report = self.build()
        self.paths = write_reports(report, out, owners=policy.config.owners, due_after=settings.remediation_due,
                                   signing_key=key)
        if self.config.getoption("--dr-evidence"):
            from bdr.repository.evidence import store_run

            self.stored = store_run(policy.config, self.paths)
        try:
            from bdr.monitoring.metrics import record_drill_report
        except ImportError:
            return
        from bdr.report.for_metrics import for_metrics

        record_drill_report(policy.config, for_metrics(report))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        terminalreporter.section("disaster recovery drills")
        for result in self.results:
            verdict = verdict_of(result).upper()
            parts = [c.describe() for c in result.checks]
            terminalreporter.write_line(f"{verdict:<9} {result.title}: {'; '.join(parts) or result.failure}")
        if self.paths is not None:
            terminalreporter.write_line(f"compliance report: {self.paths.html}")
        if self.stored:
            terminalreporter.write_line(f"stored as evidence: {', '.join(self.stored)}")
