"""Metadata that lets a person see at a glance what an asset holds: source, age, previews."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import dagster as dg

from genfeed_pipeline.fal.source import describe_age
from genfeed_pipeline.report import markdown

PREVIEW_ROWS = 25


def source_metadata(source: str, as_of: datetime, notes: Iterable[str]) -> dict[str, dg.MetadataValue]:
    return {
        "data_source": dg.MetadataValue.text(source),
        "data_as_of": dg.MetadataValue.timestamp(as_of),
        "data_age": dg.MetadataValue.text(describe_age(as_of)),
        "notes": dg.MetadataValue.md(markdown.bullet_list(notes)),
    }


def _cell(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def preview_table(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[tuple[str, str]], limit: int = PREVIEW_ROWS
) -> dg.MetadataValue:
    """The first `limit` rows as a typed table (columns: (name, type) pairs)."""
    records = []
    for index, row in enumerate(rows):
        if index >= limit:
            break
        records.append(dg.TableRecord({name: _cell(row.get(name)) for name, _ in columns}))
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns])
    return dg.MetadataValue.table(records, schema=schema)


def evidence_rows(rows: Sequence[Mapping[str, Any]], *, key: str, limit: int) -> list[Mapping[str, Any]]:
    """The rows a check's evidence table shows: every distinct `key` at least once (its last row), then the
    other rows in their order, up to `limit` rows or one per key, whichever is more. A long backfill can
    flag thousands of (day, endpoint) rows; no flagged endpoint is ever left out of the table."""
    last_of_key = {row[key]: index for index, row in enumerate(rows)}
    chosen = set(last_of_key.values())
    room = max(limit, len(chosen)) - len(chosen)
    for index in range(len(rows)):
        if room <= 0:
            break
        if index not in chosen:
            chosen.add(index)
            room -= 1
    return [rows[index] for index in sorted(chosen)]
