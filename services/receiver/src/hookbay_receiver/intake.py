"""Accepting a packet: the rules shared by the public HTTP route and the internal gRPC ingest API."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from hookbay_common.db.models import PacketStatus, utcnow
from hookbay_common.errors import NotFound, PayloadTooLarge
from hookbay_common.ids import uuid7
from hookbay_common.logging import guid_prefix
from hookbay_receiver.sources import SourceCache, SourceInfo, normalize_guid
from hookbay_receiver.writer import GroupCommitWriter

log = structlog.get_logger("hookbay.receiver")


@dataclass(frozen=True, slots=True)
class Incoming:
    method: str
    query_string: str
    headers: Sequence[tuple[str, str]]  # names lower-cased, order and repeats kept
    content_type: str
    client_addr: str
    body: bytes


class IntakeService:
    def __init__(
        self, cache: SourceCache, writer: GroupCommitWriter, *, default_max_body: int, ack_timeout: float
    ) -> None:
        self._cache = cache
        self._writer = writer
        self._default_max_body = default_max_body
        self._ack_timeout = ack_timeout

    async def resolve(self, guid_text: str) -> SourceInfo:
        """The active source behind a URL's GUID. Unknown, malformed and paused all look the same to
        the caller, so a URL reveals nothing about sources it does not name."""
        guid = normalize_guid(guid_text)
        source = await self._cache.lookup(guid) if guid is not None else None
        if source is None or not source.active:
            raise NotFound("no active source at this URL")
        return source

    def limit_for(self, source: SourceInfo) -> int:
        return source.max_body or self._default_max_body

    async def accept(self, source: SourceInfo, incoming: Incoming) -> uuid.UUID:
        """Store the packet durably; return its id only once it is committed."""
        if len(incoming.body) > self.limit_for(source):
            raise PayloadTooLarge(f"body exceeds this source's limit of {self.limit_for(source)} bytes")
        packet_id = uuid7()
        now = utcnow()
        row = {
            "id": packet_id,
            "source_id": source.id,
            "status": PacketStatus.RECEIVED.value,
            "method": incoming.method,
            "query_string": incoming.query_string,
            "headers": [list(pair) for pair in incoming.headers],
            "content_type": incoming.content_type,
            "client_addr": incoming.client_addr,
            "size": len(incoming.body),
            "sha256": hashlib.sha256(incoming.body).hexdigest(),
            "body": incoming.body,
            "raw_key": None,
            "received_at": now,
            "attempts": 0,
            "lease_until": now,
            "lease_owner": None,
            "last_error": None,
            "parsed_at": None,
            "archived_at": None,
        }
        await self._writer.write(row, self._ack_timeout)
        log.info(
            "receiver.packet_accepted",
            packet_id=str(packet_id),
            source=source.name,
            guid=guid_prefix(source.guid),
            size=len(incoming.body),
            content_type=incoming.content_type[:100],
        )
        return packet_id
