"""The inline SVG charts: well-formed, numbers written out, breaches not told by colour alone."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

from bdr.engines.base import StepStatus
from bdr.report.charts import nice_ticks, sparkline, targets_chart, time_ticks, timeline_chart
from bdr.report.history import History, entry_of, trend
from bdr.report.records import TargetCheck
from bdr.report.view import scenario_views
from tests.report_samples import sample_history, sample_report, sample_results

SVG = "{http://www.w3.org/2000/svg}"


def _svg(markup: str) -> ET.Element:
    root = ET.fromstring(str(markup))
    assert root.tag == f"{SVG}svg"
    return root


def _texts(root: ET.Element) -> list[str]:
    """What each text element shows (without its tooltip)."""
    return [(t.text or "") + "".join(c.tail or "" for c in t) for t in root.iter(f"{SVG}text")]


def test_targets_chart_has_one_bar_per_measured_objective_and_writes_the_numbers() -> None:
    scenarios = scenario_views(sample_results())
    root = _svg(targets_chart(scenarios))
    checks = [c for s in scenarios for c in s.checks]
    bars = [r for r in root.iter(f"{SVG}rect")]
    assert len(bars) == len(checks)
    hatched = [r for r in bars if r.get("fill") == "url(#bdr-hatch)"]
    assert len(hatched) == 1  # complete_data_loss's RTO, the only breach
    texts = " | ".join(_texts(root))
    assert "✘ 17m32s of 15m00s · 117%" in texts
    assert "✔ 1.0s of 1m00s · 1.7%" in texts
    assert "target = 100%" in texts
    assert "no objective measured (error)" in texts and "no objective measured (skipped)" in texts
    assert "16 objectives: 15 met, 1 breached" in (root.findtext(f"{SVG}title") or "")


def test_a_value_far_beyond_its_target_is_cut_and_still_written() -> None:
    results = sample_results()[:1]
    results[0] = replace(results[0], checks=[TargetCheck("rto", "redis_restart", 60.0, 6000.0),
                                             TargetCheck("rpo", "sessions", 60.0, None)])
    root = _svg(targets_chart(scenario_views(results)))
    texts = " | ".join(_texts(root))
    assert "✘ 1h40m of 1m00s · 10000%" in texts
    assert "not measured" in texts
    widths = [float(r.get("width", "0")) for r in root.iter(f"{SVG}rect")]
    assert max(widths) <= 460  # inside the plot


def test_timeline_draws_every_step_and_the_rto_window() -> None:
    result = sample_results()[3]  # complete_data_loss, breached: the deadline falls inside the chart
    root = _svg(timeline_chart(result))
    texts = _texts(root)
    for step in result.steps:
        assert any(step.name in t for t in texts)
    assert "RTO window 17m32s (over the 15m00s target)" in texts
    assert "RTO deadline" in texts
    assert "15m00s" in texts and "5m00s" in texts  # ticks that read as durations


def test_a_failed_step_is_hatched_and_marked() -> None:
    result = sample_results()[0]
    result.steps[2].status = StepStatus.FAILED
    root = _svg(timeline_chart(result))
    assert any(r.get("fill") == "url(#bdr-hatch)" for r in root.iter(f"{SVG}rect"))
    assert any(t.startswith("✘ restart") for t in _texts(root))


def test_names_are_escaped() -> None:
    result = replace(sample_results()[0], scenario="<b>evil</b>&")
    root = _svg(timeline_chart(result))
    assert root.find(f".//{SVG}b") is None
    assert "<b>evil</b>&" in (root.findtext(f"{SVG}title") or "")


def test_sparkline_has_a_marker_per_run_and_breaches_stand_out() -> None:
    report = sample_report()
    history = History(tuple(sample_history())).including(entry_of(report))
    points = trend(history, "complete_data_loss", "rto complete_data_loss")
    root = _svg(sparkline(points))
    circles = list(root.iter(f"{SVG}circle"))
    squares = [r for r in root.iter(f"{SVG}rect")]
    assert len(circles) + len(squares) == len(points) == 10
    assert len(squares) == sum(1 for p in points if not p.met) > 0
    assert sparkline([]) == ""


def test_ticks_cover_the_range_in_round_steps() -> None:
    assert time_ticks(1052.4) == [0, 300, 600, 900, 1200]
    assert time_ticks(2.1) == [0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert time_ticks(0) == [0.0, 1.0]
    assert nice_ticks(87) == [0, 20, 40, 60, 80, 100]
    for maximum in (0.003, 0.9, 7, 61, 3599, 86400 * 3):
        ticks = time_ticks(maximum)
        assert ticks[0] == 0 and ticks[-1] >= maximum and len(ticks) <= 8
