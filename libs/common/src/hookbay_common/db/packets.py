"""Packet reads shared by the services (the receiver's admin API and the parser)."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from hookbay_common.db.models import Packet
from hookbay_common.errors import NotFound
from hookbay_common.rawstore import RawStore


def get_packet(session: Session, packet_id: uuid.UUID) -> Packet:
    packet = session.get(Packet, packet_id)
    if packet is None:
        raise NotFound(f"no packet with id {packet_id}")
    return packet


def read_raw(db: Session | Connection, store: RawStore, packet_id: uuid.UUID) -> bytes:
    """The packet's exact bytes: inline until archived, from the raw store after."""
    row = db.execute(select(Packet.body, Packet.raw_key).where(Packet.id == packet_id)).one_or_none()
    if row is None:
        raise NotFound(f"no packet with id {packet_id}")
    body, raw_key = row
    if body is not None:
        return body
    if raw_key is None:
        raise NotFound(f"packet {packet_id} has no stored body")
    return store.get(raw_key)
