"""`model_usage_daily`: what fal billed per UTC day, endpoint and unit, beside what GenFeed charges for it.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from genfeed_pipeline.db.types import ExactDecimal, UtcDateTime

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "model_usage_daily",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("endpoint_id", sa.String(512), primary_key=True),
        sa.Column("unit", sa.String(128), primary_key=True),
        sa.Column("quantity", ExactDecimal, nullable=False),
        sa.Column("unit_price", ExactDecimal, nullable=True),
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
    )
    op.create_index("ix_model_usage_daily_endpoint", "model_usage_daily", ["endpoint_id", "day"])
