"""door: guid overlap, dedup keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("packets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dedup_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("receipts", sa.Integer(), server_default="1", nullable=False))
        batch_op.create_unique_constraint("uq_packets_source_dedup", ["source_id", "dedup_key"])

    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_guid", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("previous_guid_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_sources_previous_guid"), ["previous_guid"])


def downgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_sources_previous_guid"), type_="unique")
        batch_op.drop_column("previous_guid_expires_at")
        batch_op.drop_column("previous_guid")

    with op.batch_alter_table("packets", schema=None) as batch_op:
        batch_op.drop_constraint("uq_packets_source_dedup", type_="unique")
        batch_op.drop_column("receipts")
        batch_op.drop_column("dedup_key")
