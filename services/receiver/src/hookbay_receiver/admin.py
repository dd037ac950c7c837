"""The internal gRPC transport: AdminService and IngestService, thin over the receiver's services."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf import json_format
from sqlalchemy.exc import OperationalError

from hookbay.admin.v1 import admin_service_pb2 as pb
from hookbay.admin.v1 import admin_service_pb2_grpc as pb_grpc
from hookbay.ingest.v1 import ingest_service_pb2 as ingest_pb
from hookbay.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from hookbay.types.v1 import types_pb2
from hookbay_common import tracing
from hookbay_common.convert import (
    ACTION_RUN_STATUS_NAMES,
    action_run_to_pb,
    record_to_pb,
    rule_from_pb,
    rule_to_pb,
    timestamp,
)
from hookbay_common.db.models import Packet, PacketStatus, Source, SourceStatus
from hookbay_common.errors import HookbayError, InvalidArgument, NotFound, Unavailable, grpc_abort
from hookbay_common.grpc_server import Service
from hookbay_common.ids import parse_uuid
from hookbay_common.secrets import redact
from hookbay_receiver.dedup import dedup_key
from hookbay_receiver.intake import Incoming, IntakeService
from hookbay_receiver.packets import PacketService
from hookbay_receiver.sources import SourceInfo, SourceService, normalize_guid

log = structlog.get_logger("hookbay.receiver.admin")

PACKET_STATUS = {
    PacketStatus.RECEIVED: pb.PACKET_STATUS_RECEIVED,
    PacketStatus.PARSED: pb.PACKET_STATUS_PARSED,
    PacketStatus.FAILED: pb.PACKET_STATUS_FAILED,
    PacketStatus.IGNORED: pb.PACKET_STATUS_IGNORED,
    PacketStatus.REJECTED: pb.PACKET_STATUS_REJECTED,
}
PACKET_STATUS_NAMES = {v: k.value for k, v in PACKET_STATUS.items()}

R = TypeVar("R")


def _mapped(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Turn domain errors into gRPC status codes; a database outage becomes UNAVAILABLE."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except HookbayError as exc:
            await grpc_abort(context, exc)
        except OperationalError:
            await grpc_abort(context, Unavailable("the database is unavailable; retry later", retry_after=1))
        raise AssertionError("unreachable")  # abort() always raises

    return wrapper


def source_ref(ref: pb.SourceRef) -> dict[str, Any]:
    kind = ref.WhichOneof("ref")
    if kind == "id":
        parsed = parse_uuid(ref.id)
        if parsed is None:
            raise InvalidArgument(f"not a source id: {ref.id[:80]!r}")
        return {"id": parsed}
    if kind == "name":
        return {"name": ref.name}
    if kind == "guid":
        guid = normalize_guid(ref.guid)
        if guid is None:
            raise NotFound("no source with that GUID")
        return {"guid": guid}
    raise InvalidArgument("name the source by id, name or guid")


class AdminServicer(pb_grpc.AdminServiceServicer):
    def __init__(self, sources: SourceService, packets: PacketService, public_url: str) -> None:
        self._sources = sources
        self._packets = packets
        self._public_url = public_url.rstrip("/")

    def _source(self, source: Source) -> pb.Source:
        message = pb.Source(
            id=str(source.id),
            name=source.name,
            client=source.client,
            guid=source.guid,
            status=pb.SOURCE_STATUS_ACTIVE
            if source.status == SourceStatus.ACTIVE
            else pb.SOURCE_STATUS_PAUSED,
            format=source.format,
            max_body=source.max_body,
            url=f"{self._public_url}/V1/Data/{source.guid}",
            created_at=timestamp(source.created_at),
            updated_at=timestamp(source.updated_at),
        )
        if source.settings:
            message.settings.update(redact(source.settings))
        if source.previous_guid and source.previous_guid_expires_at:
            message.previous_guid = source.previous_guid
            message.previous_guid_expires_at.CopyFrom(timestamp(source.previous_guid_expires_at))
        message.actions.extend(rule_to_pb(rule) for rule in source.actions or [])
        return message

    @_mapped
    async def CreateSource(self, request: pb.CreateSourceRequest, context: Any) -> pb.Source:
        source = await asyncio.to_thread(
            self._sources.create,
            name=request.name,
            client=request.client,
            fmt=request.format,
            max_body=request.max_body,
            settings=json_format.MessageToDict(request.settings) if request.HasField("settings") else {},
            actions=[rule_from_pb(rule) for rule in request.actions],
            status=SourceStatus.PAUSED if request.status == pb.SOURCE_STATUS_PAUSED else SourceStatus.ACTIVE,
        )
        log.info("admin.source_created", source=source.name)
        return self._source(source)

    @_mapped
    async def GetSource(self, request: pb.GetSourceRequest, context: Any) -> pb.Source:
        return self._source(await asyncio.to_thread(self._sources.get, **source_ref(request.source)))

    @_mapped
    async def ListSources(self, request: pb.ListSourcesRequest, context: Any) -> pb.ListSourcesResponse:
        sources = await asyncio.to_thread(self._sources.list, request.client)
        return pb.ListSourcesResponse(sources=[self._source(s) for s in sources])

    @_mapped
    async def UpdateSource(self, request: pb.UpdateSourceRequest, context: Any) -> pb.Source:
        changes: dict[str, Any] = {}
        for field in ("name", "client", "format", "max_body"):
            if request.HasField(field):
                changes[field] = getattr(request, field)
        if request.HasField("settings"):
            changes["settings"] = json_format.MessageToDict(request.settings)
        if request.HasField("actions"):
            changes["actions"] = [rule_from_pb(rule) for rule in request.actions.rules]
        source = await asyncio.to_thread(self._sources.update, source_ref(request.source), changes)
        log.info("admin.source_updated", source=source.name, fields=sorted(changes))
        return self._source(source)

    async def _set_status(self, ref: pb.SourceRef, status: SourceStatus) -> pb.Source:
        source = await asyncio.to_thread(self._sources.update, source_ref(ref), {"status": status.value})
        log.info("admin.source_status", source=source.name, status=status.value)
        return self._source(source)

    @_mapped
    async def PauseSource(self, request: pb.PauseSourceRequest, context: Any) -> pb.Source:
        return await self._set_status(request.source, SourceStatus.PAUSED)

    @_mapped
    async def ResumeSource(self, request: pb.ResumeSourceRequest, context: Any) -> pb.Source:
        return await self._set_status(request.source, SourceStatus.ACTIVE)

    @_mapped
    async def RotateSourceGuid(self, request: pb.RotateSourceGuidRequest, context: Any) -> pb.Source:
        source = await asyncio.to_thread(
            self._sources.rotate_guid, source_ref(request.source), request.overlap_seconds
        )
        log.info("admin.source_guid_rotated", source=source.name)
        return self._source(source)

    def _packet(self, packet: Packet, source_name: str) -> pb.Packet:
        return pb.Packet(
            id=str(packet.id),
            source=source_name,
            source_id=str(packet.source_id),
            status=PACKET_STATUS.get(PacketStatus(packet.status), pb.PACKET_STATUS_UNSPECIFIED),
            method=packet.method,
            query_string=packet.query_string,
            headers=[pb.Header(name=n, value=v) for n, v in packet.headers],
            content_type=packet.content_type,
            client_addr=packet.client_addr,
            size=packet.size,
            sha256=packet.sha256,
            received_at=timestamp(packet.received_at),
            attempts=packet.attempts,
            error=packet.last_error or "",
            parsed_at=timestamp(packet.parsed_at),
            archived=packet.raw_key is not None,
            raw_key=packet.raw_key or "",
            format=packet.parsed_format or "",
            record_count=packet.record_count,
            actions_state=packet.actions_state or "",
            receipts=packet.receipts,
        )

    @_mapped
    async def ListPackets(self, request: pb.ListPacketsRequest, context: Any) -> pb.ListPacketsResponse:
        page = await asyncio.to_thread(
            self._packets.list_packets,
            source=request.source,
            status=PACKET_STATUS_NAMES.get(request.status),
            after=request.received_after.ToDatetime(tzinfo=UTC)
            if request.HasField("received_after")
            else None,
            before=request.received_before.ToDatetime(tzinfo=UTC)
            if request.HasField("received_before")
            else None,
            token=request.page_token,
            size=request.page_size,
        )
        return pb.ListPacketsResponse(
            packets=[self._packet(p, page.names.get(p.source_id, "")) for p in page.items],
            next_page_token=page.next_token,
        )

    @_mapped
    async def GetPacket(self, request: pb.GetPacketRequest, context: Any) -> pb.Packet:
        packet, name = await asyncio.to_thread(self._packets.get_packet, request.id)
        return self._packet(packet, name)

    async def GetPacketRaw(
        self, request: pb.GetPacketRawRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GetPacketRawResponse]:
        try:
            chunks = await asyncio.to_thread(lambda: list(self._packets.raw_chunks(request.id)))
        except HookbayError as exc:
            await grpc_abort(context, exc)
            return
        except OperationalError:
            await grpc_abort(context, Unavailable("the database is unavailable; retry later", retry_after=1))
            return
        for chunk in chunks:
            yield pb.GetPacketRawResponse(chunk=chunk)

    @_mapped
    async def ReparsePackets(
        self, request: pb.ReparsePacketsRequest, context: Any
    ) -> pb.ReparsePacketsResponse:
        count = await asyncio.to_thread(
            self._packets.reparse,
            ids=list(request.ids),
            source=request.source,
            status=PACKET_STATUS_NAMES.get(request.status),
        )
        log.info("admin.packets_reparse", count=count, source=request.source or None)
        return pb.ReparsePacketsResponse(count=count)

    @_mapped
    async def RetryActionRun(self, request: pb.RetryActionRunRequest, context: Any) -> types_pb2.ActionRun:
        run, name = await asyncio.to_thread(self._packets.retry_action_run, request.id)
        log.info("admin.action_run_retry", run_id=request.id)
        return action_run_to_pb(run, name)

    @_mapped
    async def ListRecords(self, request: pb.ListRecordsRequest, context: Any) -> pb.ListRecordsResponse:
        page = await asyncio.to_thread(
            self._packets.list_records,
            source=request.source,
            packet_id=request.packet_id,
            token=request.page_token,
            size=request.page_size,
        )
        return pb.ListRecordsResponse(
            records=[record_to_pb(r, page.names.get(r.source_id, "")) for r in page.items],
            next_page_token=page.next_token,
        )

    @_mapped
    async def ListActionRuns(
        self, request: pb.ListActionRunsRequest, context: Any
    ) -> pb.ListActionRunsResponse:
        page = await asyncio.to_thread(
            self._packets.list_action_runs,
            source=request.source,
            status=ACTION_RUN_STATUS_NAMES.get(request.status),
            token=request.page_token,
            size=request.page_size,
        )
        return pb.ListActionRunsResponse(
            runs=[action_run_to_pb(r, page.names.get(r.source_id, "")) for r in page.items],
            next_page_token=page.next_token,
        )


class IngestServicer(ingest_grpc.IngestServiceServicer):
    def __init__(self, intake: IntakeService, sources: SourceService) -> None:
        self._intake = intake
        self._sources = sources

    async def _resolve(self, ref: str) -> SourceInfo:
        if normalize_guid(ref) is not None:
            return await self._intake.resolve(ref)
        source = SourceInfo.of(await asyncio.to_thread(self._sources.get, name=ref))
        if not source.active:
            raise NotFound(f"source {ref!r} is paused")
        return source

    @_mapped
    async def SubmitPacket(
        self, request: ingest_pb.SubmitPacketRequest, context: Any
    ) -> ingest_pb.SubmitPacketResponse:
        source = await self._resolve(request.source)
        headers = [(h.name.lower(), h.value) for h in request.headers]
        content_type = request.content_type or next((v for n, v in headers if n == "content-type"), "")
        self._intake.admit(source, content_type)
        peer = context.peer() if hasattr(context, "peer") else ""
        incoming = Incoming(
            method="GRPC",
            query_string=request.query_string,
            headers=headers,
            content_type=content_type,
            client_addr=(peer or "")[:64],
            body=request.body,
            # The call's x-request-id (or the id generated for it), as the interceptor bound it, so the
            # packet is logged under the same id in the parser and actions service later.
            request_id=structlog.contextvars.get_contextvars().get("request_id"),
            traceparent=tracing.current_traceparent(),
        )
        key = (
            dedup_key(source.door, incoming.header_map(), content_type, request.body) if source.door else None
        )
        accepted = await self._intake.accept(source, incoming, dedup=key)
        return ingest_pb.SubmitPacketResponse(id=str(accepted.packet_id))


def admin_services(admin: AdminServicer, ingest: IngestServicer) -> list[Service]:
    return [
        Service("hookbay.admin.v1.AdminService", admin, pb_grpc.add_AdminServiceServicer_to_server),
        Service("hookbay.ingest.v1.IngestService", ingest, ingest_grpc.add_IngestServiceServicer_to_server),
    ]
