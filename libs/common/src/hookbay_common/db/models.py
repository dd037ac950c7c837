"""The schema every service shares. Changes go through an Alembic migration in ``migrations/``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
JsonData = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both backends (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class SourceStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class PacketStatus(StrEnum):
    RECEIVED = "received"
    PARSED = "parsed"
    FAILED = "failed"
    IGNORED = "ignored"
    # Refused at the door (bad signature) but kept because the source asked for a quarantine.
    REJECTED = "rejected"


class ActionsState(StrEnum):
    """Where a parsed packet stands with the actions service (the parser's outbox)."""

    PENDING = "pending"
    DONE = "done"


class ActionRunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    client: Mapped[str] = mapped_column(String(200), default="", server_default="")
    name: Mapped[str] = mapped_column(String(200), unique=True)
    guid: Mapped[str] = mapped_column(String(36), unique=True)
    # After a rotation with overlap the old GUID keeps working until previous_guid_expires_at.
    previous_guid: Mapped[str | None] = mapped_column(String(36), unique=True, nullable=True)
    previous_guid_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=SourceStatus.ACTIVE)
    format: Mapped[str] = mapped_column(String(32), default="auto", server_default="auto")
    max_body: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    settings: Mapped[dict] = mapped_column(JsonData, default=dict)
    # Action rules as validated by hookbay_common.rules (a list of rule objects).
    actions: Mapped[list] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Packet(Base):
    """A received packet. The row is also the outbox entry the dispatcher drains (status + lease)."""

    __tablename__ = "packets"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("sources.id"))
    status: Mapped[str] = mapped_column(String(16), default=PacketStatus.RECEIVED)
    method: Mapped[str] = mapped_column(String(16))
    query_string: Mapped[str] = mapped_column(Text, default="")
    headers: Mapped[list] = mapped_column(JSON, default=list)  # [[name, value], ...], names lower-cased
    content_type: Mapped[str] = mapped_column(Text, default="")
    client_addr: Mapped[str] = mapped_column(String(64), default="")
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # The sender's delivery id (hashed); unique per source, so a retried delivery is stored once.
    dedup_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    receipts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The raw bytes live here from receipt until the archiver has copied them to the raw store,
    # so that one commit makes a packet durable.
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    raw_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Outbox lease: a packet is due for dispatch when status is 'received' and lease_until has passed.
    lease_until: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    parsed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    parsed_format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    record_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The parser's outbox towards the actions service: set in the transaction that writes the
    # records, cleared by the actions service in the transaction that creates the action runs.
    actions_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    actions_lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The receiving request's id and trace context: the dispatcher hands packets on later and in
    # batches, so the parser and actions service find them here to log and trace the packet.
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    traceparent: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        UniqueConstraint("source_id", "dedup_key", name="uq_packets_source_dedup"),
        Index("ix_packets_source_received", "source_id", "received_at"),
        Index("ix_packets_status_received", "status", "received_at"),
        Index(
            "ix_packets_outbox",
            "lease_until",
            postgresql_where=text("status = 'received'"),
            sqlite_where=text("status = 'received'"),
        ),
        Index(
            "ix_packets_actions_outbox",
            "actions_lease_until",
            postgresql_where=text("actions_state = 'pending'"),
            sqlite_where=text("actions_state = 'pending'"),
        ),
        Index(
            "ix_packets_unarchived",
            "received_at",
            postgresql_where=text("raw_key IS NULL"),
            sqlite_where=text("raw_key IS NULL"),
        ),
    )


class Record(Base):
    """A staging record: one row of a parsed packet."""

    __tablename__ = "records"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    packet_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("packets.id"))
    source_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("sources.id"))
    type: Mapped[str] = mapped_column(Text)
    ordinal: Mapped[int] = mapped_column(Integer)
    parent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    data: Mapped[dict] = mapped_column(JsonData)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        # One record set per packet however often it is delivered to the parser.
        UniqueConstraint("packet_id", "ordinal", name="uq_records_packet_ordinal"),
        Index("ix_records_source_created", "source_id", "created_at"),
    )


class ActionRun(Base):
    """One execution of an action rule for one record; unique per (rule, record)."""

    __tablename__ = "action_runs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    source_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("sources.id"))
    rule: Mapped[str] = mapped_column(String(200))
    action_type: Mapped[str] = mapped_column(String(32))
    # A record is named by (packet, ordinal), which a re-parse keeps stable, so a re-parse that replaces
    # the record set can never make a rule run twice.
    packet_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("packets.id"))
    record_ordinal: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=ActionRunStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Due when status is pending/failed and next_attempt_at has passed; while running, the time the
    # claim expires.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint(
            "source_id", "rule", "packet_id", "record_ordinal", name="uq_action_runs_rule_record"
        ),
        Index("ix_action_runs_source_created", "source_id", "created_at"),
        Index("ix_action_runs_due", "status", "next_attempt_at"),
    )
