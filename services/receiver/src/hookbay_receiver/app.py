"""Process wiring for the receiver: one event loop runs the public HTTP server, the admin gRPC
server, the group-commit writer, the outbox dispatcher and the archiver; SIGTERM stops them in the
order that loses nothing (report not ready → keep serving for ``shutdown_delay`` → stop taking
requests → answer those in flight → commit → stop workers), all within ``shutdown_grace``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import structlog
import uvicorn
from prometheus_client import REGISTRY
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from hookbay_common.db.engine import is_sqlite, make_engine, make_sessionmaker, pg_connect_args, pg_conninfo
from hookbay_common.db.migrate import is_current
from hookbay_common.grpc_server import GrpcServer, PortInUse, stop_event
from hookbay_common.rawstore import raw_store_from
from hookbay_common.settings import ReceiverSettings
from hookbay_common.shutdown import Shutdown
from hookbay_receiver import repository
from hookbay_receiver.admin import AdminServicer, IngestServicer, admin_services
from hookbay_receiver.archiver import Archiver
from hookbay_receiver.dispatcher import Dispatcher
from hookbay_receiver.http import create_app
from hookbay_receiver.intake import IntakeService
from hookbay_receiver.metrics import OutboxBacklog, ReceiverMetrics
from hookbay_receiver.packets import PacketService
from hookbay_receiver.protocol import guarded_protocol
from hookbay_receiver.sources import SourceCache, SourceService
from hookbay_receiver.writer import Committer, GroupCommitWriter, PgCommitter, ThreadCommitter

log = structlog.get_logger("hookbay.receiver")


class SchemaOutOfDate(RuntimeError):
    pass


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: this process stops everything in one order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_http(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only for sockets made
    # that way, and without it every keep-alive response waits ~40 ms on Nagle and delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(f"cannot listen on {host}:{port} for HTTP: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def default_public_url(host: str, port: int) -> str:
    """A URL senders on this machine can use when no HOOKBAY_PUBLIC_URL is set (a wildcard bind
    address is not somewhere to send to)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def check_schema(engine: Engine) -> None:
    try:
        current = is_current(engine)
    except OperationalError:
        log.warning("receiver.database_unreachable_at_start")  # serve 503s until it comes back
        return
    if not current:
        raise SchemaOutOfDate("the database schema is not up to date: run `hookbay migrate` first")


def tune_gc() -> None:
    """Requests wait a few milliseconds for their group commit, long enough for their objects to be
    promoted, so the default thresholds run full collections of the whole (large, long-lived) heap
    every second or so: ~100 ms pauses. Freezing what start-up built and collecting young objects
    less eagerly keeps the pauses short and rare."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def committer_for(settings: ReceiverSettings, engine: Engine) -> Committer:
    if is_sqlite(settings.database_url):
        return ThreadCommitter(engine)
    return PgCommitter(
        pg_conninfo(settings.database_url),
        pg_connect_args(settings.db_connect_timeout),
        concurrency=settings.commit_concurrency,
    )


async def ready(engine: Engine) -> bool:
    def ping() -> None:
        with engine.connect() as conn:
            repository.ping(conn)

    try:
        await asyncio.wait_for(asyncio.to_thread(ping), 1.5)
    except Exception:
        return False
    return True


def _backlog_gauges(engine: Engine) -> OutboxBacklog:
    """The outbox gauges, registered once per process with the other metrics."""
    backlog = OutboxBacklog(engine)
    REGISTRY.register(backlog)
    return backlog


async def run(settings: ReceiverSettings) -> None:
    http_sock = bind_http(settings.http_host, settings.http_port)
    engine = make_engine(settings.database_url, connect_timeout=settings.db_connect_timeout, pool_size=10)
    check_schema(engine)
    factory = make_sessionmaker(engine)
    store = raw_store_from(settings)
    public_url = settings.public_url or default_public_url(settings.http_host, http_sock.getsockname()[1])

    dispatcher = Dispatcher(
        engine,
        settings.parser_addr,
        batch=settings.dispatch_batch,
        concurrency=settings.dispatch_concurrency,
        lease=settings.dispatch_lease,
        deadline=settings.dispatch_deadline,
        idle_poll=settings.dispatch_idle_poll,
        retry_base=settings.retry_base,
        retry_max=settings.retry_max,
    )
    writer = GroupCommitWriter(
        committer_for(settings, engine),
        max_batch=settings.commit_max_batch,
        timeout=settings.ack_timeout,
        on_commit=dispatcher.wake if settings.dispatch_enabled else None,
    )
    cache = SourceCache(factory, ttl=settings.source_cache_ttl)
    intake = IntakeService(cache, writer, default_max_body=settings.max_body)
    sources = SourceService(factory, cache)
    grpc_server = GrpcServer(
        settings.admin_host,
        settings.admin_port,
        admin_services(
            AdminServicer(sources, PacketService(factory, store), public_url), IngestServicer(intake, sources)
        ),
    )
    archiver = Archiver(engine, store, after=settings.archive_after, batch=settings.archive_batch)
    shutdown = Shutdown(settings.shutdown_grace, settings.shutdown_delay)
    app = create_app(
        intake,
        ready=lambda: ready(engine),
        draining=lambda: shutdown.started,
        public_url=settings.public_url,
        metrics=ReceiverMetrics(_backlog_gauges(engine)),
        serve_metrics=settings.http_metrics,
    )
    server = _Server(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
            proxy_headers=True,
            server_header=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=settings.shutdown_grace,
            backlog=2048,
            http=guarded_protocol(
                settings.header_timeout,
                settings.max_header_bytes,
                settings.body_timeout,
                draining=lambda: shutdown.started,
            ),
        )
    )

    # Blocking database calls run in threads; enough of them that a few stuck on a dead connection
    # (until their connect timeout) do not starve the rest.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32, thread_name_prefix="db"))
    stopping = stop_event()
    await grpc_server.start()
    if settings.dispatch_enabled:
        dispatcher.start()
    if settings.archive_enabled:
        archiver.start()
    serving = asyncio.create_task(server.serve(sockets=[http_sock]))
    tune_gc()
    log.info(
        "receiver.started",
        http=f"{settings.http_host}:{http_sock.getsockname()[1]}",
        admin=f"{settings.admin_host}:{grpc_server.port}",
        parser=settings.parser_addr,
    )
    stop_wait = asyncio.create_task(stopping.wait())
    await asyncio.wait([serving, stop_wait], return_when=asyncio.FIRST_COMPLETED)
    stop_wait.cancel()
    shutdown.begin()  # from here /readyz answers 503 and responses close their connections
    log.info("receiver.stopping", delay=shutdown.delay, grace=shutdown.grace)
    await grpc_server.drain()
    # Keep serving while load balancers (Kubernetes endpoints) notice and stop sending here.
    await asyncio.wait([serving], timeout=shutdown.delay)
    # Stop accepting; requests already read finish (they wait on the writer, still running), and so
    # do the admin API's calls, whose ingest feeds the same writer. A second is kept for the writer.
    server.config.timeout_graceful_shutdown = max(shutdown.remaining() - 1.0, 0.1)
    server.should_exit = True
    await asyncio.gather(
        shutdown.bound(serving, "receiver.http"), grpc_server.stop(grace=shutdown.remaining())
    )
    await shutdown.bound(writer.stop(), "receiver.writer")
    await archiver.stop()
    await shutdown.bound(dispatcher.stop(), "receiver.dispatcher")
    engine.dispose()
    log.info("receiver.stopped")
