"""The catalog tables as the pipeline reads and writes them (SQLAlchemy Core).

The migrations in `genfeed_pipeline/db/migrations` create them; these definitions must agree with the
newest migration (a test checks that they do).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict

import sqlalchemy as sa

from genfeed_pipeline.db.types import DecimalJSON, ExactDecimal, UtcDateTime

metadata = sa.MetaData()

MANAGED_BY_PIPELINE = "fal_catalog"

# GenFeed's app created `models` with these six columns and writes them itself.
ORIGINAL_COLUMNS = ("id", "name", "provider", "category", "pricing", "enabled")

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.String(512), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("pricing", DecimalJSON, nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    # Added by the pipeline: every column is nullable or has a default.
    sa.Column("managed_by", sa.String(32), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("fal_category", sa.Text, nullable=True),
    sa.Column("owner", sa.Text, nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("unit", sa.Text, nullable=True),
    sa.Column("unit_raw", sa.Text, nullable=True),
    sa.Column("unit_price", ExactDecimal, nullable=True),
    sa.Column("cost_per_call", ExactDecimal, nullable=True),
    sa.Column("price_per_call", ExactDecimal, nullable=True),
    sa.Column("rate_card", DecimalJSON, nullable=True),
    sa.Column("cost_derivation", sa.Text, nullable=True),
    sa.Column("cost_confidence", sa.Text, nullable=True),
    sa.Column("price_flags", sa.JSON, nullable=True),
    sa.Column("price_source", sa.Text, nullable=True),
    sa.Column("price_seen_at", UtcDateTime, nullable=True),
    sa.Column("input_schema", sa.JSON, nullable=True),
    sa.Column("output_schema", sa.JSON, nullable=True),
    sa.Column("capabilities", sa.JSON, nullable=True),
    sa.Column("schema_hash", sa.String(64), nullable=True),
    sa.Column("mapped_hash", sa.String(64), nullable=True),
    sa.Column("schema_version", sa.Text, nullable=True),
    sa.Column("validation_errors", sa.JSON, nullable=True),
    sa.Column("review_reason", sa.Text, nullable=True),
    sa.Column("enabled_by_sync", sa.Boolean, nullable=True),
    sa.Column("policy_enabled", sa.Boolean, nullable=True),
    sa.Column("policy_reason", sa.Text, nullable=True),
    sa.Column("operator_enabled", sa.Boolean, nullable=True),
    sa.Column("operator_reason", sa.Text, nullable=True),
    sa.Column("operator_changed_at", UtcDateTime, nullable=True),
    sa.Column("data_as_of", UtcDateTime, nullable=True),
    sa.Column("last_synced_at", UtcDateTime, nullable=True),
)

sync_runs = sa.Table(
    "sync_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("deployment", sa.String(16), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("source_as_of", UtcDateTime, nullable=True),
    sa.Column("source_age_seconds", sa.Integer, nullable=True),
    sa.Column("endpoints_seen", sa.Integer, nullable=False, server_default="0"),
    sa.Column("complete_listing", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("new_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("changed_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("removed_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("held_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unchanged_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("notes", sa.JSON, nullable=True),
)

model_schema_history = sa.Table(
    "model_schema_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("endpoint_id", sa.String(512), nullable=False),
    sa.Column("seen_at", UtcDateTime, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # accepted | held | rejected
    sa.Column("schema_hash", sa.String(64), nullable=True),
    sa.Column("mapped_hash", sa.String(64), nullable=False),
    sa.Column("schema_version", sa.Text, nullable=True),
    sa.Column("input_schema", sa.JSON, nullable=True),
    sa.Column("output_schema", sa.JSON, nullable=True),
    sa.Column("capabilities", sa.JSON, nullable=True),
    sa.Column("review_reason", sa.Text, nullable=True),
    sa.Column("decided_at", UtcDateTime, nullable=True),
)

model_price_history = sa.Table(
    "model_price_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("endpoint_id", sa.String(512), nullable=False),
    sa.Column("seen_at", UtcDateTime, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("unit_price", ExactDecimal, nullable=True),
    sa.Column("unit", sa.Text, nullable=True),
    sa.Column("unit_raw", sa.Text, nullable=True),
    sa.Column("cost_per_call", ExactDecimal, nullable=True),
    sa.Column("price_per_call", ExactDecimal, nullable=True),
    sa.Column("price_source", sa.Text, nullable=True),
    sa.Column("deployment", sa.String(16), nullable=True),
)

model_admin_actions = sa.Table(
    "model_admin_actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("endpoint_id", sa.String(512), nullable=False),
    sa.Column(
        "action", sa.String(32), nullable=False
    ),  # enable | disable | undo | accept | apply_recommendation
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("before_enabled", sa.Boolean, nullable=True),
    sa.Column("after_enabled", sa.Boolean, nullable=True),
)

model_usage_daily = sa.Table(
    "model_usage_daily",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("endpoint_id", sa.String(512), primary_key=True),
    sa.Column("unit", sa.String(128), primary_key=True),  # fal's unit string, stripped
    sa.Column("quantity", ExactDecimal, nullable=False),
    sa.Column("unit_price", ExactDecimal, nullable=True),  # subtotal ÷ quantity: before discount
    sa.Column("percent_discount", ExactDecimal, nullable=True),
    sa.Column("cost_subtotal", ExactDecimal, nullable=False),
    sa.Column("cost_discount", ExactDecimal, nullable=False),
    sa.Column("cost_total", ExactDecimal, nullable=False),
    sa.Column("requests", sa.Integer, nullable=True),
    sa.Column("revenue_rate_card", ExactDecimal, nullable=True),
    sa.Column("revenue_per_call", ExactDecimal, nullable=True),
    sa.Column("price_assumed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("currency", sa.String(8), nullable=False, server_default="USD"),
    sa.Column("synced_at", UtcDateTime, nullable=False),
    sa.Index("ix_model_usage_daily_endpoint", "endpoint_id", "day"),
)


class ModelRow(TypedDict, total=False):
    """A row of `models` as the code reads and writes it (a plan's values are the columns it changes)."""

    id: str
    name: str
    provider: str
    category: str
    pricing: Any
    enabled: bool
    managed_by: str | None
    status: str
    fal_category: str | None
    owner: str | None
    description: str | None
    unit: str | None
    unit_raw: str | None
    unit_price: Decimal | None
    cost_per_call: Decimal | None
    price_per_call: Decimal | None
    cost_derivation: str | None
    cost_confidence: str | None
    price_flags: list[str] | None
    price_source: str | None
    price_seen_at: datetime | None
    rate_card: dict[str, Any] | None
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    capabilities: dict[str, Any] | None
    schema_hash: str | None
    mapped_hash: str | None
    schema_version: str | None
    validation_errors: list[str] | None
    review_reason: str | None
    enabled_by_sync: bool | None
    policy_enabled: bool | None
    policy_reason: str | None
    operator_enabled: bool | None
    operator_reason: str | None
    operator_changed_at: datetime | None
    data_as_of: datetime | None
    last_synced_at: datetime | None
