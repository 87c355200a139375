"""`models.policy_enabled` and `models.policy_reason`: the enable policy's verdict at the last sync.

The sync writes them so that no reader (accept, undo, the report, the command line) derives the policy
again. Both are nullable: a row the sync has not written since this revision has neither.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("models")}
    if "policy_enabled" not in present:
        op.add_column("models", sa.Column("policy_enabled", sa.Boolean, nullable=True))
    if "policy_reason" not in present:
        op.add_column("models", sa.Column("policy_reason", sa.Text, nullable=True))
