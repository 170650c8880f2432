"""The HTML compliance report: the verdict, the numbers of the run, nothing external, nothing unescaped."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest

from bdr.report import render_html
from bdr.report.history import History, entry_of
from bdr.report.records import DrillResult, Outcome, RunReport
from bdr.util.durations import format_duration
from tests.report_samples import sample_history, sample_report, sample_results


class Page(HTMLParser):
    """The parts of a page a test looks at: text per element class, tags, link targets, table rows."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.rows: list[str] = []
        self._row: list[str] | None = None
        self._stack: list[str] = []
        self.verdict_text: list[str] = []
        self.ids: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        for name in ("src", "href", "xlink:href", "action", "srcset", "data"):
            if values.get(name) is not None:
                self.urls.append((tag, name, values[name] or ""))
        if values.get("id"):
            self.ids.append(values["id"] or "")
        if tag == "tr":
            self._row = []
        if tag not in ("br", "meta", "line", "rect", "path", "circle", "polyline"):
            self._stack.append((values.get("class") or "") + f" <{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row is not None:
            self.rows.append(" ".join(" ".join(self._row).split()))
            self._row = None
        if self._stack:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._row is not None:
            self._row.append(data)
        if any(frame.startswith("verdict verdict-") for frame in self._stack):
            self.verdict_text.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())

    @property
    def headline(self) -> str:
        return " ".join(" ".join(self.verdict_text).split())


@pytest.fixture(scope="module")
def page() -> Page:
    report = sample_report()
    history = History(tuple(sample_history())).including(entry_of(report))
    return Page(render_html(report, history))


def test_the_summary_says_how_many_targets_were_breached(page: Page) -> None:
    assert page.headline.startswith("✘ 1 TARGET BREACHED")
    assert "complete_data_loss (BREACHED)" in page.headline
    assert "backup_freshness (error)" in page.headline
    assert "Skipped, targets not tested: offsite_restore" in page.headline


def test_the_summary_gives_date_drill_duration_scale_and_host(page: Page) -> None:
    text = page.all_text
    for expected in ("2026-11-25 06:00:00 UTC", "small", "dr-runner-01", "/srv/agent/bdr.yaml"):
        assert expected in text
    assert "Drill duration 19m18s (first scenario start to last end)" in text  # not the test runner's 19m13s
    assert "Runtime" not in text


def test_every_objective_is_a_table_row_with_its_numbers_and_verdict(page: Page) -> None:
    for result in sample_results():
        for check in result.checks:
            label = f"{'RTO' if check.kind == 'rto' else 'RPO' if check.kind == 'rpo' else check.kind} {check.name}"
            assert check.achieved_seconds is not None
            achieved, target = format_duration(check.achieved_seconds), format_duration(check.target_seconds or 0)
            rows = [r for r in page.rows if label in r and f"{achieved} {target}" in r]
            assert rows, f"no row for {label}: {achieved} of {target}"
            assert ("✔ met" if check.met else "✘ BREACHED") in rows[0]


def test_a_breach_is_explained_in_words_with_the_margin(page: Page) -> None:
    text = page.all_text
    assert "RTO complete_data_loss: achieved 17m32s against a target of 15m00s (2m32s over target)" in text
    assert "not a cron expression" in text
    assert "moto server not available" in text


def test_scenarios_without_objectives_say_why(page: Page) -> None:
    rows = [r for r in page.rows if r.startswith("backup_freshness") or r.startswith("offsite_restore")]
    assert any("ERROR" in r and "could not run" in r for r in rows)
    assert any("SKIPPED" in r and "not run in this environment" in r for r in rows)


def test_each_scenario_has_its_timeline_and_evidence(page: Page) -> None:
    text = page.all_text
    assert page.tags.count("svg") >= 1 + 6 + 1  # defs + 6 timelines + the chart (+ sparklines)
    for step in ("restore qdrant", "selective restore", "production untouched", "test start"):
        assert step in text
    assert "redis-20261125T060017Z-8c0d55" in text  # backup id
    assert "9f2c4e71d0b8a36f5e1c2d9a8b7f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5" in text  # manifest / policy sha256
    assert "Redis server v=7.2.4" in text
    assert "safety backup" in text and "dump.rdb 2.1 MB" in text  # a list of records, as a table


def test_the_trend_shows_past_runs(page: Page) -> None:
    trend = [r for r in page.rows if r.startswith("complete_data_loss RTO ")]
    assert trend, "no trend row for complete_data_loss"
    assert "10" in trend[0].split() and "15m00s" in trend[0]
    past = [e.scenarios["complete_data_loss"].objectives["rto complete_data_loss"] for e in sample_history()]
    breaches = sum(1 for r in past if not r.met) + 1  # and this run
    assert 1 < breaches < 10
    assert trend[0].endswith(f"{breaches} of 10")


def test_nothing_is_loaded_from_outside_the_file(page: Page) -> None:
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert all(url.startswith("#") for _tag, _attr, url in page.urls), page.urls


def test_no_external_reference_in_the_css_or_svg() -> None:
    html = render_html(sample_report())
    assert not re.search(r"url\(\s*['\"]?(?!#)", html)
    assert "@import" not in html and "@font-face" not in html
    assert "@media print" in html


def test_recorded_text_is_escaped_and_secrets_are_redacted() -> None:
    results = sample_results()
    results[0] = replace(results[0], title='<img src="http://evil.example/x.png">',
                         evidence={**results[0].evidence, "note": "</dd><script>alert(1)</script>"})
    page = Page(render_html(sample_report(results)))
    assert "script" not in page.tags and "img" not in page.tags
    assert "<script>x</script>" in page.all_text  # the error's message, shown as text
    assert '<img src="http://evil.example/x.png">' in page.all_text
    assert "hunter2" not in page.all_text
    assert "••• (redacted)" in page.all_text


def _only(*results: DrillResult) -> RunReport:
    return sample_report(list(results))


def test_all_met_headline() -> None:
    met = [r for r in sample_results() if r.outcome == Outcome.PASSED]
    page = Page(render_html(_only(*met)))
    assert page.headline.startswith("✔ ALL TARGETS MET")
    assert "Nothing failed." in page.all_text


def test_a_run_where_everything_was_skipped_is_not_reported_as_met() -> None:
    skipped = [r for r in sample_results() if r.outcome == Outcome.SKIPPED]
    page = Page(render_html(_only(*skipped)))
    assert "NOTHING TESTED" in page.headline
    assert "ALL TARGETS MET" not in page.all_text


def test_a_run_that_only_errored_says_its_targets_are_not_proven() -> None:
    errored = [r for r in sample_results() if r.outcome == Outcome.ERROR]
    page = Page(render_html(_only(*errored)))
    assert "1 SCENARIO FAILED: TARGETS NOT PROVEN" in page.headline


def test_without_history_the_report_says_so() -> None:
    page = Page(render_html(sample_report(), History()))
    assert "No history yet" in page.all_text
