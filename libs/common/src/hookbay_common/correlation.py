"""Which request each packet came from, while a batch of packets is handled.

Packets reach the parser and the actions service later and in batches, so one call's request id
(gRPC ``x-request-id``) cannot speak for its packets. Each packet's own request id and trace
context travel with it instead (``PacketOrigin`` in the calls, stored on the packet row). A
transport binds a batch's origins with :func:`bind_origins`; from there every log line that names a
``packet_id`` (as a field or through bound contextvars) gets that packet's ``request_id``, by the
logging processor :func:`add_packet_request_id`, and spans about a packet can continue its trace.
Context variables follow the work into ``asyncio.to_thread``, so the service code needs no changes.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from hookbay.types.v1 import types_pb2


@dataclass(frozen=True, slots=True)
class Origin:
    request_id: str
    traceparent: str | None = None


_origins: ContextVar[Mapping[str, Origin] | None] = ContextVar("hookbay_packet_origins", default=None)


@contextlib.contextmanager
def bind_origins(origins: Mapping[str, Origin]) -> Iterator[None]:
    """Make ``origins`` (by packet id text) known to the code the block runs, threads included."""
    token = _origins.set(origins)
    try:
        yield
    finally:
        _origins.reset(token)


def origin_of(packet_id: str) -> Origin | None:
    origins = _origins.get()
    return origins.get(packet_id) if origins else None


@dataclass(frozen=True, slots=True)
class DuePacket:
    """A packet an outbox claimed, with the origin it carries to the next service (both outboxes
    read these in the statement that claims, so delivery needs no second query)."""

    id: uuid.UUID
    request_id: str | None
    traceparent: str | None


def origins_to_pb(due: Sequence[DuePacket]) -> list[types_pb2.PacketOrigin]:
    """``PacketOrigin`` messages for the packets of a hand-off call (those with a request id)."""
    return [
        types_pb2.PacketOrigin(packet_id=str(p.id), request_id=p.request_id, traceparent=p.traceparent or "")
        for p in due
        if p.request_id
    ]


def origins_from_pb(messages: Iterable[Any]) -> dict[str, Origin]:
    """``PacketOrigin`` messages by packet id (those without a request id say nothing)."""
    return {m.packet_id: Origin(m.request_id, m.traceparent or None) for m in messages if m.request_id}


def add_packet_request_id(_logger: object, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: a line about a packet carries the request id the packet came with."""
    origins = _origins.get()
    if origins:
        packet_id = event.get("packet_id")
        found = origins.get(packet_id) if isinstance(packet_id, str) else None
        if found is not None:
            event["request_id"] = found.request_id
    return event


def call_metadata(due: Sequence[DuePacket]) -> tuple[tuple[str, str], ...]:
    """gRPC metadata for a call about these packets: a call about one packet carries its request id
    as ``x-request-id``, as any other internal call does; a batch's packets speak through
    ``PacketOrigin``, so its call carries none (the server names the call itself)."""
    if len(due) == 1 and due[0].request_id:
        return (("x-request-id", due[0].request_id),)
    return ()
