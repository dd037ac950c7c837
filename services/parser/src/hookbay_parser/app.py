"""Process wiring for the parser service."""

from __future__ import annotations

from hookbay.parser.v1 import parser_service_pb2_grpc as pb_grpc
from hookbay_common.grpc_server import GrpcServer, Service, run_grpc_service
from hookbay_common.settings import ParserSettings
from hookbay_parser.servicer import ParserServicer


async def run(settings: ParserSettings) -> None:
    server = GrpcServer(
        settings.parser_host,
        settings.parser_port,
        [
            Service(
                "hookbay.parser.v1.ParserService",
                ParserServicer(),
                pb_grpc.add_ParserServiceServicer_to_server,
            )
        ],
    )
    await run_grpc_service(server)
