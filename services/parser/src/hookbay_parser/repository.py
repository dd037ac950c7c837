"""All of the parser's SQL: loading packets, writing record sets, and the hand-off to actions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from hookbay_common.db.models import ActionsState, Packet, PacketStatus, Record, Source


@dataclass(frozen=True, slots=True)
class PacketToParse:
    id: uuid.UUID
    source_id: uuid.UUID
    source_name: str
    status: str
    content_type: str
    format: str
    has_actions: bool
    headers: list
    body: bytes | None  # inline until archived
    raw_key: str | None


def packets_to_parse(conn: Connection, packet_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, PacketToParse]:
    """Everything parsing needs, for a whole batch in one query (bodies included while inline)."""
    if not packet_ids:
        return {}
    rows = conn.execute(
        select(
            Packet.id,
            Packet.source_id,
            Packet.status,
            Packet.content_type,
            Packet.headers,
            Packet.body,
            Packet.raw_key,
            Source.name,
            Source.format,
            Source.actions,
        )
        .join(Source, Source.id == Packet.source_id)
        .where(Packet.id.in_(packet_ids))
    ).all()
    return {
        row.id: PacketToParse(
            id=row.id,
            source_id=row.source_id,
            source_name=row.name,
            status=row.status,
            content_type=row.content_type,
            format=row.format,
            has_actions=bool(row.actions),
            headers=list(row.headers or []),
            body=row.body,
            raw_key=row.raw_key,
        )
        for row in rows
    }


def source_for_preview(conn: Connection, name: str) -> tuple[uuid.UUID, str] | None:
    row = conn.execute(select(Source.id, Source.format).where(Source.name == name)).one_or_none()
    return (row.id, row.format) if row is not None else None


def finish_packet(
    conn: Connection,
    packet: PacketToParse,
    *,
    status: PacketStatus,
    parsed_format: str | None,
    records: Sequence[dict[str, Any]],
    error: str | None,
    now: datetime,
) -> bool:
    """Write the packet's outcome and its record set in the caller's transaction.

    The status guard makes a second delivery of the same packet a no-op: only a packet still
    'received' is finished, and the record set is replaced, never added to (unique packet+ordinal).
    Returns False when the packet was no longer waiting to be parsed.
    """
    hand_off = status == PacketStatus.PARSED and packet.has_actions and bool(records)
    result = conn.execute(
        update(Packet)
        .where(Packet.id == packet.id, Packet.status == PacketStatus.RECEIVED)
        .values(
            status=status,
            parsed_at=now,
            parsed_format=parsed_format,
            record_count=len(records),
            last_error=error[:4000] if error else None,
            lease_owner=None,
            actions_state=ActionsState.PENDING if hand_off else None,
            actions_lease_until=now if hand_off else None,
        )
    )
    if result.rowcount != 1:
        return False
    conn.execute(delete(Record).where(Record.packet_id == packet.id))
    if records:
        conn.execute(insert(Record), list(records))
    return True


def claim_actions_due(conn: Connection, now: datetime, lease_until: datetime, limit: int) -> list[uuid.UUID]:
    """Lease parsed packets whose records the actions service has yet to take (SKIP LOCKED on PostgreSQL)."""
    due = (
        select(Packet.id)
        .where(Packet.actions_state == ActionsState.PENDING, Packet.actions_lease_until <= now)
        .order_by(Packet.actions_lease_until)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = conn.execute(
        update(Packet)
        .where(Packet.id.in_(due.scalar_subquery()), Packet.actions_state == ActionsState.PENDING)
        .values(actions_lease_until=lease_until)
        .returning(Packet.id)
    )
    return [row.id for row in result]


def release_actions(conn: Connection, retry_at: dict[uuid.UUID, datetime]) -> None:
    for packet_id, when in retry_at.items():
        conn.execute(
            update(Packet)
            .where(Packet.id == packet_id, Packet.actions_state == ActionsState.PENDING)
            .values(actions_lease_until=when)
        )
