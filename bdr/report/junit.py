"""The drill run as JUnit XML, for CI: one test case per scenario, breaches as failures.

Test suite ``bdr-drills`` (sandbox) or ``bdr-live-drill`` (the live restore test); each
scenario case is a ``testcase`` (classname ``drills.<scenario>``, name the case key) with
``property`` elements for every objective (``rto.<name>.achieved_seconds``,
``.target_seconds``, ``.met``, and the same for ``rpo.<data type>``) and every verification
(``check.<kind>.<name>``: ``passed``, ``FAILED``, ``not verified``), a ``failure`` for a
breached target, a failed check or a failed recovery, an ``error`` when the drill could not
run, and ``skipped``. The steps go to ``system-out`` so a CI log shows the timeline.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from bdr.report.records import DrillResult, RunReport
from bdr.report.verdict import Verdict, verdict_of
from bdr.report.view import ScenarioView, elapsed
from bdr.util.durations import format_duration

SUITE = "bdr-drills"
LIVE_SUITE = "bdr-live-drill"
_ENVIRONMENT_PROPERTIES = ("bdr_version", "host", "runtime", "scale", "policy_file", "policy_sha256",
                           "policy_git_commit", "redis_server", "qdrant_client", "docker_engine", "redis_image",
                           "redis_image_id")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _clean(text: Any) -> str:
    """XML 1.0 cannot hold control characters: drop them."""
    return _CONTROL.sub("", str(text))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "_"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def case_properties(result: DrillResult) -> list[tuple[str, str]]:
    """The objectives of a scenario as JUnit properties (seconds, and ``true``/``false``)."""
    props = [("scenario", result.scenario), ("case", result.key), ("title", result.title),
             ("verdict", str(verdict_of(result)))]
    for check in result.checks:
        prefix = f"{_slug(check.kind)}.{_slug(check.name)}"
        props += [
            (f"{prefix}.achieved_seconds", _seconds(check.achieved_seconds)),
            (f"{prefix}.target_seconds", _seconds(check.target_seconds)),
            (f"{prefix}.met", "true" if check.met else ("false" if check.defined else "no target")),
        ]
    for verification in result.verifications:
        props.append((f"check.{_slug(verification.kind)}.{_slug(verification.name)}", verification.status))
    return props


def _testcase(result: DrillResult) -> ET.Element:
    seconds = elapsed(result.started_at, result.finished_at) if result.finished_at else None
    case = ET.Element("testcase", classname=f"drills.{result.scenario}", name=result.key,
                      time=f"{seconds or 0.0:.3f}", file=result.nodeid.split("::")[0])
    properties = ET.SubElement(case, "properties")
    for name, value in case_properties(result):
        ET.SubElement(properties, "property", name=_clean(name), value=_clean(value))
    scenario = ScenarioView(result)
    verdict = scenario.verdict
    if verdict is Verdict.BREACHED:
        message = scenario.problem
        element = ET.SubElement(case, "failure", message=_clean(message), type="TargetBreached")
        element.text = _clean(result.failure or message)
    elif verdict is Verdict.FAILED:
        element = ET.SubElement(case, "failure", message=_clean(_first_line(result.failure)), type="DrillFailed")
        element.text = _clean(result.failure)
    elif verdict is Verdict.ERROR:
        element = ET.SubElement(case, "error", message=_clean(_first_line(result.failure)), type="DrillError")
        element.text = _clean(result.failure)
    elif verdict is Verdict.SKIPPED:
        ET.SubElement(case, "skipped", message=_clean(result.failure or "skipped"))
    if result.steps:
        out = ET.SubElement(case, "system-out")
        out.text = _clean("\n".join(
            f"+{step.offset:8.3f}s {format_duration(step.seconds):>8} {'ok ' if step.ok else 'FAILED'} "
            f"{step.name}{': ' + step.detail if step.detail else ''}"
            for step in result.steps
        ) + "\n")
    return case


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def render_junit(report: RunReport) -> str:
    """The JUnit XML document of the run."""
    verdicts = [verdict_of(r) for r in report.results]
    total = elapsed(report.started_at, report.finished_at) or 0.0
    name = LIVE_SUITE if report.live else SUITE
    suites = ET.Element("testsuites", name=name)
    suite = ET.SubElement(
        suites, "testsuite",
        name=name,
        tests=str(len(verdicts)),
        failures=str(sum(1 for v in verdicts if v in (Verdict.BREACHED, Verdict.FAILED))),
        errors=str(sum(1 for v in verdicts if v is Verdict.ERROR)),
        skipped=str(sum(1 for v in verdicts if v is Verdict.SKIPPED)),
        time=f"{total:.3f}",
        timestamp=report.started_at,
        hostname=_clean(report.environment.get("host", "")),
    )
    for key, value in (("tests", len(verdicts)), ("failures", suite.get("failures")), ("errors", suite.get("errors")),
                       ("skipped", suite.get("skipped"))):
        suites.set(key, str(value))
    suites.set("time", f"{total:.3f}")
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="run_id", value=_clean(report.run_id))
    ET.SubElement(properties, "property", name="all_targets_met", value="true" if report.all_met else "false")
    ET.SubElement(properties, "property", name="scope", value=_clean(report.scope.kind))
    ET.SubElement(properties, "property", name="operator", value=_clean(report.operator))
    for key in _ENVIRONMENT_PROPERTIES:
        if key in report.environment:
            ET.SubElement(properties, "property", name=key, value=_clean(report.environment[key]))
    for result in report.results:
        suite.append(_testcase(result))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
