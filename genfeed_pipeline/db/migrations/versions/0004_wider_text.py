"""Free text from fal in TEXT columns: a long category, owner or unit string must not fail a sync.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

WIDENED = {
    "models": (
        "fal_category",
        "owner",
        "unit",
        "unit_raw",
        "schema_version",
        "price_source",
        "cost_confidence",
    ),
    "model_schema_history": ("schema_version",),
    "model_price_history": ("unit", "unit_raw", "price_source"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # SQLite does not enforce VARCHAR lengths
    for table, columns in WIDENED.items():
        for column in columns:
            op.alter_column(table, column, type_=sa.Text())
