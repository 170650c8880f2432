"""The compliance report as one self-contained HTML page, rendered from a Jinja2 template.

The page carries everything inline (CSS and SVG, no script, no font or asset from the
network) so it can be archived, mailed, opened offline and printed. The template lives in
``drills/templates/report.html.j2``; autoescaping is on, so nothing a scenario recorded
(failure messages, evidence, host names) can inject markup.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import jinja2

from bdr import __version__
from bdr.report.records import RunReport
from bdr.report import charts, view
from bdr.report.history import History
from bdr.report.verdict import Verdict

TEMPLATE = "report.html.j2"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("drills", "templates"),
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


def render_html(report: RunReport, history: History | None = None, now: datetime | None = None) -> str:
    """The report of ``report``; ``history`` (runs up to and including this one) feeds the trend."""
    history = history or History()
    scenarios = view.scenario_views(report.results)
    return environment().get_template(TEMPLATE).render(
        report=report,
        summary=view.summarize(report),
        facts=view.run_facts(report),
        scenarios=scenarios,
        problems=[s for s in scenarios if s.problem],
        trend=view.trend_rows(report.results, history),
        history=history,
        environment_rows=view.environment_rows(report.environment),
        policy_rows=view.policy_rows(report.policy),
        verdicts=list(Verdict),
        verdict_labels=view.VERDICT_LABELS,
        verdict_meanings=view.VERDICT_MEANINGS,
        generated=view.generated_at(now or datetime.now(UTC)),
        bdr_version=__version__,
    )
