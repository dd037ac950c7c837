"""The public HTTP transport: thin over :class:`IntakeService`, one error shape for every 4xx/5xx.

``POST /V1/Data/{guid}`` is the hot path, served by a plain ASGI handler in front of FastAPI:
routing, request objects and response classes would cost more per packet than storing it. The
rest (handshake GETs and OPTIONS, 405s, health) goes through FastAPI, where speed does not matter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from hookbay_common import tracing
from hookbay_common.errors import HookbayError, PayloadTooLarge
from hookbay_common.ids import request_id_or_new
from hookbay_common.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from hookbay_receiver.handshakes import Reply
from hookbay_receiver.intake import Incoming, IntakeService
from hookbay_receiver.metrics import UNKNOWN_SOURCE, ReceiverMetrics

log = structlog.get_logger("hookbay.receiver.http")

DATA_PATHS = ("/V1/Data/{guid}", "/v1/data/{guid}")
DATA_PREFIXES = ("/V1/Data/", "/v1/data/")
OTHER_METHODS = ["PUT", "PATCH", "DELETE", "HEAD"]

ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]
]


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()


def error_reply(
    status: int, code: str, message: str, retry_after: int | None = None, close: bool = False
) -> Reply:
    headers: list[tuple[str, str]] = []
    if retry_after is not None:
        headers.append(("Retry-After", str(retry_after)))
    if close:
        # Close instead of draining the rest of an oversized or stalled body into the void.
        headers.append(("Connection", "close"))
    return Reply(status, "application/json", error_body(code, message), tuple(headers))


def domain_error(exc: HookbayError) -> Reply:
    return error_reply(
        exc.http_status, exc.code, exc.message, exc.retry_after, close=isinstance(exc, PayloadTooLarge)
    )


def error_response(status: int, code: str, message: str, retry_after: int | None = None) -> Response:
    return _response(error_reply(status, code, message, retry_after))


class ClientGone(Exception):
    """The client hung up (or was cut off for being too slow) before its body arrived: no answer."""


class Receiver:
    """The ASGI application: the data route and /metrics here, everything else in FastAPI."""

    def __init__(
        self,
        intake: IntakeService,
        fallback: ASGIApp,
        *,
        public_url: str | None,
        metrics: ReceiverMetrics,
        serve_metrics: bool = True,
    ) -> None:
        self._intake = intake
        self._fallback = fallback
        self._public_url = public_url.rstrip("/") if public_url else None
        self._metrics = metrics
        self._serve_metrics = serve_metrics
        # Read once: with tracing off the hot path pays one attribute test, nothing more.
        self._traced = tracing.enabled()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if scope["method"] == "POST" and path.startswith(DATA_PREFIXES) and "/" not in path[9:]:
                await self._data(path[9:], scope, receive, send)
                return
            if path == "/metrics" and self._serve_metrics and scope["method"] == "GET":
                body = await self._metrics.exposition()
                await _send(send, Reply(200, METRICS_CONTENT_TYPE, body))
                return
        await self._fallback(scope, receive, send)

    async def _data(self, guid: str, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        request_id = _request_id(scope["headers"])
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            if self._traced:
                with tracing.span(
                    "POST /V1/Data/{guid}",
                    kind="server",
                    attributes={"http.request.method": "POST", "hookbay.request_id": request_id},
                ) as span:
                    reply, source, size = await self._post(
                        guid, scope, receive, request_id, tracing.current_traceparent()
                    )
                    if reply is not None:
                        span.set_attribute("http.response.status_code", reply.status)
                    span.set_attribute("hookbay.source", source)
            else:
                reply, source, size = await self._post(guid, scope, receive, request_id, None)
        if reply is None:
            return  # nobody to answer; uvicorn knows the connection is gone and logs nothing
        await _send(send, reply, request_id)
        self._metrics.observe(source, reply.status, time.perf_counter() - started, size)

    async def _post(
        self, guid: str, scope: dict[str, Any], receive: Any, request_id: str, traceparent: str | None
    ) -> tuple[Reply | None, str, int | None]:
        """The answer (None: the client is gone), the source's name for metrics (``unknown`` until
        resolved) and the body's size."""
        intake = self._intake
        source_name = UNKNOWN_SOURCE
        size = None
        client = scope.get("client")
        client_addr = client[0] if client else ""
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw_headers]
        content_type = ""
        declared = None
        for name, value in headers:
            if name == "content-type" and not content_type:
                content_type = value
            elif name == "content-length" and declared is None:
                declared = value
        try:
            source = await intake.resolve(guid, client_addr)
            source_name = source.name
            intake.admit(source, content_type)
            if declared is not None and declared.isdigit():
                intake.check_size(source, int(declared))
            # No deadline here: the protocol gives the client body_timeout to finish sending it.
            body = await _read_limited(receive, intake.limit_for(source))
            size = len(body)
            query = scope.get("query_string", b"").decode("latin-1")
            incoming = Incoming(
                method="POST",
                query_string=query,
                headers=headers,
                content_type=content_type,
                client_addr=client_addr,
                body=body,
                url=self._url(scope, headers, query),
                request_id=request_id,
                traceparent=traceparent,
            )
            return await intake.receive(source, incoming), source_name, size
        except HookbayError as exc:
            return domain_error(exc), source_name, size
        except ClientGone:
            return None, source_name, size

    def _url(self, scope: dict[str, Any], headers: list[tuple[str, str]], query: str) -> str:
        """The URL the sender addressed, as signature schemes that sign it (Twilio, HubSpot) saw it."""
        suffix = scope["path"] + (f"?{query}" if query else "")
        if self._public_url:
            return self._public_url + suffix
        host = next((v for k, v in headers if k == "host"), "")
        if not host and scope.get("server"):
            server_host, server_port = scope["server"]
            host = f"{server_host}:{server_port}"
        return f"{scope.get('scheme', 'http')}://{host}{suffix}"


