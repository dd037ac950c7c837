"""Domain errors. Each knows its HTTP status and gRPC code; one mapper per transport turns them into
answers (``hookbay_receiver.http`` for HTTP, :func:`grpc_abort` for gRPC)."""

from __future__ import annotations

import grpc


class HookbayError(Exception):
    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL
    code = "internal"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class NotFound(HookbayError):
    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND
    code = "not_found"


class InvalidArgument(HookbayError):
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    code = "invalid_argument"


class AlreadyExists(HookbayError):
    http_status = 409
    grpc_code = grpc.StatusCode.ALREADY_EXISTS
    code = "already_exists"


class Unauthenticated(HookbayError):
    """A signature or credential check failed."""

    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    code = "unauthorized"


class UnsupportedMediaType(HookbayError):
    http_status = 415
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    code = "unsupported_media_type"


class RateLimited(HookbayError):
    http_status = 429
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    code = "rate_limited"


class PayloadTooLarge(HookbayError):
    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    code = "payload_too_large"


class Unavailable(HookbayError):
    """A dependency (the database) is down: the caller should retry later."""

    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    code = "unavailable"


async def grpc_abort(context: grpc.aio.ServicerContext, error: HookbayError) -> None:
    if error.retry_after is not None:
        context.set_trailing_metadata((("retry-after", str(error.retry_after)),))
    await context.abort(error.grpc_code, error.message)
