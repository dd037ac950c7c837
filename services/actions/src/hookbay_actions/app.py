"""Process wiring for the actions service."""

from __future__ import annotations

from hookbay.actions.v1 import actions_service_pb2_grpc as pb_grpc
from hookbay_actions.servicer import ActionsServicer
from hookbay_common.grpc_server import GrpcServer, Service, run_grpc_service
from hookbay_common.settings import ActionsSettings


async def run(settings: ActionsSettings) -> None:
    server = GrpcServer(
        settings.actions_host,
        settings.actions_port,
        [
            Service(
                "hookbay.actions.v1.ActionsService",
                ActionsServicer(),
                pb_grpc.add_ActionsServiceServicer_to_server,
            )
        ],
    )
    await run_grpc_service(server)
