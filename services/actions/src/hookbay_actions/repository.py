"""All of the actions service's SQL: creating runs once per (rule, record), claiming and finishing them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from hookbay_common.db.engine import dialect_insert
from hookbay_common.db.models import ActionRun, ActionRunStatus, ActionsState, Packet, Record, Source


@dataclass(frozen=True, slots=True)
class PacketRecords:
    source_id: uuid.UUID
    source_name: str
    rules: list[dict[str, Any]]
    records: list[tuple[str, int, dict[str, Any]]]  # (type, ordinal, data)


def packet_records(conn: Connection, packet_id: uuid.UUID) -> PacketRecords | None:
    head = conn.execute(
        select(Packet.source_id, Source.name, Source.actions)
        .join(Source, Source.id == Packet.source_id)
        .where(Packet.id == packet_id)
    ).one_or_none()
    if head is None:
        return None
    records = conn.execute(
        select(Record.type, Record.ordinal, Record.data)
        .where(Record.packet_id == packet_id)
        .order_by(Record.ordinal)
    ).all()
    return PacketRecords(head.source_id, head.name, list(head.actions or []), [tuple(r) for r in records])


def create_runs(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert runs, skipping any (source, rule, packet, ordinal) that already has one: the unique key,
    not a prior check, is what makes a redelivered packet or a re-parse run nothing twice."""
    if not rows:
        return
    statement = dialect_insert(conn, ActionRun).on_conflict_do_nothing(
        index_elements=["source_id", "rule", "packet_id", "record_ordinal"]
    )
    conn.execute(statement, list(rows))


def mark_actions_done(conn: Connection, packet_id: uuid.UUID) -> None:
    conn.execute(
        update(Packet)
        .where(Packet.id == packet_id)
        .values(actions_state=ActionsState.DONE, actions_lease_until=None)
    )


def claim_runs(
    conn: Connection, now: datetime, lease_until: datetime, limit: int, packet_id: uuid.UUID | None = None
) -> list[ActionRun]:
    """Take due runs (pending, or failed and past their backoff) and mark them running until ``lease_until``."""
    due = (
        select(ActionRun.id)
        .where(
            ActionRun.status.in_([ActionRunStatus.PENDING, ActionRunStatus.FAILED]),
            ActionRun.next_attempt_at <= now,
        )
        .order_by(ActionRun.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if packet_id is not None:
        due = due.where(ActionRun.packet_id == packet_id)
    rows = conn.execute(
        update(ActionRun)
        .where(
            ActionRun.id.in_(due.scalar_subquery()),
            ActionRun.status.in_([ActionRunStatus.PENDING, ActionRunStatus.FAILED]),
        )
        .values(
            status=ActionRunStatus.RUNNING,
            next_attempt_at=lease_until,
            attempts=ActionRun.attempts + 1,
            updated_at=now,
        )
        .returning(*ActionRun.__table__.c)
    ).all()
    return [ActionRun(**row._mapping) for row in rows]


def record_data(conn: Connection, packet_id: uuid.UUID, ordinal: int) -> tuple[str, dict[str, Any]] | None:
    row = conn.execute(
        select(Record.type, Record.data).where(Record.packet_id == packet_id, Record.ordinal == ordinal)
    ).one_or_none()
    return (row.type, row.data) if row is not None else None


def source_rules(conn: Connection, source_id: uuid.UUID) -> list[dict[str, Any]]:
    return list(conn.execute(select(Source.actions).where(Source.id == source_id)).scalar_one_or_none() or [])


def finish_run(
    conn: Connection,
    run_id: uuid.UUID,
    *,
    status: ActionRunStatus,
    error: str | None,
    next_attempt_at: datetime | None,
    now: datetime,
) -> None:
    conn.execute(
        update(ActionRun)
        .where(ActionRun.id == run_id, ActionRun.status == ActionRunStatus.RUNNING)
        .values(
            status=status,
            last_error=error[:2000] if error else None,
            next_attempt_at=next_attempt_at,
            updated_at=now,
        )
    )


def interrupted_runs(conn: Connection, now: datetime, limit: int = 100) -> list[Any]:
    """Runs still 'running' after their lease: their process died mid-run."""
    return list(
        conn.execute(
            select(ActionRun.id, ActionRun.rule, ActionRun.action_type)
            .where(ActionRun.status == ActionRunStatus.RUNNING, ActionRun.next_attempt_at <= now)
            .limit(limit)
        ).all()
    )


def settle_interrupted(
    conn: Connection, run_id: uuid.UUID, status: ActionRunStatus, error: str | None, now: datetime
) -> bool:
    result = conn.execute(
        update(ActionRun)
        .where(
            ActionRun.id == run_id,
            ActionRun.status == ActionRunStatus.RUNNING,
            ActionRun.next_attempt_at <= now,
        )
        .values(status=status, last_error=error, next_attempt_at=None, updated_at=now)
    )
    return result.rowcount == 1
