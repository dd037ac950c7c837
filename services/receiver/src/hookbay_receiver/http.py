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
from hookbay_receiver.intake import Incoming, IntakeService

log = structlog.get_logger("hookbay.receiver.http")

DATA_PATHS = ("/V1/Data/{guid}", "/v1/data/{guid}")
OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]


def error_response(status: int, code: str, message: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def create_app(
    intake: IntakeService, *, ready: Callable[[], Awaitable[bool]], body_timeout: float = 10.0
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

    async def receive(guid: str, request: Request) -> Response:
        source = await intake.resolve(guid)
        structlog.contextvars.bind_contextvars(source=source.name, guid=guid_prefix(source.guid))
        limit = intake.limit_for(source)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"body exceeds this source's limit of {limit} bytes")
        try:
            async with asyncio.timeout(body_timeout):
                body = await _read_limited(request, limit)
        except TimeoutError:
            return error_response(
                HTTP_408_REQUEST_TIMEOUT, "request_timeout", "the body was not sent in time"
            )
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers.raw]
        client = request.client
        incoming = Incoming(
            method=request.method,
            query_string=request.url.query,
            headers=headers,
            content_type=request.headers.get("content-type", ""),
            client_addr=client.host if client else "",
            body=body,
        )
        packet_id = await intake.accept(source, incoming)
        return Response(
            content=b'{"id":"%s","status":"accepted"}' % str(packet_id).encode(),
            media_type="application/json",
        )

    async def method_not_allowed(guid: str) -> JSONResponse:
        response = error_response(405, "method_not_allowed", "send packets with POST")
        response.headers["Allow"] = "POST"
        return response

    for path in DATA_PATHS:
        app.add_api_route(path, receive, methods=["POST"], include_in_schema=False)
        app.add_api_route(path, method_not_allowed, methods=OTHER_METHODS, include_in_schema=False)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        if await ready():
            return JSONResponse({"status": "ready"})
        return error_response(503, "unavailable", "the database is unreachable", retry_after=1)

    return app


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
