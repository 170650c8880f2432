"""JUnit XML for CI: valid, one test case per scenario, breaches as failures, the objectives as properties."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

from bdr.report.junit import render_junit
from tests.report_samples import sample_report, sample_results


def _suite(xml: str) -> ET.Element:
    root = ET.fromstring(xml.encode("utf-8"))
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    return suite


def _case(suite: ET.Element, name: str) -> ET.Element:
    case = suite.find(f"testcase[@name='{name}']")
    assert case is not None, name
    return case


def _properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iterfind("properties/property")}


def test_counts_of_failures_errors_and_skips() -> None:
    suite = _suite(render_junit(sample_report()))
    assert suite.get("name") == "bdr-drills"
    counts = [suite.get(k) for k in ("tests", "failures", "errors", "skipped")]
    assert counts == ["10", "1", "1", "1"]
    assert len(suite.findall("testcase")) == 10
    names = [c.get("name") for c in suite.findall("testcase")]
    assert "accidental_deletion/dropped_qdrant_collection" in names and len(set(names)) == 10
    assert len(suite.findall("testcase/failure")) == 1
    assert len(suite.findall("testcase/error")) == 1
    assert len(suite.findall("testcase/skipped")) == 1
    assert suite.get("hostname") == "dr-runner-01"
    assert suite.get("timestamp") == "2026-11-25T06:00:00.000000Z"


def test_a_breach_is_a_failure_with_the_numbers() -> None:
    case = _case(_suite(render_junit(sample_report())), "complete_data_loss")
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "TargetBreached"
    assert failure.get("message") == "RTO complete_data_loss: achieved 17m32s, target 15m00s (BREACHED)"
    props = _properties(case)
    assert props["verdict"] == "BREACHED"
    assert props["rto.complete_data_loss.achieved_seconds"] == "1052.400"
    assert props["rto.complete_data_loss.target_seconds"] == "900.000"
    assert props["rto.complete_data_loss.met"] == "false"
    assert props["rpo.sessions.met"] == "true"
    assert case.get("classname") == "drills.complete_data_loss"
    assert case.get("time") == "1105.000"


def test_a_met_scenario_passes_with_its_properties_and_steps() -> None:
    case = _case(_suite(render_junit(sample_report())), "redis_restart")
    assert case.find("failure") is None and case.find("error") is None and case.find("skipped") is None
    props = _properties(case)
    assert props["rto.redis_restart.achieved_seconds"] == "1.000"
    assert props["loss_window.sessions_appendfsync_everysec.met"] == "true"
    out = case.findtext("system-out") or ""
    assert "fault injected: kill -9 redis-server" in out and "data verified" in out


def test_error_and_skip_carry_their_reason() -> None:
    suite = _suite(render_junit(sample_report()))
    error = _case(suite, "backup_freshness").find("error")
    assert error is not None and "not a cron expression" in (error.get("message") or "")
    skipped = _case(suite, "offsite_restore").find("skipped")
    assert skipped is not None and "moto server not available" in (skipped.get("message") or "")


def test_control_characters_and_markup_in_messages_stay_valid_xml() -> None:
    results = sample_results()
    results[8] = replace(results[8], failure='bad \x00\x1b[31mcolour\x1b[0m <b>&"quotes"')
    case = _case(_suite(render_junit(sample_report(results))), "backup_freshness")
    error = case.find("error")
    assert error is not None and error.text == 'bad [31mcolour[0m <b>&"quotes"'
