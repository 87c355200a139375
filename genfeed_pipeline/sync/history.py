"""Reading the catalog's history, and accepting held schema changes.

"What did fal-ai/flux/dev cost on 1 March, and when did its schema change?" is `price_on` and
`schema_history`. `accept` ships a held breaking change to workflows once a person has looked at it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from genfeed_pipeline.db.tables import ModelRow, model_price_history, model_schema_history, models
from genfeed_pipeline.mapping.diff import SchemaChange, diff_model_schemas
from genfeed_pipeline.sync.enabled import decide_enabled, managed, row_state
from genfeed_pipeline.sync.plan import SCHEMA_COLUMNS

HistoryRow = dict[str, Any]  # a row of model_price_history or model_schema_history


def price_on(connection: sa.Connection, endpoint_id: str, when: datetime) -> HistoryRow | None:
    """The price fal charged for `endpoint_id` at `when`: the last one first seen at or before it."""
    query = (
        sa.select(model_price_history)
        .where(model_price_history.c.endpoint_id == endpoint_id, model_price_history.c.seen_at <= when)
        .order_by(model_price_history.c.seen_at.desc(), model_price_history.c.id.desc())
        .limit(1)
    )
    row = connection.execute(query).mappings().first()
    return dict(row) if row else None


def model_history(
    connection: sa.Connection, table: sa.Table, endpoint_id: str, *, leave_out: tuple[str, ...] = ()
) -> list[HistoryRow]:
    """One model's rows of a history table (prices, schemas, admin actions), oldest first."""
    when = table.c.at if "at" in table.c else table.c.seen_at
    columns = [c for c in table.c if c.name not in leave_out]
    query = sa.select(*columns).where(table.c.endpoint_id == endpoint_id).order_by(when, table.c.id)
    return [dict(row) for row in connection.execute(query).mappings()]


def price_history(connection: sa.Connection, endpoint_id: str) -> list[HistoryRow]:
    return model_history(connection, model_price_history, endpoint_id)


def schema_history(connection: sa.Connection, endpoint_id: str) -> list[HistoryRow]:
    return model_history(
        connection, model_schema_history, endpoint_id, leave_out=("input_schema", "output_schema")
    )


def _latest_held(connection: sa.Connection, endpoint_id: str) -> HistoryRow | None:
    query = (
        sa.select(model_schema_history)
        .where(model_schema_history.c.endpoint_id == endpoint_id, model_schema_history.c.status == "held")
        .order_by(model_schema_history.c.id.desc())
        .limit(1)
    )
    row = connection.execute(query).mappings().first()
    return dict(row) if row else None


@dataclass(frozen=True)
class HeldChange:
    endpoint_id: str
    review_reason: str | None
    changes: list[SchemaChange]
    held_since: datetime | None


def held_changes(connection: sa.Connection, endpoint_ids: Sequence[str] | None = None) -> list[HeldChange]:
    """The models held for review, each with the diff between its accepted and its pending schema."""
    query = sa.select(
        models.c.id, models.c.review_reason, models.c.input_schema, models.c.output_schema
    ).where(models.c.review_reason.is_not(None))
    if endpoint_ids is not None:
        query = query.where(models.c.id.in_(list(endpoint_ids)))
    result = []
    for row in connection.execute(query).mappings():
        pending = _latest_held(connection, row["id"])
        if pending is None:
            continue
        changes = diff_model_schemas(
            row["input_schema"], row["output_schema"], pending["input_schema"], pending["output_schema"]
        )
        result.append(HeldChange(row["id"], row["review_reason"], changes, pending["seen_at"]))
    return result


def accept(connection: sa.Connection, endpoint_ids: Sequence[str], *, now: datetime) -> list[str]:
    """Ships each model's held schema on `connection` (the caller's locked transaction): written to
    `models`, the hold cleared, `enabled` back to what the enable rule gives it (the operator's choice,
    else the policy verdict the last sync stored). Returns the endpoint ids accepted (ids with nothing held
    are skipped)."""
    accepted = []
    for endpoint_id in endpoint_ids:
        row = connection.execute(sa.select(models).where(models.c.id == endpoint_id)).mappings().first()
        pending = _latest_held(connection, endpoint_id)
        if row is None or row["review_reason"] is None or pending is None:
            continue
        values: ModelRow = {column: pending[column] for column in SCHEMA_COLUMNS}  # type: ignore[misc]
        values |= {"review_reason": None, "last_synced_at": now}
        if managed(row):
            target = decide_enabled(replace(row_state(row), held=None)).enabled
            values |= {"enabled": target, "enabled_by_sync": target}
        connection.execute(models.update().where(models.c.id == endpoint_id).values(values))
        connection.execute(
            model_schema_history.update()
            .where(model_schema_history.c.id == pending["id"])
            .values(status="accepted", decided_at=now)
        )
        accepted.append(endpoint_id)
    return accepted
