"""The actions service's gRPC transport: thin over :class:`ActionsService`."""

from __future__ import annotations

import asyncio
import uuid

import grpc

from hookbay.actions.v1 import actions_service_pb2 as pb
from hookbay.actions.v1 import actions_service_pb2_grpc as pb_grpc
from hookbay_actions.service import ActionsService
from hookbay_common.convert import action_run_to_pb


class ActionsServicer(pb_grpc.ActionsServiceServicer):
    def __init__(self, service: ActionsService) -> None:
        self._service = service

    async def ExecuteActions(
        self, request: pb.ExecuteActionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExecuteActionsResponse:
        try:
            packet_id = uuid.UUID(request.packet_id)
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a packet id")
            raise
        # Creating the runs is the commitment; executing them right away is only the fast path (the
        # worker picks up whatever this call does not finish).
        await asyncio.to_thread(self._service.create_runs, packet_id)
        runs = await asyncio.to_thread(self._service.run_due, 100, packet_id)
        return pb.ExecuteActionsResponse(runs=[action_run_to_pb(r, "") for r in runs])
