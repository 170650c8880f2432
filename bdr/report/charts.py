"""The report's charts, drawn as inline SVG in Python: no script, no external asset.

- :func:`targets_chart`: every objective as a horizontal bar, achieved as a percentage of
  its target, with the 100 % target line and the numbers written next to each bar.
- :func:`timeline_chart`: a Gantt chart of one scenario's steps on its own clock, with the
  RTO window (fault injected → data verified) shaded.
- :func:`sparkline`: the achieved value of one objective over past runs, with its target.

Colour is never the only carrier of meaning: breached bars are hatched, markers differ in
shape, and every number is also written as text (in the chart and in the report's tables).
All text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

from bdr.report.history import TrendPoint
from bdr.report.records import DrillResult
from bdr.report.view import CLOCK_STARTS, VERIFIED_STEP, CheckView, ScenarioView
from bdr.util.durations import format_duration

MET = "#1a7f37"
BREACHED = "#b42318"
MUTED = "#667085"
INK = "#1d2939"
GRID = "#d0d5dd"
STEP = "#2e5c8a"
RTO_BAND = "#fdf3d7"
WIDTH = 1000
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif"


def chart_defs() -> Markup:
    """The shared patterns (hatching for breached and failed), once per document."""
    return Markup(
        '<svg width="0" height="0" style="position:absolute" aria-hidden="true" focusable="false"><defs>'
        '<pattern id="bdr-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        f'<rect width="6" height="6" fill="#fbe3e1"/><line x1="0" y1="0" x2="0" y2="6" stroke="{BREACHED}" '
        'stroke-width="3"/></pattern></defs></svg>'
    )


def nice_ticks(maximum: float, count: int = 6) -> list[float]:
    """Round tick values from 0 to at least ``maximum`` (1, 2, 2.5, 5 times a power of ten)."""
    if maximum <= 0 or not math.isfinite(maximum):
        return [0.0, 1.0]
    raw = maximum / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < maximum - 1e-12:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


_TIME_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600,
               900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def time_ticks(maximum: float, count: int = 6) -> list[float]:
    """Tick values in seconds that read well as durations (…, 10s, 15s, 30s, 1m, 2m, 5m, …)."""
    if maximum <= 0 or not math.isfinite(maximum):
        return [0.0, 1.0]
    step = next((s for s in _TIME_STEPS if maximum / s <= count), None)
    if step is None:
        return nice_ticks(maximum, count)
    ticks = [0.0]
    while ticks[-1] < maximum - 1e-12:
        ticks.append(round(ticks[-1] + step, 6))
    return ticks


def _svg(height: float, label: str, body: list[str], width: int = WIDTH, css_class: str = "chart") -> Markup:
    return Markup(
        f'<svg class="{css_class}" viewBox="0 0 {width} {height:.0f}" width="100%" role="img" '
        f'preserveAspectRatio="xMinYMin meet" style="{FONT}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 12, fill: str = INK,
          weight: str = "normal", italic: bool = False, tooltip: str = "") -> str:
    style = ' font-style="italic"' if italic else ""
    title = f"<title>{escape(tooltip)}</title>" if tooltip else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{fill}" '
            f'font-weight="{weight}"{style}>{title}{escape(text)}</text>')


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- achieved vs target ------------------------------------------------------------------------


def targets_chart(scenarios: Sequence[ScenarioView]) -> Markup:
    """Each objective's achieved value as a percentage of its target, grouped by scenario."""
    checks = [c for s in scenarios for c in s.checks]
    finite = [p for c in checks if (p := c.percent) is not None and math.isfinite(p)]
    domain = min(300.0, max(120.0, max(finite, default=0.0) * 1.08))
    step = 25.0 if domain <= 160 else 50.0
    x0, x1, label_x = 290.0, 740.0, 752.0
    top, group_h, row_h = 50.0, 24.0, 22.0

    def x_of(percent: float) -> float:
        return x0 + (x1 - x0) * min(percent, domain) / domain

    body: list[str] = []
    y = top
    for scenario in scenarios:
        body.append(_text(6, y + 16, _clip(scenario.key, 40), weight="600", size=13,
                          tooltip=scenario.result.title))
        if not scenario.checks:
            body.append(_text(x0 + 4, y + 16, f"no objective measured ({scenario.verdict})", fill=MUTED,
                              italic=True))
        y += group_h
        for check in scenario.checks:
            body.extend(_target_bar(check, y, x0, x_of, label_x, domain))
            y += row_h
    height = y + 10
    grid: list[str] = []
    tick = 0.0
    while tick <= domain + 1e-9:
        gx = x_of(tick)
        grid.append(f'<line x1="{gx:.1f}" y1="{top - 6}" x2="{gx:.1f}" y2="{height - 10}" stroke="{GRID}" '
                    'stroke-width="1"/>')
        grid.append(_text(gx, top - 12, f"{tick:.0f}%", anchor="middle", size=11, fill=MUTED))
        tick += step
    tx = x_of(100)
    grid.append(f'<line x1="{tx:.1f}" y1="{top - 6}" x2="{tx:.1f}" y2="{height - 10}" stroke="{INK}" '
                'stroke-width="2" stroke-dasharray="6 4"/>')
    grid.append(_text(tx + 4, top - 24, "target = 100%", size=11, weight="600"))
    grid.append(_text(x0, top - 40, "achieved as % of target (shorter is better)", size=11, fill=MUTED))
    label = (f"Achieved versus target for {len(checks)} objectives: "
             f"{sum(1 for c in checks if c.met)} met, {sum(1 for c in checks if c.status == 'breached')} breached")
    return _svg(height, label, grid + body)


