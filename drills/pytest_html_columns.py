"""pytest-html's results table, with the drill's scenario, RTO, RPO and verdict as columns.

pytest-html 4.x calls ``pytest_html_results_table_header(cells)`` once and
``pytest_html_results_table_row(report, cells)`` per row, with lists of HTML strings to edit
in place. The values come from the report's ``user_properties`` (``drill_scenario``,
``drill_rto``, ``drill_rpo``, ``drill_verdict``: see ``drills.plugin.drill_properties``);
a test that is not a drill gets empty cells so the columns stay aligned. Registered by
:mod:`drills.plugin` only when pytest-html is active.
"""

from __future__ import annotations

from collections.abc import MutableSequence
from typing import Any

from markupsafe import escape

COLUMNS = (
    ("drill_scenario", "drillScenario", "Scenario"),
    ("drill_rto", "drillRto", "RTO achieved / target"),
    ("drill_rpo", "drillRpo", "RPO achieved / target"),
    ("drill_verdict", "drillVerdict", "Verdict"),
)
INSERT_AT = 2
"""After pytest-html's Result and Test columns."""

_VERDICT_STYLE = {
    "met": "color:#1a7f37;font-weight:600",
    "BREACHED": "color:#b42318;font-weight:700",
    "failed": "color:#b42318;font-weight:700",
    "error": "color:#a04100;font-weight:700",
    "skipped": "color:#475467",
}


def table_header(cells: MutableSequence[str]) -> None:
    """Add the drill columns to the header (sortable, like pytest-html's own)."""
    for offset, (_, column, title) in enumerate(COLUMNS):
        cells.insert(INSERT_AT + offset, f'<th class="sortable" data-column-type="{column}">{escape(title)}</th>')


def table_row(report: Any, cells: MutableSequence[str]) -> None:
    """Add this test's drill values (or empty cells) to its row."""
    properties = dict(_pairs(getattr(report, "user_properties", ())))
    for offset, (key, column, _) in enumerate(COLUMNS):
        value = properties.get(key, "")
        style = f' style="{_VERDICT_STYLE[value]}"' if key == "drill_verdict" and value in _VERDICT_STYLE else ""
        cells.insert(INSERT_AT + offset, f'<td class="col-{column}"{style}>{escape(value)}</td>')


def _pairs(properties: Any) -> list[tuple[str, str]]:
    return [(str(p[0]), str(p[1])) for p in properties if isinstance(p, tuple | list) and len(p) == 2]
