"""All of the parser's SQL: loading packets, writing record sets, and the hand-off to actions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from hookbay_common.correlation import DuePacket
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


@dataclass(frozen=True, slots=True)
class Finished:
    """One packet's outcome, as the batch commit writes it."""

    packet: PacketToParse
    status: PacketStatus
    parsed_format: str | None
    records: Sequence[dict[str, Any]]
    error: str | None


_packets = Packet.__table__
_records = Record.__table__
# One statement for a whole batch's outcomes (executemany): the values differ per packet, the SQL not.
_finish_one = (
    update(_packets)
    .where(_packets.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        parsed_format=bindparam("b_format"),
        record_count=bindparam("b_count"),
        last_error=bindparam("b_error"),
        actions_state=bindparam("b_actions_state"),
        actions_lease_until=bindparam("b_actions_due"),
    )
)


def finish_packets(conn: Connection, batch: Sequence[Finished], now: datetime) -> set[uuid.UUID]:
    """Write the outcomes and record sets of a batch in the caller's transaction, a few statements
    for the whole batch rather than a few per packet (the cost here is client CPU per statement).

    The first statement takes the packets still 'received' (row locks on PostgreSQL, the write lock
    on SQLite) and stamps them; a packet another delivery already finished is left alone, so a
    second delivery is a no-op. A record set is replaced, never added to (unique packet+ordinal).
    Returns the ids this call finished.
    """
    if not batch:
        return set()
    taken = conn.execute(
        update(_packets)
        .where(_packets.c.id.in_([f.packet.id for f in batch]), _packets.c.status == PacketStatus.RECEIVED)
        .values(parsed_at=now, lease_owner=None)
        .returning(_packets.c.id, _packets.c.record_count)
    ).all()
    mine = {row.id for row in taken}
    if not mine:
        return mine
    rows = []
    records: list[dict[str, Any]] = []
    for f in batch:
        if f.packet.id not in mine:
            continue
        hand_off = f.status == PacketStatus.PARSED and f.packet.has_actions and bool(f.records)
        rows.append(
            {
                "b_id": f.packet.id,
                "b_status": f.status,
                "b_format": f.parsed_format,
                "b_count": len(f.records),
                "b_error": f.error[:4000] if f.error else None,
                "b_actions_state": ActionsState.PENDING if hand_off else None,
                "b_actions_due": now if hand_off else None,
            }
        )
        records.extend(f.records)
    conn.execute(_finish_one, rows)
    # Only a re-parsed packet has an old record set to replace; a first parse skips the DELETE.
    stale = [row.id for row in taken if row.record_count]
    if stale:
        conn.execute(delete(_records).where(_records.c.packet_id.in_(stale)))
    if records:
        conn.execute(insert(_records), records)
    return mine


def claim_actions_due(conn: Connection, now: datetime, lease_until: datetime, limit: int) -> list[DuePacket]:
    """Lease parsed packets whose records the actions service has yet to take (SKIP LOCKED on PostgreSQL),
    with the origin each carries along."""
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
        .returning(Packet.id, Packet.request_id, Packet.traceparent)
    )
    return [DuePacket(row.id, row.request_id, row.traceparent) for row in result]


def release_actions(conn: Connection, retry_at: dict[uuid.UUID, datetime]) -> None:
    for packet_id, when in retry_at.items():
        conn.execute(
            update(Packet)
            .where(Packet.id == packet_id, Packet.actions_state == ActionsState.PENDING)
            .values(actions_lease_until=when)
        )
