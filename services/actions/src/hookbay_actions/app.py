"""Process wiring for the actions service: its gRPC server and the retry worker."""

from __future__ import annotations

from prometheus_client import REGISTRY

from hookbay.actions.v1 import actions_service_pb2_grpc as pb_grpc
from hookbay_actions.mailer import SmtpTarget
from hookbay_actions.metrics import DeadRuns
from hookbay_actions.service import ActionsService, Worker
from hookbay_actions.servicer import ActionsServicer
from hookbay_common.db.engine import make_engine
from hookbay_common.grpc_server import GrpcServer, Service, run_grpc_service
from hookbay_common.metrics import start_metrics_server
from hookbay_common.settings import ActionsSettings
from hookbay_common.shutdown import Shutdown


async def run(settings: ActionsSettings) -> None:
    engine = make_engine(settings.database_url, connect_timeout=settings.db_connect_timeout)
    service = ActionsService(
        engine,
        smtp=SmtpTarget.parse(settings.smtp_url),
        mail_from=settings.mail_from,
        smtp_timeout=settings.smtp_timeout,
        max_attempts=settings.action_max_attempts,
        retry_base=settings.action_retry_base,
        retry_max=settings.action_retry_max,
        lease=settings.action_lease,
    )
    worker = Worker(service, poll=settings.action_poll)
    server = GrpcServer(
        settings.actions_host,
        settings.actions_port,
        [
            Service(
                "hookbay.actions.v1.ActionsService",
                ActionsServicer(service),
                pb_grpc.add_ActionsServiceServicer_to_server,
            )
        ],
    )
    shutdown = Shutdown(settings.shutdown_grace, settings.shutdown_delay)
    REGISTRY.register(DeadRuns(engine))
    start_metrics_server(settings.actions_host, settings.actions_metrics_port)
    worker.start()
    try:
        await run_grpc_service(server, shutdown)
    finally:
        await shutdown.bound(worker.stop(), "actions.worker")
        engine.dispose()
