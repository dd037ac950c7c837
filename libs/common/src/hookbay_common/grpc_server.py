"""The one gRPC server skeleton every Hookbay service runs: health, reflection, request-id binding,
graceful stop.

Health is the library's ``grpc.health.v1`` servicer, set per service name and flipped to NOT_SERVING
when a stop begins so that load balancers and Kubernetes probes drain the pod before it goes away.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from hookbay_common import tracing
from hookbay_common.ids import request_id_or_new
from hookbay_common.shutdown import Shutdown

REQUEST_ID_KEY = "x-request-id"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

log = structlog.get_logger("hookbay.grpc")


@dataclass(frozen=True)
class Service:
    """A servicer and how to register it: ``add`` is the generated ``add_XServicer_to_server``."""

    name: str  # full service name, e.g. "hookbay.admin.v1.AdminService"
    servicer: object
    add: Callable[[object, grpc.aio.Server], None]


class PortInUse(RuntimeError):
    pass


def _bind_request_id(behavior: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
    """Wrap a handler so every log line inside it carries the caller's request id."""

    def request_id(context: grpc.aio.ServicerContext) -> str:
        for key, value in context.invocation_metadata() or ():
            if key == REQUEST_ID_KEY and isinstance(value, str):
                return request_id_or_new(value)
        return request_id_or_new(None)

    if streaming:

        async def stream_wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with structlog.contextvars.bound_contextvars(request_id=request_id(context)):
                async for item in behavior(request, context):
                    yield item

        return stream_wrapper

    async def unary_wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        with structlog.contextvars.bound_contextvars(request_id=request_id(context)):
            return await behavior(request, context)

    return unary_wrapper


class RequestIdInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming:
            return handler
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _bind_request_id(handler.unary_unary, streaming=False),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            # A handler that writes with context.write (the library's health Watch) is a coroutine,
            # not an async generator, and must stay one.
            streaming = inspect.isasyncgenfunction(handler.unary_stream)
            return grpc.unary_stream_rpc_method_handler(
                _bind_request_id(handler.unary_stream, streaming=streaming),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


class HealthServicer(health.aio.HealthServicer):
    """The library's health servicer, except that a Watch stream ends once a stop has begun and it
    has said NOT_SERVING: an endless stream would otherwise hold the stop for its whole grace."""

    def __init__(self) -> None:
        super().__init__()
        self._statuses: dict[str, int] = {"": health_pb2.HealthCheckResponse.SERVING}
        self._changed = asyncio.Condition()
        self._stopping = False

    async def set(self, service: str, status: int) -> None:
        await super().set(service, status)
        async with self._changed:
            if not self._stopping:
                self._statuses[service] = status
                self._changed.notify_all()

    async def enter_graceful_shutdown(self) -> None:
        await super().enter_graceful_shutdown()
        async with self._changed:
            self._stopping = True
            self._statuses = dict.fromkeys(self._statuses, health_pb2.HealthCheckResponse.NOT_SERVING)
            self._changed.notify_all()

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        last = None
        async with self._changed:
            while True:
                status = self._statuses.get(request.service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
                if status != last:
                    await context.write(health_pb2.HealthCheckResponse(status=status))
                    last = status
                if self._stopping:
                    return
                await self._changed.wait()


class GrpcServer:
    def __init__(self, host: str, port: int, services: Sequence[Service]) -> None:
        self.host = host
        self.port = port
        self.services = list(services)
        self.health = HealthServicer()
        self._server: grpc.aio.Server | None = None

    async def start(self) -> int:
        """Bind and start; returns the bound port (useful with port 0)."""
        server = grpc.aio.server(
            interceptors=[RequestIdInterceptor(), *tracing.server_interceptors()],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        for service in self.services:
            service.add(service.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = [s.name for s in self.services]
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        try:
            bound = server.add_insecure_port(f"{self.host}:{self.port}")
        except RuntimeError as exc:
            raise PortInUse(f"cannot listen on {self.host}:{self.port} for gRPC: {exc}") from None
        if not bound:
            raise PortInUse(f"cannot listen on {self.host}:{self.port} for gRPC")
        await server.start()
        self._server = server
        self.port = bound
        for name in ["", *names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("grpc.started", address=f"{self.host}:{bound}", services=names)
        return bound

    async def drain(self) -> None:
        """Report NOT_SERVING but keep serving, so probes and balancers stop sending first."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float = 10.0) -> None:
        """Report NOT_SERVING, then let in-flight calls finish for up to ``grace`` seconds."""
        if self._server is None:
            return
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace)
        self._server = None
        log.info("grpc.stopped")


def stop_event(signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)) -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the one way every Hookbay process learns to stop."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in signals:
        loop.add_signal_handler(sig, event.set)
    return event


async def run_grpc_service(server: GrpcServer, shutdown: Shutdown) -> None:
    """Serve until SIGTERM/SIGINT, then stop within ``shutdown``'s budget: NOT_SERVING at once, keep
    serving for its delay, then refuse new calls and let those in flight finish in what remains."""
    stopping = stop_event()
    await server.start()
    await stopping.wait()
    shutdown.begin()
    log.info("grpc.stopping", delay=shutdown.delay, grace=shutdown.grace)
    await server.drain()
    await asyncio.sleep(shutdown.delay)
    await server.stop(shutdown.remaining())
