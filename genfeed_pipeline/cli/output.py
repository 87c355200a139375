"""How the commands print: tables for people, JSON for scripts. Amounts are written by the one exact
formatter (`exact_json.decimal_number_text`; with a `$`, `pricing.money_text`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from tabulate import tabulate

from genfeed_pipeline.exact_json import decimal_number_text


def json_ready(value: Any) -> Any:
    """JSON-ready: money as exact decimal text, times as ISO 8601."""
    if isinstance(value, Decimal):
        return decimal_number_text(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return json_ready(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_ready(v) for v in value]
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):
        return value.value
    return value


def print_json(value: Any) -> None:
    print(json.dumps(json_ready(value), indent=2, ensure_ascii=False))


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return decimal_number_text(value)
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)


def print_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    body = [[cell(row.get(column)) for column in columns] for row in rows]
    print(tabulate(body, headers=list(columns), tablefmt="simple", disable_numparse=True))


def when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "-"
