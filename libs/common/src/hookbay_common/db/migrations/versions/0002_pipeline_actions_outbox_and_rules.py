"""pipeline: actions outbox and rules

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("action_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_id", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_action_runs_due", ["status", "next_attempt_at"], unique=False)

    with op.batch_alter_table("packets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parsed_format", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("record_count", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("actions_state", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("actions_lease_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_packets_actions_outbox",
            ["actions_lease_until"],
            unique=False,
            postgresql_where=sa.text("actions_state = 'pending'"),
            sqlite_where=sa.text("actions_state = 'pending'"),
        )

    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actions", sa.JSON(), server_default=sa.text("'[]'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("actions")

    with op.batch_alter_table("packets", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_packets_actions_outbox",
            postgresql_where=sa.text("actions_state = 'pending'"),
            sqlite_where=sa.text("actions_state = 'pending'"),
        )
        batch_op.drop_column("actions_lease_until")
        batch_op.drop_column("actions_state")
        batch_op.drop_column("record_count")
        batch_op.drop_column("parsed_format")

    with op.batch_alter_table("action_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_action_runs_due")
        batch_op.drop_column("message_id")
