"""`model_usage_daily`, read and written, and the catalog facts a day of usage is priced with.

Materializing a day replaces exactly that day's rows in one transaction that holds the day's lock
(PostgreSQL: a transaction-scoped advisory lock on the day; SQLite: `BEGIN IMMEDIATE`), so re-runs,
backfills and two runs of one day never double-count, and a failed day leaves what was stored before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa

from genfeed_pipeline.db.tables import model_price_history, model_usage_daily, models
from genfeed_pipeline.report.profitability import fixed_price_of
from genfeed_pipeline.sync.store import require_migrated
from genfeed_pipeline.usage.daily import DayPrice, UsageRow, day_bounds
from genfeed_pipeline.usage.realized import Profitability, daily_margins, profitability, realized_window

USAGE_LOCK_CLASS = 724_502  # arbitrary, fixed: the first key of "one day of model_usage_daily"
IN_BATCH = 500
USAGE_COLUMNS = tuple(column.name for column in model_usage_daily.c if column.name != "synced_at")


@dataclass(frozen=True)
class UsageCatalog:
    """What the catalog says about the endpoints of one day's usage."""

    prices: dict[str, DayPrice]  # endpoint ids in `models`; unit_price None where it has no price
    model_types: dict[str, str]  # endpoint id → `models.category`


def usage_catalog(connection: sa.Connection, endpoint_ids: Sequence[str], day: date) -> UsageCatalog:
    """Each endpoint's price on `day`: its last price-history row seen before the next 00:00 UTC; for a day
    before its history starts, the earliest row (`assumed`). A row's `fixedPrice` replaces per-call prices."""
    require_migrated(connection)
    rows, history = _read_catalog(connection, endpoint_ids)
    return _day_catalog(day, endpoint_ids, rows, history)


class PriceBook:
    """`usage_catalog` for the many days of one run, the catalog read once: a backfill prices every day from
    the same rows and the same price history."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._rows: dict[str, sa.Row] = {}
        self._history: dict[str, list[sa.Row]] = {}
        self._read: set[str] = set()

    def catalog_for(self, endpoint_ids: Sequence[str], day: date) -> UsageCatalog:
        missing = [endpoint_id for endpoint_id in endpoint_ids if endpoint_id not in self._read]
        if missing:
            with self._engine.connect() as connection:
                rows, history = _read_catalog(connection, missing)
            self._rows.update(rows)
            self._history.update(history)
            self._read.update(missing)
        return _day_catalog(day, endpoint_ids, self._rows, self._history)


def _read_catalog(
    connection: sa.Connection, endpoint_ids: Sequence[str]
) -> tuple[dict[str, sa.Row], dict[str, list[sa.Row]]]:
    """The `models` rows and the price history (oldest first) of the endpoints."""
    rows: dict[str, sa.Row] = {}
    history: dict[str, list[sa.Row]] = {}
    for batch in _batches(endpoint_ids):
        for row in connection.execute(
            sa.select(models.c.id, models.c.category, models.c.pricing).where(models.c.id.in_(batch))
        ):
            rows[row.id] = row
        for entry in connection.execute(
            sa.select(
                model_price_history.c.endpoint_id,
                model_price_history.c.seen_at,
                model_price_history.c.unit_price,
                model_price_history.c.unit_raw,
                model_price_history.c.cost_per_call,
            )
            .where(model_price_history.c.endpoint_id.in_(batch))
            .order_by(model_price_history.c.seen_at, model_price_history.c.id)
        ):
            history.setdefault(entry.endpoint_id, []).append(entry)
    return rows, history


def _day_catalog(
    day: date,
    endpoint_ids: Sequence[str],
    rows: Mapping[str, sa.Row],
    history: Mapping[str, list[sa.Row]],
) -> UsageCatalog:
    _, day_end = day_bounds(day)
    prices: dict[str, DayPrice] = {}
    model_types: dict[str, str] = {}
    for endpoint_id in endpoint_ids:
        row = rows.get(endpoint_id)
        if row is None:
            continue
        entries = history.get(endpoint_id, [])
        seen = [entry for entry in entries if entry.seen_at < day_end]
        entry, assumed = (seen[-1], False) if seen else (entries[0], True) if entries else (None, False)
        prices[endpoint_id] = DayPrice(
            unit_price=entry.unit_price if entry else None,
            unit_raw=entry.unit_raw if entry else None,
            cost_per_call=entry.cost_per_call if entry else None,
            assumed=assumed,
            fixed_price=fixed_price_of(row.pricing),
        )
        model_types[endpoint_id] = row.category
    return UsageCatalog(prices=prices, model_types=model_types)


def replace_usage_day(engine: sa.Engine, day: date, rows: Sequence[UsageRow], synced_at: datetime) -> int:
    """Replaces `day`'s rows with `rows` in one transaction under the day's lock; returns the rows written."""
    for row in rows:
        if row.day != day:
            raise ValueError(f"a row of {row.day} ({row.endpoint_id}) among the rows of {day}")
    with engine.begin() as connection:
        require_migrated(connection)
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:kind, :day)"),
                {"kind": USAGE_LOCK_CLASS, "day": day.toordinal()},
            )
        connection.execute(model_usage_daily.delete().where(model_usage_daily.c.day == day))
        if rows:
            connection.execute(
                model_usage_daily.insert(),
                [
                    {**{name: getattr(row, name) for name in USAGE_COLUMNS}, "synced_at": synced_at}
                    for row in rows
                ],
            )
    return len(rows)


def load_usage(connection: sa.Connection, first_day: date, last_day: date) -> list[UsageRow]:
    """The stored rows of [first_day, last_day], by day and endpoint."""
    require_migrated(connection)
    result = connection.execute(
        sa.select(*(model_usage_daily.c[name] for name in USAGE_COLUMNS))
        .where(model_usage_daily.c.day >= first_day, model_usage_daily.c.day <= last_day)
        .order_by(model_usage_daily.c.day, model_usage_daily.c.endpoint_id, model_usage_daily.c.unit)
    )
    return [UsageRow(**row._mapping) for row in result]


def _batches(endpoint_ids: Sequence[str]) -> list[Sequence[str]]:
    ordered = sorted(set(endpoint_ids))
    return [ordered[index : index + IN_BATCH] for index in range(0, len(ordered), IN_BATCH)]


@dataclass(frozen=True)
class RealizedWindow:
    """The last 30 days of fal's bill, for the catalog's report and recommendations."""

    figures: Profitability
    daily_margins: list[tuple[date, Decimal]]


def load_realized(connection: sa.Connection, today: date) -> RealizedWindow | None:
    """The realized figures of the 30 complete days before `today`; None when no usage is stored."""
    first_day, last_day = realized_window(today)
    rows = load_usage(connection, first_day, last_day)
    if not rows:
        return None
    model_types = usage_catalog(connection, sorted({row.endpoint_id for row in rows}), last_day).model_types
    return RealizedWindow(
        figures=profitability(first_day, last_day, rows, model_types), daily_margins=daily_margins(rows)
    )