def _request_id(raw_headers: list[tuple[bytes, bytes]]) -> str:
    """The sender's X-Request-ID when it is safe to log and store, otherwise a new one."""
    for name, value in raw_headers:
        if name == b"x-request-id":
            return request_id_or_new(value.decode("latin-1"))
    return request_id_or_new(None)


async def _read_limited(receive: Any, limit: int) -> bytes:
    """Read the body, refusing as soon as it passes ``limit``: at most the limit plus one chunk is read."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds this source's limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Any, reply: Reply, request_id: str | None = None) -> None:
    headers = [
        (b"content-type", reply.content_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
    ]
    if request_id is not None:
        headers.append((b"x-request-id", request_id.encode("latin-1")))
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def _response(reply: Reply) -> Response:
    response = Response(content=reply.body, status_code=reply.status, media_type=reply.content_type)
    for name, value in reply.headers:
        response.headers[name] = value
    return response


def method_not_allowed() -> Response:
    response = error_response(405, "method_not_allowed", "send packets with POST")
    response.headers["Allow"] = "POST"
    return response


def create_app(
    intake: IntakeService,
    *,
    ready: Callable[[], Awaitable[bool]],
    draining: Callable[[], bool] = lambda: False,
    public_url: str | None = None,
    metrics: ReceiverMetrics | None = None,
    serve_metrics: bool = True,
) -> Receiver:
    app = FastAPI(title="Hookbay receiver", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HookbayError)
    async def _domain_error(_request: Request, exc: HookbayError) -> Response:
        return _response(domain_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    def client_of(request: Request) -> str:
        return request.client.host if request.client else ""

    async def probe(guid: str, request: Request) -> Response:
        """GET and OPTIONS: senders' verification handshakes, otherwise 405."""
        source = await intake.resolve(guid, client_of(request))
        if request.method == "GET":
            reply = intake.on_get(source, request.url.query)
        else:
            reply = intake.on_options(source, {k.lower(): v for k, v in request.headers.items()})
        return _response(reply) if reply is not None else method_not_allowed()

    async def other(guid: str) -> Response:
        return method_not_allowed()

    for path in DATA_PATHS:
        app.add_api_route(path, probe, methods=["GET", "OPTIONS"], include_in_schema=False)
        app.add_api_route(path, other, methods=OTHER_METHODS, include_in_schema=False)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        if draining():  # stopping: balancers should send elsewhere while in-flight requests finish
            return error_response(503, "draining", "this receiver is shutting down")
        if await ready():
            return JSONResponse({"status": "ready"})
        return error_response(503, "unavailable", "the database is unreachable", retry_after=1)

    return Receiver(
        intake,
        app,
        public_url=public_url,
        metrics=metrics or ReceiverMetrics(),
        serve_metrics=serve_metrics,
    )