def _target_bar(check: CheckView, y: float, x0: float, x_of: Callable[[float], float], label_x: float,
                domain: float) -> list[str]:
    parts = [_text(22, y + 14, _clip(check.label, 36), size=12, tooltip=check.check.note or check.label)]
    percent = check.percent
    colour = MET if check.met else BREACHED
    if not check.defined:
        parts.append(_text(x0 + 6, y + 15, f"no target defined (achieved {check.achieved})", size=11, fill=MUTED,
                           italic=True))
        return parts
    if percent is None:
        parts.append(f'<rect x="{x0:.1f}" y="{y + 4}" width="{x_of(100) - x0:.1f}" height="13" fill="none" '
                     f'stroke="{BREACHED}" stroke-dasharray="3 3"/>')
        parts.append(_text(x0 + 6, y + 15, "not measured", size=11, fill=BREACHED, italic=True))
    else:
        width = max(2.0, x_of(percent) - x0) if percent > 0 else 1.0
        fill = MET if check.met else "url(#bdr-hatch)"
        parts.append(f'<rect x="{x0:.1f}" y="{y + 4}" width="{width:.1f}" height="13" rx="2" fill="{fill}" '
                     f'stroke="{colour}" stroke-width="1"/>')
        if percent > domain:
            end = x0 + width
            parts.append(f'<path d="M{end - 8:.1f},{y + 2} l6,8.5 l-6,8.5" fill="none" stroke="#fff" '
                         'stroke-width="3"/>')
    symbol = "✔" if check.met else "✘"
    numbers = f"{symbol} {check.achieved} of {check.target}"
    if percent is not None:
        numbers += f" · {check.percent_text.replace(' of target', '')}"
    parts.append(_text(label_x, y + 15, numbers, size=12, fill=colour, weight="normal" if check.met else "600"))
    return parts


# --- the steps of a scenario -------------------------------------------------------------------


