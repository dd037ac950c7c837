"""The admin API as plain method calls: one gRPC channel, short deadlines, errors turned into
:class:`ApiError` lines a person can act on."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from google.protobuf import struct_pb2

from hookbay.admin.v1 import admin_service_pb2 as pb
from hookbay.admin.v1 import admin_service_pb2_grpc as pb_grpc
from hookbay.types.v1 import types_pb2
from hookbay_cli.errors import CliError

DEADLINE = 10.0
# A raw body can be large and arrives in many chunks: give the whole stream longer than one call.
RAW_DEADLINE = 120.0
MAX_PAGE = 1000
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

PACKET_STATUSES = {
    "received": pb.PACKET_STATUS_RECEIVED,
    "parsed": pb.PACKET_STATUS_PARSED,
    "failed": pb.PACKET_STATUS_FAILED,
    "ignored": pb.PACKET_STATUS_IGNORED,
}

ACTION_RUN_STATUSES = {
    "pending": types_pb2.ACTION_RUN_STATUS_PENDING,
    "running": types_pb2.ACTION_RUN_STATUS_RUNNING,
    "succeeded": types_pb2.ACTION_RUN_STATUS_SUCCEEDED,
    "failed": types_pb2.ACTION_RUN_STATUS_FAILED,
    "dead": types_pb2.ACTION_RUN_STATUS_DEAD,
}

T = TypeVar("T")


class ApiError(CliError):
    """A failed admin call; ``code`` lets callers react to NOT_FOUND and the like."""

    def __init__(self, message: str, code: grpc.StatusCode) -> None:
        super().__init__(message)
        self.code = code


def to_struct(data: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


def source_ref(name: str) -> pb.SourceRef:
    return pb.SourceRef(name=name)


def to_rule(rule: dict[str, Any]) -> types_pb2.ActionRule:
    """An action rule as sources.yaml spells it (name, type, on, when, to, ...) as a message."""
    return types_pb2.ActionRule(**{key: str(value or "") for key, value in rule.items()})


class AdminClient:
    def __init__(self, addr: str, timeout: float = DEADLINE) -> None:
        self.addr = addr
        self.timeout = timeout
        self._channel = grpc.insecure_channel(
            addr, options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
        )
        self._stub = pb_grpc.AdminServiceStub(self._channel)

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    # -- plumbing --------------------------------------------------------------------------------

    def _error(self, exc: grpc.RpcError) -> ApiError:
        code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        # One line, whatever the server put in its message.
        details = " ".join(((exc.details() if isinstance(exc, grpc.Call) else "") or "").split())
        if code == grpc.StatusCode.UNAVAILABLE and not self._sent_by_server(exc):
            return ApiError(f"cannot reach the admin API at {self.addr} — is `hookbay up` running?", code)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ApiError(f"the admin API at {self.addr} did not answer in time", code)
        if code in (
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.ALREADY_EXISTS,
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.FAILED_PRECONDITION,
        ):
            return ApiError(details or code.name.lower(), code)
        return ApiError(f"the admin API failed ({code.name}): {details or 'no details'}", code)

    @staticmethod
    def _sent_by_server(exc: grpc.RpcError) -> bool:
        # The receiver's own UNAVAILABLE (database down) carries retry-after; a refused or dropped
        # connection never has trailing metadata from a handler.
        if not isinstance(exc, grpc.Call):
            return False
        return any(key == "retry-after" for key, _ in exc.trailing_metadata() or ())

    def _call(self, method: Callable[..., T], request: Any) -> T:
        try:
            return method(request, timeout=self.timeout, wait_for_ready=False)
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def _pages(
        self, method: Callable[..., Any], request: Callable[..., Any], field: str, limit: int
    ) -> list[Any]:
        """Follow page tokens until ``limit`` items (0 for no limit) or the last page."""
        items: list[Any] = []
        token = ""
        while True:
            size = MAX_PAGE if limit <= 0 else min(limit - len(items), MAX_PAGE)
            response = self._call(method, request(page_size=size, page_token=token))
            items.extend(getattr(response, field))
            token = response.next_page_token
            if not token or (limit > 0 and len(items) >= limit):
                return items[:limit] if limit > 0 else items

    # -- sources ---------------------------------------------------------------------------------

    def create_source(
        self,
        *,
        name: str,
        client: str = "",
        fmt: str = "",
        max_body: int = 0,
        settings: dict[str, Any] | None = None,
        actions: list[dict[str, Any]] | None = None,
        paused: bool = False,
    ) -> pb.Source:
        request = pb.CreateSourceRequest(
            name=name,
            client=client,
            format=fmt,
            max_body=max_body,
            actions=[to_rule(rule) for rule in actions or []],
            status=pb.SOURCE_STATUS_PAUSED if paused else pb.SOURCE_STATUS_ACTIVE,
        )
        if settings is not None:
            request.settings.CopyFrom(to_struct(settings))
        return self._call(self._stub.CreateSource, request)

    def get_source(self, name: str) -> pb.Source:
        return self._call(self._stub.GetSource, pb.GetSourceRequest(source=source_ref(name)))

    def list_sources(self, client: str = "") -> list[pb.Source]:
        return list(self._call(self._stub.ListSources, pb.ListSourcesRequest(client=client)).sources)

    def update_source(self, name: str, changes: dict[str, Any]) -> pb.Source:
        """Change only the fields in ``changes`` (client, format, max_body, settings, actions, name).

        ``actions`` replaces the rules, and an empty list removes them all.
        """
        request = pb.UpdateSourceRequest(source=source_ref(name))
        for key, value in changes.items():
            if key == "settings":
                request.settings.CopyFrom(to_struct(value))
            elif key == "actions":
                request.actions.SetInParent()  # set even when empty: that is how rules are removed
                request.actions.rules.extend(to_rule(rule) for rule in value)
            else:
                setattr(request, key, value)
        return self._call(self._stub.UpdateSource, request)

    def pause_source(self, name: str) -> pb.Source:
        return self._call(self._stub.PauseSource, pb.PauseSourceRequest(source=source_ref(name)))

    def resume_source(self, name: str) -> pb.Source:
        return self._call(self._stub.ResumeSource, pb.ResumeSourceRequest(source=source_ref(name)))

    def rotate_source(self, name: str, overlap_seconds: int = 0) -> pb.Source:
        request = pb.RotateSourceGuidRequest(source=source_ref(name), overlap_seconds=overlap_seconds)
        return self._call(self._stub.RotateSourceGuid, request)

    # -- packets, records, runs ------------------------------------------------------------------

    def list_packets(self, *, source: str = "", status: str = "", limit: int = 100) -> list[pb.Packet]:
        request = functools.partial(
            pb.ListPacketsRequest, source=source, status=PACKET_STATUSES.get(status, 0)
        )
        return self._pages(self._stub.ListPackets, request, "packets", limit)

    def get_packet(self, packet_id: str) -> pb.Packet:
        return self._call(self._stub.GetPacket, pb.GetPacketRequest(id=packet_id))

    def packet_raw(self, packet_id: str) -> Iterator[bytes]:
        """The packet's exact bytes, chunk by chunk as the server streams them."""
        try:
            for message in self._stub.GetPacketRaw(
                pb.GetPacketRawRequest(id=packet_id), timeout=RAW_DEADLINE, wait_for_ready=False
            ):
                yield message.chunk
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def list_records(
        self, *, source: str = "", packet_id: str = "", limit: int = 100
    ) -> list[types_pb2.Record]:
        request = functools.partial(pb.ListRecordsRequest, source=source, packet_id=packet_id)
        return self._pages(self._stub.ListRecords, request, "records", limit)

    def reparse_packets(self, *, ids: list[str], source: str = "", status: str = "") -> int:
        """Queue packets for parsing again: these ids, or all matching source and/or status."""
        request = pb.ReparsePacketsRequest(ids=ids, source=source, status=PACKET_STATUSES.get(status, 0))
        return self._call(self._stub.ReparsePackets, request).count

    def list_action_runs(
        self, *, source: str = "", status: str = "", limit: int = 100
    ) -> list[types_pb2.ActionRun]:
        request = functools.partial(
            pb.ListActionRunsRequest, source=source, status=ACTION_RUN_STATUSES.get(status, 0)
        )
        return self._pages(self._stub.ListActionRuns, request, "runs", limit)

    def retry_action_run(self, run_id: str) -> types_pb2.ActionRun:
        return self._call(self._stub.RetryActionRun, pb.RetryActionRunRequest(id=run_id))
