"""Line charts as inline SVG, drawn in Python: the run report must open anywhere, offline, with no
script or stylesheet fetched from the network, and stay readable when printed or attached to a ticket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 900, 260
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 30, 42


@dataclass
class Series:
    name: str
    color: str
    points: list[tuple[float, float | None]]  # (x, y); None breaks the line
    dash: str | None = None


@dataclass
class Marker:
    """A vertical line at moment x (an event), labelled with a short tag."""

    x: float
    tag: str
    color: str
    title: str


@dataclass
class Chart:
    title: str
    y_label: str
    series: list[Series]
    markers: list[Marker] = field(default_factory=list)
    hlines: list[Series] = field(default_factory=list)  # constant references: baseline, limit
    x_label: str = "seconds since start"


def nice_step(span: float, target: int = 5) -> float:
    """A 1/2/5 x 10^k step giving about ``target`` ticks over ``span``."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * magnitude:
            return m * magnitude
    return 10 * magnitude


def _ticks(low: float, high: float) -> list[float]:
    step = nice_step(high - low)
    first = math.ceil(low / step) * step
    out, value = [], first
    while value <= high + step * 1e-9 and len(out) < 50:
        out.append(round(value, 10))
        value += step
    return out


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 10_000:
        return f"{v / 1000:.0f}k"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.3f}".rstrip("0").rstrip(".")


def _bounds(chart: Chart) -> tuple[float, float, float, float]:
    xs = [x for s in chart.series for x, _ in s.points] + [m.x for m in chart.markers]
    ys = [y for s in chart.series + chart.hlines for _, y in s.points if y is not None]
    x0, x1 = (min(0.0, min(xs)), max(xs)) if xs else (0.0, 1.0)
    if x1 <= x0:
        x1 = x0 + 1.0
    y1 = max(ys) if ys else 1.0
    y1 = y1 * 1.1 if y1 > 0 else 1.0
    return x0, x1, 0.0, y1


def render(chart: Chart) -> str:
    x0, x1, y0, y1 = _bounds(chart)
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return TOP + ph - (y - y0) / (y1 - y0) * ph

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(chart.title)}">',
        f"<title>{escape(chart.title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#bbb"/>',
        f'<text x="{LEFT}" y="18" class="ct">{escape(chart.title)}</text>',
    ]
    for t in _ticks(y0, y1):
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end" class="tk">{_fmt(t)}</text>')
    for t in _ticks(x0, x1):
        parts.append(f'<text x="{px(t):.1f}" y="{TOP + ph + 16}" text-anchor="middle" class="tk">{_fmt(t)}</text>')
    parts.append(
        f'<text x="{LEFT + pw / 2}" y="{HEIGHT - 6}" text-anchor="middle" class="ax">{escape(chart.x_label)}</text>'
    )
    parts.append(
        f'<text x="14" y="{TOP + ph / 2}" text-anchor="middle" class="ax" '
        f'transform="rotate(-90 14 {TOP + ph / 2})">{escape(chart.y_label)}</text>'
    )
    for ref in chart.hlines:
        y = next((v for _, v in ref.points if v is not None), None)
        if y is None:
            continue
        parts.append(
            f'<line class="ref" x1="{LEFT}" x2="{LEFT + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="{ref.color}" '
            f'stroke-dasharray="{ref.dash or "6 4"}"><title>{escape(ref.name)}: {_fmt(y)}</title></line>'
        )
    placed: list[tuple[float, int]] = []
    for m in chart.markers:
        x = px(m.x)
        # Events close in time would hide each other's tags: stack them downwards.
        row = sum(1 for other, _ in placed if abs(other - x) < 20)
        placed.append((x, row))
        tag_y = TOP + 2 + 16 * (row % 8)
        parts.append(
            f'<g class="marker"><line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="{m.color}" '
            f'stroke-width="1.5" stroke-dasharray="3 3"/><rect x="{x - 9:.1f}" y="{tag_y}" width="18" height="14" '
            f'rx="3" fill="{m.color}"/><text x="{x:.1f}" y="{tag_y + 11}" text-anchor="middle" class="mk">'
            f"{escape(m.tag)}</text><title>{escape(m.title)}</title></g>"
        )
    for s in chart.series:
        for run in _runs(s.points):
            if len(run) == 1:
                x, y = run[0]
                parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{s.color}"/>')
                continue
            d = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for i, (x, y) in enumerate(run))
            dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
            parts.append(
                f'<path class="series" d="{d}" fill="none" stroke="{s.color}" stroke-width="2"{dash}>'
                f"<title>{escape(s.name)}</title></path>"
            )
    parts.append(_legend(chart, LEFT + pw))
    parts.append("</svg>")
    return "".join(parts)


def _runs(points: list[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((x, y))
    return [r for r in runs if r]


def _legend(chart: Chart, right: float) -> str:
    items = [(s.name, s.color, s.dash) for s in chart.series] + [
        (h.name, h.color, h.dash or "6 4") for h in chart.hlines
    ]
    out, x = [], right
    for name, color, dash in reversed(items):
        x -= 30 + 6.5 * len(name)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line x1="{x:.0f}" x2="{x + 18:.0f}" y1="14" y2="14" stroke="{color}" stroke-width="2"{dash_attr}/>'
            f'<text x="{x + 22:.0f}" y="18" class="lg">{escape(name)}</text>'
        )
    return "".join(out)
