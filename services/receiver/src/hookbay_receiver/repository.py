"""All of the receiver's SQL: sources, the packet outbox, archiving, and admin listings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.types.json import Json, set_json_dumps
from sqlalchemy import Connection, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hookbay_common.correlation import DuePacket
from hookbay_common.db.engine import dialect_insert
from hookbay_common.db.models import ActionRun, ActionRunStatus, Packet, PacketStatus, Record, Source, utcnow
from hookbay_common.errors import AlreadyExists, InvalidArgument, NotFound

# ---- sources -------------------------------------------------------------------------------------


def source_by_guid(session: Session, guid: str) -> Source | None:
    """The source whose current GUID this is, or whose previous one (still within its overlap)."""
    return session.execute(
        select(Source).where((Source.guid == guid) | (Source.previous_guid == guid)).limit(1)
    ).scalar_one_or_none()


def source_by(
    session: Session, *, id: uuid.UUID | None = None, name: str | None = None, guid: str | None = None
) -> Source:
    if id is not None:
        source = session.get(Source, id)
        label = f"id {id}"
    elif name is not None:
        source = session.execute(select(Source).where(Source.name == name)).scalar_one_or_none()
        label = f"name {name!r}"
    elif guid is not None:
        source = source_by_guid(session, guid)
        label = "that GUID"
    else:
        raise NotFound("no source given")
    if source is None:
        raise NotFound(f"no source with {label}")
    return source


def list_sources(session: Session, client: str = "") -> Sequence[Source]:
    query = select(Source).order_by(Source.name)
    if client:
        query = query.where(Source.client == client)
    return session.execute(query).scalars().all()


def add_source(session: Session, source: Source) -> Source:
    session.add(source)
    try:
        session.flush()
    except IntegrityError:
        raise AlreadyExists(f"a source named {source.name!r} already exists") from None
    return source


def flush_source(session: Session, source: Source) -> Source:
    try:
        session.flush()
    except IntegrityError:
        raise AlreadyExists(f"a source named {source.name!r} already exists") from None
    return source


def source_names(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    return dict(session.execute(select(Source.id, Source.name).where(Source.id.in_(ids))).tuples().all())


# ---- packets: receipt ----------------------------------------------------------------------------


Receipt = dict[str, Any]
DedupKey = tuple[uuid.UUID, str]


def insert_packets(conn: Connection, rows: list[Receipt]) -> list[uuid.UUID]:
    """Insert a group of packets in the caller's transaction; return each row's packet id.

    A row with a dedup key that is already stored (or that appears earlier in the same group)
    inserts nothing: it counts one more receipt on the original and gets the original's id. The
    unique (source_id, dedup_key) constraint decides, so concurrent receivers cannot both insert.
    This is the SQLAlchemy version (SQLite); :func:`insert_packets_pg` is the same on psycopg's
    async connection, which the receiver uses on PostgreSQL.
    """
    plain, firsts, repeats = _split_by_dedup(rows)
    if plain:
        conn.execute(insert(Packet), plain)
    stored: dict[DedupKey, uuid.UUID] = {}
    if firsts:
        upsert = dialect_insert(conn, Packet).on_conflict_do_update(
            index_elements=[Packet.source_id, Packet.dedup_key], set_={"receipts": Packet.receipts + 1}
        )
        ids = (
            conn.execute(upsert.returning(Packet.id, sort_by_parameter_order=True), list(firsts.values()))
            .scalars()
            .all()
        )
        stored = dict(zip(firsts, ids, strict=True))
    for key, extra in repeats.items():
        conn.execute(update(Packet).where(Packet.id == stored[key]).values(receipts=Packet.receipts + extra))
    return _ids_of(rows, stored)


# The receipt columns, in the order the PostgreSQL statements bind them, with their types for binary
# COPY (which sends values in the columns' own binary formats); the other columns keep their defaults.
_RECEIPT_COLUMNS = (
    ("id", "uuid"), ("source_id", "uuid"), ("status", "text"), ("method", "text"), ("query_string", "text"),
    ("headers", "json"), ("content_type", "text"), ("client_addr", "text"), ("size", "int8"),
    ("sha256", "text"), ("dedup_key", "text"), ("body", "bytea"), ("received_at", "timestamptz"),
    ("lease_until", "timestamptz"), ("last_error", "text"), ("request_id", "text"), ("traceparent", "text"),
)  # fmt: skip
_NAMES = tuple(name for name, _ in _RECEIPT_COLUMNS)
_TYPES = [type_ for _, type_ in _RECEIPT_COLUMNS]
# Built from the constant column names above; no input reaches these texts.
_COPY_RECEIPTS = f"COPY packets ({', '.join(_NAMES)}) FROM STDIN (FORMAT BINARY)"
_UPSERT_RECEIPTS = (
    f"INSERT INTO packets ({', '.join(_NAMES)}) VALUES ({', '.join(['%s'] * len(_NAMES))})"  # noqa: S608
    " ON CONFLICT (source_id, dedup_key) DO UPDATE SET receipts = packets.receipts + 1 RETURNING id"
)
_COUNT_REPEATS = "UPDATE packets SET receipts = receipts + %s WHERE id = %s"


def configure_pg(conn: AsyncConnection) -> None:
    """Adapt JSON with orjson on this connection (the receiver's packet headers)."""
    set_json_dumps(orjson.dumps, context=conn)


async def insert_packets_pg(conn: AsyncConnection, rows: list[Receipt]) -> list[uuid.UUID]:
    """:func:`insert_packets` on PostgreSQL, in the caller's transaction on an async psycopg
    connection made ready by :func:`configure_pg`. Packets without a dedup key (most of them) go
    in by binary COPY: a third of the client CPU of a pipelined executemany, and a sixth of
    SQLAlchemy's per-row compilation and type processing."""
    plain, firsts, repeats = _split_by_dedup(rows)
    stored: dict[DedupKey, uuid.UUID] = {}
    async with conn.cursor() as cur:
        if plain:
            async with cur.copy(_COPY_RECEIPTS) as copy:
                copy.set_types(_TYPES)
                for row in plain:
                    await copy.write_row([row[name] for name in _NAMES])
        if firsts:
            await cur.executemany(
                _UPSERT_RECEIPTS,
                [
                    [Json(row[name]) if name == "headers" else row[name] for name in _NAMES]
                    for row in firsts.values()
                ],
                returning=True,
            )
            ids: list[uuid.UUID] = []
            while True:
                ids.append((await cur.fetchone())[0])  # type: ignore[index]
                if not cur.nextset():
                    break
            stored = dict(zip(firsts, ids, strict=True))
        if repeats:
            await cur.executemany(_COUNT_REPEATS, [(extra, stored[key]) for key, extra in repeats.items()])
    return _ids_of(rows, stored)


def _split_by_dedup(
    rows: list[Receipt],
) -> tuple[list[Receipt], dict[DedupKey, Receipt], dict[DedupKey, int]]:
    """Rows without a dedup key; the first row per key; how many more rows repeat each key."""
    plain: list[Receipt] = []
    firsts: dict[DedupKey, Receipt] = {}
    repeats: dict[DedupKey, int] = {}
    for row in rows:
        if row["dedup_key"] is None:
            plain.append(row)
            continue
        key = (row["source_id"], row["dedup_key"])
        if key in firsts:
            repeats[key] = repeats.get(key, 0) + 1
        else:
            firsts[key] = row
    return plain, firsts, repeats


def _ids_of(rows: list[Receipt], stored: dict[DedupKey, uuid.UUID]) -> list[uuid.UUID]:
    return [
        row["id"] if row["dedup_key"] is None else stored[(row["source_id"], row["dedup_key"])]
        for row in rows
    ]


async def ping_pg(conn: AsyncConnection) -> None:
    await conn.execute("SELECT 1")


# ---- packets: the outbox -------------------------------------------------------------------------


def claim_due_packets(
    conn: Connection, owner: str, now: datetime, lease_until: datetime, limit: int
) -> list[DuePacket]:
    """Lease up to ``limit`` due packets to ``owner``. SKIP LOCKED lets replicas claim side by side on
    PostgreSQL without waiting on or double-claiming each other's rows; SQLite has one writer anyway."""
    due = (
        select(Packet.id)
        .where(Packet.status == PacketStatus.RECEIVED, Packet.lease_until <= now)
        .order_by(Packet.lease_until)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = conn.execute(
        update(Packet)
        .where(Packet.id.in_(due.scalar_subquery()), Packet.status == PacketStatus.RECEIVED)
        .values(lease_owner=owner, lease_until=lease_until, attempts=Packet.attempts + 1)
        .returning(Packet.id, Packet.request_id, Packet.traceparent),
    )
    return [DuePacket(row.id, row.request_id, row.traceparent) for row in result]


def release_packets(
    conn: Connection, owner: str, ids: Sequence[uuid.UUID], retry_at: datetime, error: str
) -> None:
    """Give claimed packets back for a later attempt (only if still ours and still undispatched)."""
    conn.execute(
        update(Packet)
        .where(Packet.id.in_(ids), Packet.lease_owner == owner, Packet.status == PacketStatus.RECEIVED)
        .values(lease_until=retry_at, lease_owner=None, last_error=error[:2000])
    )


def most_attempts(conn: Connection, ids: Sequence[uuid.UUID]) -> int:
    return int(conn.execute(select(func.max(Packet.attempts)).where(Packet.id.in_(ids))).scalar() or 1)


def outbox_backlog(conn: Connection) -> tuple[int, datetime | None]:
    """How many packets wait for the parser, and the oldest one's receipt time: one aggregate over
    the (status, received_at) index, for the backlog gauges."""
    count, oldest = conn.execute(
        select(func.count(), func.min(Packet.received_at)).where(Packet.status == PacketStatus.RECEIVED)
    ).one()
    return int(count), oldest


# ---- packets: archiving --------------------------------------------------------------------------


def archivable_packets(conn: Connection, received_before: datetime, limit: int) -> list[Any]:
    """Inline bodies ready to move: the parser is done with them, or they have waited long enough."""
    return list(
        conn.execute(
            select(Packet.id, Packet.source_id, Packet.received_at, Packet.body)
            .where(Packet.raw_key.is_(None), Packet.body.is_not(None))
            .where((Packet.status != PacketStatus.RECEIVED) | (Packet.received_at <= received_before))
            .order_by(Packet.received_at)
            .limit(limit)
        ).all()
    )


def mark_archived(conn: Connection, keys: dict[uuid.UUID, str]) -> None:
    """Record where each body went and drop the inline copy, in the caller's one transaction."""
    now = utcnow()
    for packet_id, raw_key in keys.items():
        conn.execute(
            update(Packet)
            .where(Packet.id == packet_id, Packet.raw_key.is_(None))
            .values(raw_key=raw_key, body=None, archived_at=now)
        )


# ---- packets: parsing again ---------------------------------------------------------------------


def requeue_packets(
    session: Session,
    *,
    ids: list[uuid.UUID],
    source_id: uuid.UUID | None,
    status: str | None,
    now: datetime,
) -> int:
    """Make packets due for the parser again; the parser replaces their record set. Rejected
    packets (failed verification, kept only for inspection) are never sent to the parser."""
    query = (
        update(Packet)
        .where(Packet.status != PacketStatus.REJECTED)
        .values(status=PacketStatus.RECEIVED, lease_until=now, lease_owner=None, attempts=0, last_error=None)
    )
    if ids:
        query = query.where(Packet.id.in_(ids))
    if source_id is not None:
        query = query.where(Packet.source_id == source_id)
    if status:
        query = query.where(Packet.status == status)
    return session.execute(query).rowcount


def retry_action_run(session: Session, run_id: uuid.UUID, now: datetime) -> ActionRun:
    run = session.get(ActionRun, run_id)
    if run is None:
        raise NotFound(f"no action run with id {run_id}")
    if run.status not in (ActionRunStatus.DEAD, ActionRunStatus.FAILED):
        raise InvalidArgument(f"action run {run_id} is {run.status}; only dead or failed runs are retried")
    run.status = ActionRunStatus.PENDING
    run.attempts = 0
    run.next_attempt_at = now
    session.flush()
    return run


# ---- admin listings ------------------------------------------------------------------------------


def list_packets(
    session: Session,
    *,
    source_id: uuid.UUID | None,
    status: str | None,
    after: datetime | None,
    before: datetime | None,
    cursor: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Packet]:
    """Newest first, keyset-paginated on (received_at, id)."""
    query = select(Packet).order_by(Packet.received_at.desc(), Packet.id.desc()).limit(limit)
    if source_id is not None:
        query = query.where(Packet.source_id == source_id)
    if status:
        query = query.where(Packet.status == status)
    if after is not None:
        query = query.where(Packet.received_at >= after)
    if before is not None:
        query = query.where(Packet.received_at < before)
    if cursor is not None:
        at, last_id = cursor
        query = query.where((Packet.received_at < at) | ((Packet.received_at == at) & (Packet.id < last_id)))
    return session.execute(query).scalars().all()


def list_records(
    session: Session,
    *,
    source_id: uuid.UUID | None,
    packet_id: uuid.UUID | None,
    after_id: int | None,
    limit: int,
) -> Sequence[Record]:
    query = select(Record).order_by(Record.id).limit(limit)
    if source_id is not None:
        query = query.where(Record.source_id == source_id)
    if packet_id is not None:
        query = query.where(Record.packet_id == packet_id)
    if after_id is not None:
        query = query.where(Record.id > after_id)
    return session.execute(query).scalars().all()


def list_action_runs(
    session: Session,
    *,
    source_id: uuid.UUID | None,
    status: str | None,
    cursor: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[ActionRun]:
    query = select(ActionRun).order_by(ActionRun.created_at.desc(), ActionRun.id.desc()).limit(limit)
    if source_id is not None:
        query = query.where(ActionRun.source_id == source_id)
    if status:
        query = query.where(ActionRun.status == status)
    if cursor is not None:
        at, last_id = cursor
        query = query.where(
            (ActionRun.created_at < at) | ((ActionRun.created_at == at) & (ActionRun.id < last_id))
        )
    return session.execute(query).scalars().all()


def ping(conn: Connection) -> None:
    conn.execute(text("SELECT 1"))
