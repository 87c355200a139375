"""Markdown for Dagster metadata, safe for text that comes from fal.

Names and descriptions are fal's text: they must not inject markdown (links, images, tables) or HTML
into the Dagster UI. Every cell is escaped: HTML's special characters become entities and markdown's
punctuation gets a backslash.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Any

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def escape(value: Any) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    return html.escape(_MARKDOWN_SPECIAL.sub(r"\\\1", text), quote=False)


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str], limit: int | None = 50) -> str:
    rows = list(rows)
    lines = ["| " + " | ".join(escape(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    shown = rows if limit is None else rows[:limit]
    lines += ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in shown]
    if limit is not None and len(rows) > limit:
        lines.append(f"\n… and {len(rows) - limit} more")
    return "\n".join(lines)


def bullet_list(items: Iterable[Any]) -> str:
    return "\n".join(f"- {escape(item)}" for item in items) or "none"
