"""`models.rate_card`, and the prices in managed rows' `pricing` as JSON numbers instead of strings.

GenFeed's app bills from `pricing`; syncs before this revision wrote its prices as strings ("0.083334").
Each such string becomes the same number, exactly. Rows the pipeline did not insert are never read or
written here: their `pricing` belongs to the app and stays byte for byte as it is. Running it again
changes nothing.

Revision ID: 0005
Revises: 0004
"""

import re
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

from genfeed_pipeline.db.types import decimal_json_value, json_text

revision = "0005"
down_revision = "0004"

MANAGED_BY_PIPELINE = "fal_catalog"
# What str(Decimal) wrote ("0.083334", "1E-7", "0E-10"); an exponent of up to 3 digits keeps the number's
# text short.
DECIMAL_STRING = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?")


def with_number_prices(pricing: dict[str, Any]) -> dict[str, Any]:
    """`pricing` with every decimal string except `unit` turned into that number; the rest as it is."""
    return {
        key: Decimal(value)
        if key != "unit" and isinstance(value, str) and DECIMAL_STRING.fullmatch(value)
        else value
        for key, value in pricing.items()
    }


def upgrade() -> None:
    bind = op.get_bind()
    if "rate_card" not in {column["name"] for column in sa.inspect(bind).get_columns("models")}:
        op.add_column("models", sa.Column("rate_card", sa.JSON, nullable=True))

    managed = bind.execute(
        sa.text(
            "SELECT id, CAST(pricing AS TEXT) FROM models"
            " WHERE managed_by = :managed_by AND pricing IS NOT NULL"
        ),
        {"managed_by": MANAGED_BY_PIPELINE},
    )
    rewritten = []
    for endpoint_id, text in managed:
        pricing = decimal_json_value(text)
        if not isinstance(pricing, dict):
            continue
        converted = with_number_prices(pricing)
        if converted != pricing:
            rewritten.append({"endpoint_id": endpoint_id, "pricing": json_text(converted)})
    if not rewritten:
        return
    new_pricing = "CAST(:pricing AS JSON)" if bind.dialect.name == "postgresql" else ":pricing"
    bind.execute(
        sa.text(
            f"UPDATE models SET pricing = {new_pricing} WHERE id = :endpoint_id AND managed_by = :managed_by"
        ),
        [row | {"managed_by": MANAGED_BY_PIPELINE} for row in rewritten],
    )
