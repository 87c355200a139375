"""History: every schema version and every price a model had, with when it was first seen.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from genfeed_pipeline.db.types import ExactDecimal, UtcDateTime

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "model_schema_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("endpoint_id", sa.String(512), nullable=False),
        sa.Column("seen_at", UtcDateTime, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("schema_hash", sa.String(64), nullable=True),
        sa.Column("mapped_hash", sa.String(64), nullable=False),
        sa.Column("schema_version", sa.String(64), nullable=True),
        sa.Column("input_schema", sa.JSON, nullable=True),
        sa.Column("output_schema", sa.JSON, nullable=True),
        sa.Column("capabilities", sa.JSON, nullable=True),
        sa.Column("review_reason", sa.Text, nullable=True),
        sa.Column("decided_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_model_schema_history_endpoint", "model_schema_history", ["endpoint_id", "seen_at"])
    op.create_table(
        "model_price_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("endpoint_id", sa.String(512), nullable=False),
        sa.Column("seen_at", UtcDateTime, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("unit_price", ExactDecimal, nullable=True),
        sa.Column("unit", sa.String(64), nullable=True),
        sa.Column("unit_raw", sa.String(128), nullable=True),
        sa.Column("cost_per_call", ExactDecimal, nullable=True),
        sa.Column("price_per_call", ExactDecimal, nullable=True),
        sa.Column("price_source", sa.String(16), nullable=True),
        sa.Column("deployment", sa.String(16), nullable=True),
    )
    op.create_index("ix_model_price_history_endpoint", "model_price_history", ["endpoint_id", "seen_at"])
