"""Small SVG charts for Dagster markdown metadata, embedded as data URIs (no plotting library needed).

The UI's markdown renderer allows `data:` image sources, and an SVG shown through `<img>` runs no
script, so a chart is safe to embed. Labels are escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

BAR_HEIGHT = 18
LABEL_WIDTH = 120
CHART_WIDTH = 420
PALETTE = ("#4f46e5", "#0891b2", "#16a34a", "#ca8a04", "#dc2626", "#7c3aed", "#db2777")


def bar_chart_svg(title: str, bars: Sequence[tuple[str, float]], unit: str = "") -> str:
    """A horizontal bar chart: one labelled bar per (label, value)."""
    top = 28
    height = top + BAR_HEIGHT * len(bars) + 12
    peak = max((value for _, value in bars), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL_WIDTH + CHART_WIDTH + 80}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="4" y="16" font-weight="bold">{html.escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(bars):
        y = top + index * BAR_HEIGHT
        width = max(1.0, CHART_WIDTH * value / peak)
        color = PALETTE[index % len(PALETTE)]
        parts.append(f'<text x="4" y="{y + 13}">{html.escape(label)}</text>')
        parts.append(
            f'<rect x="{LABEL_WIDTH}" y="{y + 2}" width="{width:.1f}" '
            f'height="{BAR_HEIGHT - 4}" fill="{color}"/>'
        )
        parts.append(
            f'<text x="{LABEL_WIDTH + width + 4:.1f}" y="{y + 13}">{value:,.4g}{html.escape(unit)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def markdown_image(svg: str, alt: str) -> str:
    encoded = base64.b64encode(svg.encode()).decode()
    return f"![{html.escape(alt)}](data:image/svg+xml;base64,{encoded})"


def line_chart_svg(title: str, points: Sequence[tuple[str, float]], unit: str = "") -> str:
    """A line through (label, value) points in order, with the first and last labels and a zero line."""
    top, height, left = 28, 160, 50
    width = LABEL_WIDTH + CHART_WIDTH
    values = [value for _, value in points] or [0.0]
    low, high = min(0.0, *values), max(0.0, *values)
    span = (high - low) or 1.0

    def y(value: float) -> float:
        return top + height * (high - value) / span

    step = CHART_WIDTH / max(1, len(points) - 1)
    coordinates = " ".join(
        f"{left + index * step:.1f},{y(value):.1f}" for index, (_, value) in enumerate(points)
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + height + 30}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="4" y="16" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{left + CHART_WIDTH}" y2="{y(0):.1f}" stroke="#9ca3af"/>',
        f'<text x="4" y="{y(high) + 4:.1f}">{high:,.4g}{html.escape(unit)}</text>',
        f'<text x="4" y="{y(low) + 4:.1f}">{low:,.4g}{html.escape(unit)}</text>',
        f'<polyline fill="none" stroke="{PALETTE[0]}" stroke-width="2" points="{coordinates}"/>',
    ]
    if points:
        parts.append(f'<text x="{left}" y="{top + height + 20}">{html.escape(points[0][0])}</text>')
        parts.append(
            f'<text x="{left + CHART_WIDTH}" y="{top + height + 20}" text-anchor="end">'
            f"{html.escape(points[-1][0])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
