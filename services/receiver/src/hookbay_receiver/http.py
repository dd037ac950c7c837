"""The public HTTP transport: thin routes over :class:`IntakeService`, one error shape for every 4xx/5xx."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.status import HTTP_408_REQUEST_TIMEOUT

from hookbay_common.errors import HookbayError, PayloadTooLarge
from hookbay_common.logging import guid_prefix
from hookbay_receiver.handshakes import Reply
from hookbay_receiver.intake import Incoming, IntakeService

log = structlog.get_logger("hookbay.receiver.http")

DATA_PATHS = ("/V1/Data/{guid}", "/v1/data/{guid}")
OTHER_METHODS = ["PUT", "PATCH", "DELETE", "HEAD"]


def error_response(status: int, code: str, message: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def create_app(
    intake: IntakeService,
    *,
    ready: Callable[[], Awaitable[bool]],
    body_timeout: float = 10.0,
    public_url: str | None = None,
) -> FastAPI:
    app = FastAPI(title="Hookbay receiver", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HookbayError)
    async def _domain_error(_request: Request, exc: HookbayError) -> JSONResponse:
        response = error_response(exc.http_status, exc.code, exc.message, exc.retry_after)
        if isinstance(exc, PayloadTooLarge):
            # Close instead of draining the rest of an oversized body into the void.
            response.headers["Connection"] = "close"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    def client_of(request: Request) -> str:
        return request.client.host if request.client else ""

    def public(request: Request) -> str:
        """The URL the sender addressed, as signature schemes that sign it (Twilio, HubSpot) saw it."""
        if not public_url:
            return str(request.url)
        query = request.url.query
        return public_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")

    async def receive(guid: str, request: Request) -> Response:
        source = await intake.resolve(guid, client_of(request))
        structlog.contextvars.bind_contextvars(source=source.name, guid=guid_prefix(source.guid))
        content_type = request.headers.get("content-type", "")
        intake.admit(source, content_type)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit():
            intake.check_size(source, int(declared))
        try:
            async with asyncio.timeout(body_timeout):
                body = await _read_limited(request, intake.limit_for(source))
        except TimeoutError:
            response = error_response(
                HTTP_408_REQUEST_TIMEOUT, "request_timeout", "the body was not sent in time"
            )
            response.headers["Connection"] = "close"
            return response
        incoming = Incoming(
            method=request.method,
            query_string=request.url.query,
            headers=[(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers.raw],
            content_type=content_type,
            client_addr=client_of(request),
            body=body,
            url=public(request),
        )
        return _response(await intake.receive(source, incoming))

    async def probe(guid: str, request: Request) -> Response:
        """GET and OPTIONS: senders' verification handshakes, otherwise 405."""
        source = await intake.resolve(guid, client_of(request))
        if request.method == "GET":
            reply = intake.on_get(source, request.url.query)
        elif request.method == "OPTIONS":
            reply = intake.on_options(source, {k.lower(): v for k, v in request.headers.items()})
        else:
            reply = None
        return _response(reply) if reply is not None else method_not_allowed()

    async def other(guid: str) -> JSONResponse:
        return method_not_allowed()

    for path in DATA_PATHS:
        app.add_api_route(path, receive, methods=["POST"], include_in_schema=False)
        app.add_api_route(path, probe, methods=["GET", "OPTIONS"], include_in_schema=False)
        app.add_api_route(path, other, methods=OTHER_METHODS, include_in_schema=False)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        if await ready():
            return JSONResponse({"status": "ready"})
        return error_response(503, "unavailable", "the database is unreachable", retry_after=1)

    return app


def method_not_allowed() -> JSONResponse:
    response = error_response(405, "method_not_allowed", "send packets with POST")
    response.headers["Allow"] = "POST"
    return response


def _response(reply: Reply) -> Response:
    response = Response(content=reply.body, status_code=reply.status, media_type=reply.content_type)
    for name, value in reply.headers:
        response.headers[name] = value
    return response


async def _read_limited(request: Request, limit: int) -> bytes:
    """Read the body, refusing as soon as it passes ``limit``: at most the limit plus one chunk is read."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds this source's limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