def timeline_chart(result: DrillResult) -> Markup:
    """The steps of ``result`` on the scenario's clock; the RTO window shaded."""
    steps = sorted(result.steps, key=lambda s: s.offset)
    if not steps:
        return Markup("")
    end = max(s.offset + s.seconds for s in steps)
    fault = next((s for s in steps if s.name in CLOCK_STARTS), None)
    verified = next((s for s in steps if s.name == VERIFIED_STEP), None)
    rto = result.rto
    rto_target = rto.target_seconds if rto is not None else None
    deadline = fault.offset + rto_target if fault is not None and rto_target is not None else None
    if deadline is not None and end < deadline <= end * 1.5:
        end = deadline  # the RTO deadline is close enough to show where it falls
    ticks = time_ticks(end if end > 0 else 1.0)
    domain = ticks[-1]
    x0, x1, label_x = 230.0, 880.0, 890.0
    top, row_h = 34.0, 22.0
    height = top + row_h * len(steps) + 38
    bottom = height - 32

    def x_of(seconds: float) -> float:
        return x0 + (x1 - x0) * seconds / domain

    body: list[str] = []
    for tick in ticks:
        gx = x_of(tick)
        body.append(f'<line x1="{gx:.1f}" y1="{top - 4}" x2="{gx:.1f}" y2="{bottom}" stroke="{GRID}"/>')
        body.append(_text(gx, height - 18, format_duration(tick) if tick else "0", anchor="middle", size=11,
                          fill=MUTED))
    body.append(_text(x1, height - 4, "time since the scenario started →", anchor="end", size=11, fill=MUTED))
    if fault is not None:
        fx = x_of(fault.offset)
        if verified is not None:
            vx = x_of(verified.offset)
            body.insert(0, f'<rect x="{fx:.1f}" y="{top - 4}" width="{max(1.0, vx - fx):.1f}" '
                           f'height="{bottom - top + 4:.1f}" fill="{RTO_BAND}"/>')
            achieved = verified.offset - fault.offset
            late = rto_target is not None and achieved > rto_target
            label = f"RTO window {format_duration(achieved)}"
            if rto_target is not None:
                label += f" ({'over' if late else 'within'} the {format_duration(rto_target)} target)"
            body.append(_text(min(fx + 4, x1 - 300), top - 14, label, size=11, weight="600",
                              fill=BREACHED if late else INK))
            body.append(f'<line x1="{vx:.1f}" y1="{top - 4}" x2="{vx:.1f}" y2="{bottom}" stroke="{MET}" '
                        'stroke-width="2"/>')
        body.append(f'<line x1="{fx:.1f}" y1="{top - 4}" x2="{fx:.1f}" y2="{bottom}" stroke="{BREACHED}" '
                    'stroke-width="2" stroke-dasharray="4 3"/>')
        if deadline is not None and deadline <= domain:
            dx = x_of(deadline)
            body.append(f'<line x1="{dx:.1f}" y1="{top - 4}" x2="{dx:.1f}" y2="{bottom}" stroke="{INK}" '
                        'stroke-width="2" stroke-dasharray="1 3"/>')
            body.append(_text(dx - 3, bottom - 4, "RTO deadline", anchor="end", size=10, weight="600"))
    for index, step in enumerate(steps):
        y = top + index * row_h
        colour = STEP if step.ok else BREACHED
        name = ("✘ " if not step.ok else "") + step.name
        body.append(_text(x0 - 10, y + 14, _clip(name, 32), anchor="end", size=12, fill=INK if step.ok else BREACHED,
                          weight="normal" if step.ok else "600", tooltip=step.detail or step.name))
        sx = x_of(step.offset)
        if step.seconds <= 0:
            body.append(f'<path d="M{sx:.1f},{y + 3} l6,7.5 l-6,7.5 l-6,-7.5 z" fill="{colour}"/>')
            text = "instant"
        else:
            width = max(2.0, x_of(step.offset + step.seconds) - sx)
            fill = colour if step.ok else "url(#bdr-hatch)"
            body.append(f'<rect x="{sx:.1f}" y="{y + 4}" width="{width:.1f}" height="13" rx="2" fill="{fill}" '
                        f'stroke="{colour}"/>')
            text = format_duration(step.seconds)
        body.append(_text(label_x, y + 14, text, size=11, fill=MUTED))
    label = f"Timeline of {result.scenario}: {len(steps)} steps over {format_duration(end)}"
    return _svg(height, label, body, css_class="chart timeline")


# --- trend ---------------------------------------------------------------------------------------


def sparkline(points: Sequence[TrendPoint], width: int = 180, height: int = 40) -> Markup:
    """The achieved value over past runs (oldest left); the target dashed when it is in range."""
    if not points:
        return Markup("")
    values = [p.achieved_seconds for p in points if p.achieved_seconds is not None]
    top_value = max(values, default=1.0) or 1.0
    target = points[-1].target_seconds
    show_target = target is not None and target <= top_value * 1.6
    if show_target and target is not None:
        top_value = max(top_value, target)
    top_value *= 1.1
    pad = 5.0

    def xy(index: int, value: float) -> tuple[float, float]:
        x = pad if len(points) == 1 else pad + (width - 2 * pad) * index / (len(points) - 1)
        return x, height - pad - (height - 2 * pad) * value / top_value

    body: list[str] = [f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
                       f'stroke="{GRID}"/>']
    if show_target and target is not None:
        ty = xy(0, target)[1]
        body.append(f'<line x1="{pad}" y1="{ty:.1f}" x2="{width - pad}" y2="{ty:.1f}" stroke="{INK}" '
                    'stroke-dasharray="4 3"/>')
    line = [xy(i, p.achieved_seconds) for i, p in enumerate(points) if p.achieved_seconds is not None]
    if len(line) > 1:
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in line)
        body.append(f'<polyline points="{coords}" fill="none" stroke="{STEP}" stroke-width="1.5"/>')
    for index, point in enumerate(points):
        value = "not measured" if point.achieved_seconds is None else format_duration(point.achieved_seconds)
        tip = f"{point.run_id}: {value} ({point.verdict})"
        if point.achieved_seconds is None:
            x, y = xy(index, 0)
            body.append(f'<g><title>{escape(tip)}</title><path d="M{x - 3:.1f},{y - 3:.1f} l6,6 m0,-6 l-6,6" '
                        f'stroke="{BREACHED}" stroke-width="2"/></g>')
            continue
        x, y = xy(index, point.achieved_seconds)
        last = index == len(points) - 1
        if point.met or point.target_seconds is None:
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{3.5 if last else 2.2}" '
                        f'fill="{STEP if point.met else MUTED}">'
                        f"<title>{escape(tip)}</title></circle>")
        else:
            body.append(f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" fill="{BREACHED}">'
                        f"<title>{escape(tip)}</title></rect>")
    label = f"Trend over {len(points)} runs"
    return _svg(height, label, body, width=width, css_class="spark")
