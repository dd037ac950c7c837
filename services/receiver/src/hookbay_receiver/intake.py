"""Accepting a packet: the rules at the door, shared by the public HTTP route and the gRPC ingest API.

Order matters and is the same for every delivery: known and active source → rate limit → content
type → size → handshakes that need no signature (WooCommerce's ping, Graph's validation) →
signature → handshakes that do (Slack, GitHub's ping) → dedup key → durable write → the answer the
sender expects (Salesforce's SOAP ack, a configured response, or our JSON).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import structlog

from hookbay_common.db.models import PacketStatus, utcnow
from hookbay_common.errors import (
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from hookbay_common.ids import uuid7
from hookbay_common.logging import guid_prefix
from hookbay_receiver import handshakes
from hookbay_receiver.dedup import dedup_key
from hookbay_receiver.handshakes import Reply
from hookbay_receiver.ratelimit import Limiter
from hookbay_receiver.sources import SourceCache, SourceInfo, normalize_guid
from hookbay_receiver.verify import Delivery, VerificationFailed, verify
from hookbay_receiver.writer import GroupCommitWriter

log = structlog.get_logger("hookbay.receiver")

# Requests for unknown GUIDs, per client address: enough for a typo, too few to enumerate.
UNKNOWN_RATE = 5.0
UNKNOWN_BURST = 20


@dataclass(frozen=True, slots=True)
class Incoming:
    method: str
    query_string: str
    headers: Sequence[tuple[str, str]]  # names lower-cased, order and repeats kept
    content_type: str
    client_addr: str
    body: bytes
    url: str = ""  # the public URL the sender addressed (signature schemes that sign it)
    # Stored with the packet: the parser and actions service log it, and continue the trace, later.
    request_id: str | None = None
    traceparent: str | None = None

    def header_map(self) -> dict[str, str]:
        """First value per name, as signature schemes read them."""
        found: dict[str, str] = {}
        for name, value in self.headers:
            found.setdefault(name, value)
        return found


@dataclass(frozen=True, slots=True)
class Accepted:
    packet_id: uuid.UUID
    duplicate: bool
    status: PacketStatus


class IntakeService:
    def __init__(self, cache: SourceCache, writer: GroupCommitWriter, *, default_max_body: int) -> None:
        self._cache = cache
        self._writer = writer
        self._default_max_body = default_max_body
        self._source_limits = Limiter()
        self._unknown_limits = Limiter()

    # -- the door ---------------------------------------------------------------------------------

    async def resolve(self, guid_text: str, client_addr: str = "") -> SourceInfo:
        """The active source behind a URL's GUID. Unknown, malformed, paused and expired GUIDs all
        look the same to the caller, so a URL reveals nothing about sources it does not name."""
        if client_addr and self._unknown_limits.peek_blocked(client_addr):
            raise RateLimited("too many requests for unknown sources", retry_after=1)
        guid = normalize_guid(guid_text)
        source = await self._cache.lookup(guid) if guid is not None else None
        if source is None or not source.active or not source.accepts_guid(guid or "", utcnow()):
            if client_addr:
                self._unknown_limits.take(client_addr, UNKNOWN_RATE, UNKNOWN_BURST)
            raise NotFound("no active source at this URL")
        if source.config_error is not None:
            log.error("receiver.source_misconfigured", source=source.name, error=source.config_error)
            raise Unavailable("this source is misconfigured; retry later", retry_after=60)
        return source

    def admit(self, source: SourceInfo, content_type: str) -> None:
        """Per-source rate limit, then the content-type allow-list."""
        limit = source.door.settings.rate_limit if source.door else None
        if limit is not None:
            wait = self._source_limits.take(source.id, limit.rate, limit.burst)
            if wait:
                raise RateLimited("rate limit exceeded for this source", retry_after=wait)
        allowed = source.door.settings.content_types if source.door else None
        if allowed is not None and content_type.split(";")[0].strip().lower() not in allowed:
            raise UnsupportedMediaType(f"content type not accepted here; send one of: {', '.join(allowed)}")

    def limit_for(self, source: SourceInfo) -> int:
        return source.max_body or self._default_max_body

    def check_size(self, source: SourceInfo, size: int) -> None:
        if size > self.limit_for(source):
            raise PayloadTooLarge(f"body exceeds this source's limit of {self.limit_for(source)} bytes")

    async def receive(self, source: SourceInfo, incoming: Incoming) -> Reply:
        """A delivery that passed the size check: handshakes, verification, storage, the answer."""
        self.check_size(source, len(incoming.body))
        shakes = source.door.settings.handshakes if source.door else None
        headers = incoming.header_map()
        if (
            shakes
            and shakes.woocommerce_ping
            and handshakes.woocommerce_ping(headers, incoming.content_type, incoming.body)
        ):
            accepted = await self.accept(
                source, incoming, status=PacketStatus.IGNORED, reason="woocommerce ping"
            )
            return _json_reply(accepted)
        if (
            shakes
            and shakes.graph_validation
            and (reply := handshakes.graph_validation(incoming.query_string))
        ):
            return reply
        verified_id = await self._verify(source, incoming, headers)
        if (
            shakes
            and shakes.slack_url_verification
            and (reply := handshakes.slack_challenge(incoming.content_type, incoming.body))
        ):
            return reply
        if shakes and shakes.github_ping and handshakes.github_ping(headers):
            accepted = await self.accept(source, incoming, status=PacketStatus.IGNORED, reason="github ping")
            return _json_reply(accepted)
        key = (
            dedup_key(source.door, headers, incoming.content_type, incoming.body, verified_id)
            if source.door
            else None
        )
        accepted = await self.accept(source, incoming, dedup=key)
        return self._answer(source, incoming, accepted)

    def on_get(self, source: SourceInfo, query_string: str) -> Reply | None:
        shakes = source.door.settings.handshakes if source.door else None
        if shakes and shakes.meta_verification:
            return handshakes.meta_verification(query_string, source.door.settings.verify_token)
        return None

    def on_options(self, source: SourceInfo, headers: dict[str, str]) -> Reply | None:
        shakes = source.door.settings.handshakes if source.door else None
        if shakes and shakes.cloudevents_options:
            return handshakes.cloudevents_options(headers, source.door.settings.rate_limit.rate)
        return None

    async def _verify(self, source: SourceInfo, incoming: Incoming, headers: dict[str, str]) -> str | None:
        """Check the signature; return the message id it covers, if the scheme has one."""
        if source.door is None or source.door.verify is None:
            return None
        delivery = Delivery(method=incoming.method, url=incoming.url, headers=headers, body=incoming.body)
        try:
            return verify(source.door.verify, delivery)
        except VerificationFailed as exc:
            reason = str(exc)
            log.warning(
                "receiver.packet_rejected", source=source.name, guid=guid_prefix(source.guid), reason=reason
            )
            if source.door.settings.quarantine:
                await self.accept(
                    source, incoming, status=PacketStatus.REJECTED, reason=f"rejected: {reason}"
                )
            raise Unauthenticated(f"signature check failed: {reason}") from None

    def _answer(self, source: SourceInfo, incoming: Incoming, accepted: Accepted) -> Reply:
        settings = source.door.settings if source.door else None
        if (
            settings
            and settings.handshakes.salesforce_ack
            and handshakes.is_salesforce(incoming.content_type, incoming.body)
        ):
            return handshakes.salesforce_ack()
        if settings and settings.response is not None:
            body = (
                source.door.response_body.render(id=str(accepted.packet_id), duplicate=accepted.duplicate)
                if source.door.response_body
                else ""
            )
            return Reply(settings.response.status, settings.response.content_type, body.encode())
        return _json_reply(accepted)

    # -- storage ----------------------------------------------------------------------------------

    async def accept(
        self,
        source: SourceInfo,
        incoming: Incoming,
        *,
        status: PacketStatus = PacketStatus.RECEIVED,
        reason: str | None = None,
        dedup: str | None = None,
    ) -> Accepted:
        """Store the packet durably; return its id only once it is committed."""
        self.check_size(source, len(incoming.body))
        packet_id = uuid7()
        now = utcnow()
        row = {
            "id": packet_id,
            "source_id": source.id,
            "status": status.value,
            "method": incoming.method,
            "query_string": incoming.query_string,
            "headers": incoming.headers,  # (name, value) pairs: JSON arrays in the column
            "content_type": incoming.content_type,
            "client_addr": incoming.client_addr,
            "size": len(incoming.body),
            "sha256": hashlib.sha256(incoming.body).hexdigest(),
            "dedup_key": dedup,
            "receipts": 1,
            "body": incoming.body,
            "raw_key": None,
            "received_at": now,
            "attempts": 0,
            "lease_until": now,
            "lease_owner": None,
            "last_error": reason,
            "parsed_at": None,
            "archived_at": None,
            "request_id": incoming.request_id,
            "traceparent": incoming.traceparent,
        }
        stored_id = await self._writer.write(row)
        duplicate = stored_id != packet_id
        log.info(
            "receiver.packet_duplicate" if duplicate else "receiver.packet_accepted",
            packet_id=str(stored_id),
            source=source.name,
            guid=guid_prefix(source.guid),
            size=len(incoming.body),
            content_type=incoming.content_type[:100],
            status=status.value,
        )
        return Accepted(stored_id, duplicate, status)


def _json_reply(accepted: Accepted) -> Reply:
    body = {
        "id": str(accepted.packet_id),
        "status": "accepted" if accepted.status == PacketStatus.RECEIVED else accepted.status.value,
    }
    if accepted.duplicate:
        body["duplicate"] = True
    return Reply(200, "application/json", orjson.dumps(body))
