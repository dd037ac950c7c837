"""Inspection of packets, records and action runs for the admin API."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from hookbay_common.db import packets as packet_reads
from hookbay_common.db.engine import unit_of_work
from hookbay_common.db.models import ActionRun, Packet, Record, utcnow
from hookbay_common.errors import InvalidArgument
from hookbay_common.ids import parse_uuid
from hookbay_common.rawstore import RawStore
from hookbay_receiver import repository

DEFAULT_PAGE = 100
MAX_PAGE = 1000
RAW_CHUNK = 256 * 1024


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size must not be negative")
    return min(requested or DEFAULT_PAGE, MAX_PAGE)


def encode_cursor(at: datetime, last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{last_id}".encode()).decode()


def decode_cursor(token: str) -> tuple[datetime, uuid.UUID] | None:
    if not token:
        return None
    try:
        at, last_id = base64.urlsafe_b64decode(token.encode()).decode().split("|")
        return datetime.fromisoformat(at), uuid.UUID(last_id)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("page_token is not one this API issued") from None


def packet_id_of(text: str) -> uuid.UUID:
    parsed = parse_uuid(text)
    if parsed is None:
        raise InvalidArgument(f"not a packet id: {text[:80]!r}")
    return parsed


T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    names: dict[uuid.UUID, str]
    next_token: str


class PacketService:
    def __init__(self, factory: sessionmaker[Session], store: RawStore) -> None:
        self._factory = factory
        self._store = store

    def _source_id(self, session: Session, name: str) -> uuid.UUID | None:
        return repository.source_by(session, name=name).id if name else None

    def list_packets(
        self,
        *,
        source: str,
        status: str | None,
        after: datetime | None,
        before: datetime | None,
        token: str,
        size: int,
    ) -> Page[Packet]:
        limit = page_size(size)
        with self._factory() as session:
            rows = list(
                repository.list_packets(
                    session,
                    source_id=self._source_id(session, source),
                    status=status,
                    after=after,
                    before=before,
                    cursor=decode_cursor(token),
                    limit=limit,
                )
            )
            names = repository.source_names(session, {p.source_id for p in rows})
        next_token = encode_cursor(rows[-1].received_at, rows[-1].id) if len(rows) == limit else ""
        return Page(rows, names, next_token)

    def get_packet(self, packet_id: str) -> tuple[Packet, str]:
        with self._factory() as session:
            packet = packet_reads.get_packet(session, packet_id_of(packet_id))
            return packet, repository.source_names(session, {packet.source_id})[packet.source_id]

    def raw_chunks(self, packet_id: str) -> Iterator[bytes]:
        with self._factory() as session:
            data = packet_reads.read_raw(session, self._store, packet_id_of(packet_id))
        for start in range(0, max(len(data), 1), RAW_CHUNK):
            yield data[start : start + RAW_CHUNK]

    def reparse(self, *, ids: list[str], source: str, status: str | None) -> int:
        """Queue packets for parsing again: by id, or every packet matching source and/or status."""
        if not ids and not source and not status:
            raise InvalidArgument("name packets by id, or filter by source and/or status")
        with unit_of_work(self._factory) as session:
            return repository.requeue_packets(
                session,
                ids=[packet_id_of(i) for i in ids],
                source_id=self._source_id(session, source),
                status=status,
                now=utcnow(),
            )

    def retry_action_run(self, run_id: str) -> tuple[ActionRun, str]:
        parsed = parse_uuid(run_id)
        if parsed is None:
            raise InvalidArgument(f"not an action run id: {run_id[:80]!r}")
        with unit_of_work(self._factory) as session:
            run = repository.retry_action_run(session, parsed, utcnow())
            return run, repository.source_names(session, {run.source_id})[run.source_id]

    def list_records(self, *, source: str, packet_id: str, token: str, size: int) -> Page[Record]:
        limit = page_size(size)
        try:
            after_id = int(token) if token else None
        except ValueError:
            raise InvalidArgument("page_token is not one this API issued") from None
        with self._factory() as session:
            rows = list(
                repository.list_records(
                    session,
                    source_id=self._source_id(session, source),
                    packet_id=packet_id_of(packet_id) if packet_id else None,
                    after_id=after_id,
                    limit=limit,
                )
            )
            names = repository.source_names(session, {r.source_id for r in rows})
        return Page(rows, names, str(rows[-1].id) if len(rows) == limit else "")

    def list_action_runs(self, *, source: str, status: str | None, token: str, size: int) -> Page[ActionRun]:
        limit = page_size(size)
        with self._factory() as session:
            rows = list(
                repository.list_action_runs(
                    session,
                    source_id=self._source_id(session, source),
                    status=status,
                    cursor=decode_cursor(token),
                    limit=limit,
                )
            )
            names = repository.source_names(session, {r.source_id for r in rows})
        next_token = encode_cursor(rows[-1].created_at, rows[-1].id) if len(rows) == limit else ""
        return Page(rows, names, next_token)
