"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client", sa.String(length=200), server_default="", nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("guid", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("format", sa.String(length=32), server_default="auto", nullable=False),
        sa.Column("max_body", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "settings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("guid", name=op.f("uq_sources_guid")),
        sa.UniqueConstraint("name", name=op.f("uq_sources_name")),
    )
    op.create_table(
        "packets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("query_string", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("client_addr", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("raw_key", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("parsed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name=op.f("fk_packets_source_id_sources")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_packets")),
    )
    with op.batch_alter_table("packets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_packets_outbox",
            ["lease_until"],
            unique=False,
            postgresql_where=sa.text("status = 'received'"),
            sqlite_where=sa.text("status = 'received'"),
        )
        batch_op.create_index("ix_packets_source_received", ["source_id", "received_at"], unique=False)
        batch_op.create_index("ix_packets_status_received", ["status", "received_at"], unique=False)
        batch_op.create_index(
            "ix_packets_unarchived",
            ["received_at"],
            unique=False,
            postgresql_where=sa.text("raw_key IS NULL"),
            sqlite_where=sa.text("raw_key IS NULL"),
        )

    op.create_table(
        "action_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("action_type", sa.String(length=32), nullable=False),
        sa.Column("packet_id", sa.Uuid(), nullable=False),
        sa.Column("record_ordinal", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["packet_id"], ["packets.id"], name=op.f("fk_action_runs_packet_id_packets")),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name=op.f("fk_action_runs_source_id_sources")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_runs")),
        sa.UniqueConstraint(
            "source_id", "rule", "packet_id", "record_ordinal", name="uq_action_runs_rule_record"
        ),
    )
    with op.batch_alter_table("action_runs", schema=None) as batch_op:
        batch_op.create_index("ix_action_runs_source_created", ["source_id", "created_at"], unique=False)

    op.create_table(
        "records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("packet_id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("parent", sa.Integer(), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["packet_id"], ["packets.id"], name=op.f("fk_records_packet_id_packets")),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name=op.f("fk_records_source_id_sources")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records")),
        sa.UniqueConstraint("packet_id", "ordinal", name="uq_records_packet_ordinal"),
    )
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.create_index("ix_records_source_created", ["source_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index("ix_records_source_created")

    op.drop_table("records")
    with op.batch_alter_table("action_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_action_runs_source_created")

    op.drop_table("action_runs")
    with op.batch_alter_table("packets", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_packets_unarchived",
            postgresql_where=sa.text("raw_key IS NULL"),
            sqlite_where=sa.text("raw_key IS NULL"),
        )
        batch_op.drop_index("ix_packets_status_received")
        batch_op.drop_index("ix_packets_source_received")
        batch_op.drop_index(
            "ix_packets_outbox",
            postgresql_where=sa.text("status = 'received'"),
            sqlite_where=sa.text("status = 'received'"),
        )

    op.drop_table("packets")
    op.drop_table("sources")
