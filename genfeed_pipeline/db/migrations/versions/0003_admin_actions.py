"""`model_admin_actions`: who enabled, disabled, undid, accepted or applied what, when and why.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from genfeed_pipeline.db.types import UtcDateTime

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("model_admin_actions"):
        op.create_table(
            "model_admin_actions",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("endpoint_id", sa.String(512), nullable=False),
            sa.Column("action", sa.String(32), nullable=False),
            sa.Column("actor", sa.String(256), nullable=False),
            sa.Column("reason", sa.Text, nullable=True),
            sa.Column("at", UtcDateTime, nullable=False),
            sa.Column("before_enabled", sa.Boolean, nullable=True),
            sa.Column("after_enabled", sa.Boolean, nullable=True),
        )
    existing_indexes = {
        index["name"] for index in sa.inspect(op.get_bind()).get_indexes("model_admin_actions")
    }
    if "ix_model_admin_actions_endpoint" not in existing_indexes:
        op.create_index("ix_model_admin_actions_endpoint", "model_admin_actions", ["endpoint_id", "at"])
