"""The catalog tables read and written: the sync's one transaction, one writer at a time.

Every function takes the connection it works on, so a caller that holds a transaction (the sync, an
operator's action) joins it as it is. On PostgreSQL a transaction-scoped advisory lock serialises writers
(a second sync waits, then plans against what the first one wrote); on SQLite `BEGIN IMMEDIATE` does the
same. Readers are never blocked: they keep seeing the old catalog until the sync commits, then the new one.

Nothing here migrates: the tables are brought up to date by `genfeed-catalog migrate` and at the start of
each job that writes them (`CatalogDatabase.migrate`), never by a read or a check.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from genfeed_pipeline.clock import utc_now
from genfeed_pipeline.db.migrate import head_revision, upgrade_to_head
from genfeed_pipeline.db.tables import ModelRow, model_price_history, model_schema_history, models, sync_runs
from genfeed_pipeline.db.types import UtcDateTime, json_text
from genfeed_pipeline.pricing import PricedModel
from genfeed_pipeline.pricing.rate_card import schema_errors
from genfeed_pipeline.runtime import collector_paused
from genfeed_pipeline.sync.plan import Action, SyncContext, SyncMode, SyncPlan, SyncPlanner

SYNC_LOCK_KEY = 7_245_019_331  # arbitrary, fixed: the advisory lock id of "the models table sync"
HEAVY_COLUMNS = ("input_schema", "output_schema")
BATCH = 1000


class CatalogNotMigrated(RuntimeError):
    """The catalog tables are missing or behind the code: nothing was read or changed."""


@dataclass(frozen=True)
class SyncOutcome:
    plan: SyncPlan
    written: bool
    sync_run_id: int | None
    held: dict[str, str]  # endpoint_id → review reason


@contextmanager
def locked_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction that holds the catalog's write lock until it ends."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SYNC_LOCK_KEY})
        yield connection


def require_migrated(connection: sa.Connection) -> None:
    """Refuses to go on (reading or writing) unless the tables are at this code's revision."""
    from alembic.runtime.migration import MigrationContext

    current = MigrationContext.configure(connection).get_current_revision()
    if current != head_revision():
        where = f"at revision {current}" if current else "not created yet"
        raise CatalogNotMigrated(
            f"the catalog tables are {where}, this code needs revision {head_revision()}: "
            "run `genfeed-catalog migrate` (nothing was changed)"
        )


# -- reads ------------------------------------------------------------------------------------------


def load_rows(connection: sa.Connection, *, with_schemas: bool = False) -> dict[str, ModelRow]:
    """Every row of `models` (without the large schema columns unless asked)."""
    columns = [c for c in models.c if with_schemas or c.name not in HEAVY_COLUMNS]
    result = connection.execute(sa.select(*columns))
    return {row.id: dict(row._mapping) for row in result}


def load_schemas(connection: sa.Connection, endpoint_ids: list[str]) -> dict[str, ModelRow]:
    """The accepted input and output schemas of the given models."""
    rows: dict[str, ModelRow] = {}
    for start in range(0, len(endpoint_ids), BATCH):
        batch = endpoint_ids[start : start + BATCH]
        query = sa.select(models.c.id, models.c.input_schema, models.c.output_schema).where(
            models.c.id.in_(batch)
        )
        rows |= {row.id: dict(row._mapping) for row in connection.execute(query)}
    return rows


def count_rows(connection: sa.Connection) -> tuple[int, int]:
    """(rows, enabled rows) of the `models` table."""
    total, enabled = connection.execute(
        sa.select(sa.func.count(), sa.func.count().filter(models.c.enabled.is_(True)))
    ).one()
    return int(total), int(enabled)


def previous_endpoints_seen(connection: sa.Connection) -> int | None:
    """How many endpoints the last complete live listing of the whole catalog had."""
    query = (
        sa.select(sync_runs.c.endpoints_seen)
        .where(sync_runs.c.mode == SyncMode.FULL.value, sync_runs.c.complete_listing.is_(True))
        .where(sync_runs.c.source == "live")
        .order_by(sync_runs.c.id.desc())
        .limit(1)
    )
    return connection.execute(query).scalar()


# -- writes -----------------------------------------------------------------------------------------


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


