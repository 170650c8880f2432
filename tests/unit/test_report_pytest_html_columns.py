"""pytest-html's results table gains Scenario, RTO, RPO and Verdict columns, aligned for every row."""

from __future__ import annotations

from types import SimpleNamespace

from drills.plugin import drill_properties
from drills.pytest_html_columns import table_header, table_row
from tests.report_samples import sample_results

PYTEST_HTML_HEADER = [
    '<th class="sortable" data-column-type="result">Result</th>',
    '<th class="sortable" data-column-type="testId">Test</th>',
    '<th class="sortable" data-column-type="duration">Duration</th>',
    "<th>Links</th>",
]


def _row(properties: list[tuple[str, str]]) -> list[str]:
    cells = ['<td class="col-result">Failed</td>', '<td class="col-testId">t</td>',
             '<td class="col-duration">1</td>', '<td class="col-links"></td>']
    table_row(SimpleNamespace(user_properties=properties), cells)
    return cells


def test_header_gains_four_sortable_columns_after_the_test_name() -> None:
    cells = list(PYTEST_HTML_HEADER)
    table_header(cells)
    assert len(cells) == 8
    assert cells[:2] == PYTEST_HTML_HEADER[:2] and cells[-2:] == PYTEST_HTML_HEADER[2:]
    assert [c.split(">")[1].split("<")[0] for c in cells[2:6]] == [
        "Scenario", "RTO achieved / target", "RPO achieved / target", "Verdict"]
    assert all('class="sortable"' in c for c in cells[2:6])


def test_a_drill_row_shows_its_numbers_and_verdict() -> None:
    breached = sample_results()[3]
    cells = _row(drill_properties(breached))
    assert len(cells) == 8
    assert cells[2] == '<td class="col-drillScenario">complete_data_loss</td>'
    assert cells[3] == '<td class="col-drillRto">17m32s / 15m00s</td>'
    assert cells[4] == '<td class="col-drillRpo">sessions 30m10s / 1h00m, embeddings 30m10s / 1d0h</td>'
    assert ">BREACHED</td>" in cells[5] and "color:#b42318" in cells[5]


def test_other_tests_get_empty_cells_and_values_are_escaped() -> None:
    assert _row([])[2:6] == ['<td class="col-drillScenario"></td>', '<td class="col-drillRto"></td>',
                             '<td class="col-drillRpo"></td>', '<td class="col-drillVerdict"></td>']
    cells = _row([("drill_scenario", "<script>x</script>"), ("other", "ignored")])
    assert cells[2] == '<td class="col-drillScenario">&lt;script&gt;x&lt;/script&gt;</td>'
