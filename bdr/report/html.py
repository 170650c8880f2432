"""The compliance report as one self-contained HTML page, rendered from a Jinja2 template.

The page carries everything inline (CSS and SVG, no script, no font or asset from the
network) so it can be archived, mailed, opened offline and printed. The template lives in
``bdr/report/templates/report.html.j2``; autoescaping is on, so nothing a scenario recorded
(failure messages, evidence, host names) can inject markup.

Rendering is deterministic: the same record, history and reviews give the same bytes
(the "generated" time is the record's own time, never the clock), so re-rendering a report
with the same bdr does not change the sha256 its record holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import jinja2

from bdr import __version__
from bdr.report import charts, view
from bdr.report.history import History, ReviewEntry
from bdr.report.records import RunReport
from bdr.report.verdict import Verdict
from bdr.repository.manifest import from_iso

TEMPLATE = "report.html.j2"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bdr.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = view.seconds_text
    env.filters["utc"] = view.utc_text
    env.filters["humanize"] = view.humanize
    env.globals.update(
        targets_chart=charts.targets_chart,
        timeline_chart=charts.timeline_chart,
        sparkline=charts.sparkline,
        chart_defs=charts.chart_defs,
    )
    return env


def render_html(report: RunReport, history: History | None = None, integrity: view.Integrity | None = None,
                reviews: Sequence[ReviewEntry] = ()) -> str:
    """The report of ``report``; ``history`` (runs up to and including this one) feeds the trend,
    ``integrity`` the tamper-evidence section, ``reviews`` the sign-off block (empty until signed)."""
    history = history or History()
    scenarios = view.scenario_views(report.results)
    moment = max([report.finished_at or report.started_at, *(r.time for r in reviews)])
    try:
        generated = view.generated_at(from_iso(moment))
    except ValueError:
        generated = moment
    return environment().get_template(TEMPLATE).render(
        report=report,
        scope=report.scope,
        summary=view.summarize(report),
        facts=view.run_facts(report),
        scenarios=scenarios,
        problems=[s for s in scenarios if s.problem],
        items=view.item_views(report),
        production=view.production_rows(report),
        coverage=[view.CoverageView(row) for row in report.coverage],
        trend=view.trend_rows(report.results, history),
        history=history,
        environment_rows=view.environment_rows(report.environment),
        policy_rows=view.policy_rows(report.policy),
        integrity=integrity,
        reviews=[view.ReviewView(r) for r in reviews],
        verdicts=list(Verdict),
        verdict_labels=view.VERDICT_LABELS,
        verdict_meanings=view.VERDICT_MEANINGS,
        generated=generated,
        bdr_version=__version__,
    )
