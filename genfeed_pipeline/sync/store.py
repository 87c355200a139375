"""Applying a sync plan to the `models` table: one transaction, one writer at a time.

On PostgreSQL a transaction-scoped advisory lock serialises syncs (a second sync waits, then plans
against what the first one wrote); on SQLite `BEGIN IMMEDIATE` does the same. Readers are never
blocked: they keep seeing the old catalog until the sync commits, then the new one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from genfeed_pipeline.db.migrate import upgrade_to_head
from genfeed_pipeline.db.tables import model_price_history, model_schema_history, models, sync_runs
from genfeed_pipeline.db.types import UtcDateTime, json_text
from genfeed_pipeline.fal.catalog import utc_now
from genfeed_pipeline.mapping.diff import SchemaChange
from genfeed_pipeline.mapping.model import GenFeedModel
from genfeed_pipeline.pricing import PricedModel
from genfeed_pipeline.pricing.rate_card import schema_errors
from genfeed_pipeline.runtime import collector_paused
from genfeed_pipeline.sync.plan import Action, Row, SyncContext, SyncMode, SyncPlan, SyncPlanner
from genfeed_pipeline.sync.review import held_models, ids_to_review, review_schemas

SYNC_LOCK_KEY = 7_245_019_331  # arbitrary, fixed: the advisory lock id of "the models table sync"
HEAVY_COLUMNS = ("input_schema", "output_schema")
BATCH = 1000


@dataclass(frozen=True)
class SyncOutcome:
    plan: SyncPlan
    written: bool
    sync_run_id: int | None
    schema_changes: dict[str, list[SchemaChange]]  # models compared with their accepted schema
    held: dict[str, str]  # endpoint_id → review reason


class CatalogStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def migrate(self) -> str | None:
        return upgrade_to_head(self.engine)

    @contextmanager
    def locked_transaction(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SYNC_LOCK_KEY})
            yield connection

    # -- reads --------------------------------------------------------------------------------------

    @staticmethod
    def load_rows(connection: sa.Connection, *, with_schemas: bool = False) -> dict[str, Row]:
        columns = [c for c in models.c if with_schemas or c.name not in HEAVY_COLUMNS]
        result = connection.execute(sa.select(*columns))
        return {row.id: dict(row._mapping) for row in result}

    @staticmethod
    def load_schemas(connection: sa.Connection, endpoint_ids: list[str]) -> dict[str, Row]:
        rows: dict[str, Row] = {}
        for start in range(0, len(endpoint_ids), BATCH):
            batch = endpoint_ids[start : start + BATCH]
            query = sa.select(models.c.id, models.c.input_schema, models.c.output_schema).where(
                models.c.id.in_(batch)
            )
            rows |= {row.id: dict(row._mapping) for row in connection.execute(query)}
        return rows

    def current_rows(self) -> dict[str, Row]:
        """Every row of `models` as it stands (without the large schema columns), tables migrated first."""
        self.migrate()
        with self.engine.connect() as connection:
            return self.load_rows(connection)

    def accepted_schemas(self, models: Mapping[str, GenFeedModel]) -> dict[str, Row]:
        """The accepted input/output schemas of the models whose mapped schemas differ from them."""
        self.migrate()
        with self.engine.connect() as connection:
            return self.load_schemas(connection, ids_to_review(self.load_rows(connection), models))

    def last_endpoints_seen(self) -> int | None:
        self.migrate()
        with self.engine.connect() as connection:
            return self.previous_endpoints_seen(connection)

    def count_rows(self) -> tuple[int, int]:
        """(rows, enabled rows) of the `models` table."""
        with self.engine.connect() as connection:
            total, enabled = connection.execute(
                sa.select(sa.func.count(), sa.func.count().filter(models.c.enabled.is_(True)))
            ).one()
        return int(total), int(enabled)

    @staticmethod
    def previous_endpoints_seen(connection: sa.Connection) -> int | None:
        query = (
            sa.select(sync_runs.c.endpoints_seen)
            .where(sync_runs.c.mode == SyncMode.FULL.value, sync_runs.c.complete_listing.is_(True))
            .where(sync_runs.c.source == "live")
            .order_by(sync_runs.c.id.desc())
            .limit(1)
        )
        return connection.execute(query).scalar()

    # -- writes -------------------------------------------------------------------------------------

    @staticmethod
    def apply(connection: sa.Connection, plan: SyncPlan) -> None:
        inserts = [change.values for change in plan.changes if change.action == Action.INSERT]
        insert_rows(connection, models, inserts)
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for change in plan.changes:
            if change.action == Action.INSERT:
                continue
            columns = tuple(sorted(change.values))
            by_columns[columns].append(
                {"row_id": change.endpoint_id, **{f"new_{c}": change.values[c] for c in columns}}
            )
        for columns, params in by_columns.items():
            statement = (
                models.update()
                .where(models.c.id == sa.bindparam("row_id"))
                .values({column: sa.bindparam(f"new_{column}") for column in columns})
            )
            for start in range(0, len(params), BATCH):
                connection.execute(statement, params[start : start + BATCH])

    @staticmethod
    def record_history(
        connection: sa.Connection, plan: SyncPlan, *, seen_at: datetime, run_id: str | None, deployment: str
    ) -> None:
        stamp = {"seen_at": seen_at, "run_id": run_id}
        schema_rows = [entry | stamp for entry in plan.schema_history]
        price_rows = [entry | stamp | {"deployment": deployment} for entry in plan.price_history]
        insert_rows(connection, model_schema_history, schema_rows)
        insert_rows(connection, model_price_history, price_rows)

    @staticmethod
    def record_run(
        connection: sa.Connection,
        context: SyncContext,
        plan: SyncPlan,
        *,
        run_id: str | None,
        deployment: str,
    ) -> int:
        values = {
            "run_id": run_id,
            "started_at": context.now,
            "finished_at": utc_now(),
            "mode": context.mode.value,
            "deployment": deployment,
            "source": context.source.value,
            "source_as_of": context.data_as_of,
            "source_age_seconds": int((context.now - context.data_as_of).total_seconds()),
            "endpoints_seen": plan.endpoints_seen,
            "complete_listing": context.complete_listing and context.requested_endpoint_ids is None,
            "new_count": plan.inserted,
            "changed_count": plan.updated,
            "removed_count": plan.removed,
            "held_count": plan.held,
            "failed_count": plan.failed,
            "unchanged_count": plan.unchanged,
            "notes": plan.warnings or None,
        }
        return connection.execute(sync_runs.insert().returning(sync_runs.c.id), values).scalar_one()

    def review(
        self, connection: sa.Connection, rows: Mapping[str, Row], priced: Mapping[str, PricedModel]
    ) -> dict[str, list[SchemaChange]]:
        models_by_id = {endpoint_id: model.model for endpoint_id, model in priced.items()}
        accepted = self.load_schemas(connection, ids_to_review(rows, models_by_id))
        return review_schemas(accepted, models_by_id)

    def sync(
        self,
        context: SyncContext,
        priced: Mapping[str, PricedModel],
        policy_enabled: Callable[[PricedModel], bool],
        *,
        run_id: str | None = None,
        deployment: str,
    ) -> SyncOutcome:
        """Plans against the rows as they are inside the lock, then writes them (unless a dry run).

        Models with a breaking schema change are held: their accepted schema stays, they are disabled
        and marked for review; everything else syncs.
        """
        self.migrate()

        def plan_in(connection: sa.Connection) -> tuple[SyncContext, SyncPlan, dict, dict]:
            full_context = replace(context, previous_endpoints_seen=self.previous_endpoints_seen(connection))
            rows = self.load_rows(connection)
            changes = self.review(connection, rows, priced)
            held = held_models(changes)
            planner = SyncPlanner(full_context, policy_enabled, held, card_errors=schema_errors)
            return full_context, planner.plan(rows, priced), changes, held

        if context.mode == SyncMode.DRY_RUN:
            with self.engine.connect() as connection:
                _, plan, changes, held = plan_in(connection)
            return SyncOutcome(plan, written=False, sync_run_id=None, schema_changes=changes, held=held)
        with self.locked_transaction() as connection, collector_paused():
            full_context, plan, changes, held = plan_in(connection)
            self.apply(connection, plan)
            self.record_history(connection, plan, seen_at=context.now, run_id=run_id, deployment=deployment)
            sync_run_id = self.record_run(
                connection, full_context, plan, run_id=run_id, deployment=deployment
            )
        return SyncOutcome(plan, written=True, sync_run_id=sync_run_id, schema_changes=changes, held=held)


COPY_THRESHOLD = 200


def insert_rows(connection: sa.Connection, table: sa.Table, rows: list[Row]) -> None:
    """Inserts many rows; on PostgreSQL with COPY, which skips per-row statement building entirely
    (15,000 catalog rows and their history in about a second instead of several)."""
    if not rows:
        return
    if connection.dialect.name != "postgresql" or len(rows) < COPY_THRESHOLD:
        for start in range(0, len(rows), BATCH):
            connection.execute(table.insert(), rows[start : start + BATCH])
        return
    columns = sorted({name for row in rows for name in row})
    encoders = [_copy_encoder(table.c[name].type) for name in columns]
    names = ", ".join(f'"{name}"' for name in columns)
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([encode(row.get(name)) for name, encode in zip(columns, encoders, strict=True)])


def _copy_encoder(column_type: sa.types.TypeEngine) -> Callable[[Any], Any]:
    """COPY takes text: JSON columns get the JSON text the engine writes, every other value psycopg's own
    adaptation."""
    stored_as = column_type.impl_instance if isinstance(column_type, sa.types.TypeDecorator) else column_type
    if isinstance(stored_as, sa.JSON):
        return lambda value: None if value is None else json_text(value)
    if isinstance(column_type, UtcDateTime):
        return lambda value: None if value is None else column_type.process_bind_param(value, None)
    return lambda value: value
