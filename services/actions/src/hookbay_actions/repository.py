"""All of the actions service's SQL: creating runs once per (rule, record), claiming and finishing them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, tuple_, update

from hookbay_common.db.engine import dialect_insert
from hookbay_common.db.models import ActionRun, ActionRunStatus, ActionsState, Packet, Record, Source


@dataclass(frozen=True, slots=True)
class PacketRecords:
    packet_id: uuid.UUID
    source_id: uuid.UUID
    source_name: str
    rules: list[dict[str, Any]]
    records: list[tuple[str, int, dict[str, Any]]]  # (type, ordinal, data)


def packets_records(conn: Connection, packet_ids: Sequence[uuid.UUID]) -> list[PacketRecords]:
    """The packets, their sources' rules and their records: two queries for a whole batch."""
    if not packet_ids:
        return []
    heads = conn.execute(
        select(Packet.id, Packet.source_id, Source.name, Source.actions)
        .join(Source, Source.id == Packet.source_id)
        .where(Packet.id.in_(packet_ids))
    ).all()
    records: dict[uuid.UUID, list[tuple[str, int, dict[str, Any]]]] = {h.id: [] for h in heads}
    for row in conn.execute(
        select(Record.packet_id, Record.type, Record.ordinal, Record.data)
        .where(Record.packet_id.in_(list(records)))
        .order_by(Record.packet_id, Record.ordinal)
    ):
        records[row.packet_id].append((row.type, row.ordinal, row.data))
    return [PacketRecords(h.id, h.source_id, h.name, list(h.actions or []), records[h.id]) for h in heads]


def create_runs(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[ActionRun]:
    """Insert runs, skipping any (source, rule, packet, ordinal) that already has one: the unique key,
    not a prior check, is what makes a redelivered packet or a re-parse run nothing twice.
    Returns the runs this call created."""
    if not rows:
        return []
    statement = (
        dialect_insert(conn, ActionRun)
        .on_conflict_do_nothing(index_elements=["source_id", "rule", "packet_id", "record_ordinal"])
        .returning(*ActionRun.__table__.c)
    )
    return [ActionRun(**row._mapping) for row in conn.execute(statement, list(rows))]


def mark_actions_done(conn: Connection, packet_ids: Sequence[uuid.UUID]) -> None:
    conn.execute(
        update(Packet.__table__)
        .where(Packet.__table__.c.id.in_(packet_ids))
        .values(actions_state=ActionsState.DONE, actions_lease_until=None)
    )


def claim_runs(
    conn: Connection,
    now: datetime,
    lease_until: datetime,
    limit: int,
    packet_ids: Sequence[uuid.UUID] | None = None,
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
    if packet_ids is not None:
        due = due.where(ActionRun.packet_id.in_(packet_ids))
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


def runs_context(
    conn: Connection, runs: Sequence[ActionRun]
) -> tuple[dict[tuple[uuid.UUID, int], tuple[str, dict[str, Any]]], dict[uuid.UUID, list[dict[str, Any]]]]:
    """What executing these runs needs, in two queries: their records by (packet, ordinal) and
    their sources' current rules."""
    if not runs:
        return {}, {}
    keys = {(run.packet_id, run.record_ordinal) for run in runs}
    records = {
        (row.packet_id, row.ordinal): (row.type, row.data)
        for row in conn.execute(
            select(Record.packet_id, Record.ordinal, Record.type, Record.data).where(
                tuple_(Record.packet_id, Record.ordinal).in_(list(keys))
            )
        )
    }
    rules = {
        row.id: list(row.actions or [])
        for row in conn.execute(
            select(Source.id, Source.actions).where(Source.id.in_({run.source_id for run in runs}))
        )
    }
    return records, rules


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


def count_dead_runs(conn: Connection) -> int:
    """For the dead-runs gauge (served by the ix_action_runs_due index on status)."""
    return int(
        conn.execute(select(func.count()).where(ActionRun.status == ActionRunStatus.DEAD)).scalar() or 0
    )