def record_history(
    connection: sa.Connection, plan: SyncPlan, *, seen_at: datetime, run_id: str | None, deployment: str
) -> None:
    stamp = {"seen_at": seen_at, "run_id": run_id}
    schema_rows = [entry | stamp for entry in plan.schema_history]
    price_rows = [entry | stamp | {"deployment": deployment} for entry in plan.price_history]
    insert_rows(connection, model_schema_history, schema_rows)
    insert_rows(connection, model_price_history, price_rows)


def record_run(
    connection: sa.Connection, context: SyncContext, plan: SyncPlan, *, run_id: str | None, deployment: str
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
        "complete_listing": context.completeness.passed and context.requested_endpoint_ids is None,
        "new_count": plan.inserted,
        "changed_count": plan.updated,
        "removed_count": plan.removed,
        "held_count": plan.held,
        "failed_count": plan.failed,
        "unchanged_count": plan.unchanged,
        "notes": plan.warnings or None,
    }
    return connection.execute(sync_runs.insert().returning(sync_runs.c.id), values).scalar_one()


def sync_catalog(
    connection: sa.Connection,
    context: SyncContext,
    priced: Mapping[str, PricedModel],
    *,
    held: Mapping[str, str],
    run_id: str | None,
    deployment: str,
) -> SyncOutcome:
    """Plans against the rows as they are on `connection` (the caller holds the lock) and, unless a dry
    run, writes the plan, its history and a `sync_runs` row there.

    Models in `held` (a breaking schema change, decided once per run) keep their accepted schema, are
    disabled and marked for review; everything else syncs.
    """
    planner = SyncPlanner(context, held, card_errors=schema_errors)
    plan = planner.plan(load_rows(connection), priced)
    if context.mode == SyncMode.DRY_RUN:
        return SyncOutcome(plan, written=False, sync_run_id=None, held=dict(held))
    apply(connection, plan)
    record_history(connection, plan, seen_at=context.now, run_id=run_id, deployment=deployment)
    sync_run_id = record_run(connection, context, plan, run_id=run_id, deployment=deployment)
    return SyncOutcome(plan, written=True, sync_run_id=sync_run_id, held=dict(held))


class CatalogStore:
    """The catalog tables of one database: the engine-level doors to the functions above."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def migrate(self) -> str | None:
        return upgrade_to_head(self.engine)

    @contextmanager
    def locked_transaction(self) -> Iterator[sa.Connection]:
        with locked_transaction(self.engine) as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection for reads, on tables this code's migrations have made (else `CatalogNotMigrated`)."""
        with self.engine.connect() as connection:
            require_migrated(connection)
            yield connection

    def current_rows(self) -> dict[str, ModelRow]:
        """Every row of `models` as it stands (without the large schema columns)."""
        with self.reading() as connection:
            return load_rows(connection)

    def last_endpoints_seen(self) -> int | None:
        with self.reading() as connection:
            return previous_endpoints_seen(connection)

    def held_endpoints(self) -> tuple[set[str], int | None]:
        """The ids of every row of `models` (removed ones included) and the last complete listing's count,
        read together."""
        with self.reading() as connection:
            ids = set(connection.execute(sa.select(models.c.id)).scalars())
            return ids, previous_endpoints_seen(connection)

    def count_rows(self) -> tuple[int, int]:
        with self.reading() as connection:
            return count_rows(connection)

    def sync(
        self,
        context: SyncContext,
        priced: Mapping[str, PricedModel],
        *,
        held: Mapping[str, str] | None = None,
        run_id: str | None = None,
        deployment: str,
    ) -> SyncOutcome:
        """`sync_catalog` in one locked transaction (a dry run reads, and neither locks nor writes)."""
        if context.mode == SyncMode.DRY_RUN:
            with self.reading() as connection:
                return sync_catalog(
                    connection, context, priced, held=held or {}, run_id=run_id, deployment=deployment
                )
        with locked_transaction(self.engine) as connection, collector_paused():
            require_migrated(connection)
            return sync_catalog(
                connection, context, priced, held=held or {}, run_id=run_id, deployment=deployment
            )


COPY_THRESHOLD = 200


def insert_rows(connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
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
