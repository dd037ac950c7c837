"""The actions service's gRPC transport: thin over :class:`ActionsService`."""

from __future__ import annotations

import asyncio
import uuid

import grpc

from hookbay.actions.v1 import actions_service_pb2 as pb
from hookbay.actions.v1 import actions_service_pb2_grpc as pb_grpc
from hookbay_actions.service import ActionsService
from hookbay_common.convert import action_run_to_pb
from hookbay_common.correlation import bind_origins, origins_from_pb


class ActionsServicer(pb_grpc.ActionsServiceServicer):
    def __init__(self, service: ActionsService) -> None:
        self._service = service

    async def ExecuteActions(
        self, request: pb.ExecuteActionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExecuteActionsResponse:
        texts = [*request.packet_ids, *([request.packet_id] if request.packet_id else [])]
        try:
            packet_ids = list(dict.fromkeys(uuid.UUID(text) for text in texts))
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a packet id")
            raise
        if not packet_ids:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no packet ids")
        # Creating the runs is the commitment; executing the email runs right away is only the fast
        # path (the worker picks up whatever this call does not finish).
        # The thread inherits the packets' origins: each packet's log lines carry its request id.
        with bind_origins(origins_from_pb(request.origins)):
            runs = await asyncio.to_thread(self._service.execute_packets, packet_ids)
        return pb.ExecuteActionsResponse(runs=[action_run_to_pb(r, "") for r in runs])
