"""Process wiring for the parser service: its gRPC server and its hand-off to the actions service."""

from __future__ import annotations

from hookbay.parser.v1 import parser_service_pb2_grpc as pb_grpc
from hookbay_common.db.engine import make_engine
from hookbay_common.grpc_server import GrpcServer, Service, run_grpc_service
from hookbay_common.metrics import start_metrics_server
from hookbay_common.rawstore import raw_store_from
from hookbay_common.settings import ParserSettings
from hookbay_common.shutdown import Shutdown
from hookbay_parser.formats import Limits
from hookbay_parser.handoff import ActionsHandoff
from hookbay_parser.service import ParseService
from hookbay_parser.servicer import ParserServicer


async def run(settings: ParserSettings) -> None:
    engine = make_engine(settings.database_url, connect_timeout=settings.db_connect_timeout)
    store = raw_store_from(settings)
    limits = Limits(
        max_depth=settings.max_depth, max_records=settings.max_records, time_budget=settings.parse_time_budget
    )
    handoff = ActionsHandoff(
        engine,
        settings.actions_addr,
        batch=settings.actions_batch,
        concurrency=settings.actions_concurrency,
        lease=settings.actions_lease,
        deadline=settings.actions_deadline,
    )
    servicer = ParserServicer(ParseService(engine, store, limits), on_parsed=handoff.wake)
    server = GrpcServer(
        settings.parser_host,
        settings.parser_port,
        [Service("hookbay.parser.v1.ParserService", servicer, pb_grpc.add_ParserServiceServicer_to_server)],
    )
    shutdown = Shutdown(settings.shutdown_grace, settings.shutdown_delay)
    start_metrics_server(settings.parser_host, settings.parser_metrics_port)
    handoff.start()
    try:
        await run_grpc_service(server, shutdown)
    finally:
        await shutdown.bound(handoff.stop(), "parser.actions_handoff")
        engine.dispose()
