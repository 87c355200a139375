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
