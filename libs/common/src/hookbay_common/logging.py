"""The one structlog setup for every Hookbay process.

JSON lines when stdout is not a terminal (what log collectors want), a readable console otherwise.
Context such as ``packet_id`` and ``source`` is bound through contextvars so every line about a
packet carries it. Never log bodies, secrets, Authorization/Cookie values or full GUIDs: use
:func:`guid_prefix`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from hookbay_common.correlation import add_packet_request_id


def guid_prefix(guid: str) -> str:
    """The first 8 characters of a GUID: enough to correlate, useless as a credential."""
    return guid[:8]


def configure_logging(level: str = "info", fmt: str = "auto", service: str | None = None) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    use_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        # After the merge, so a packet's own request id wins over the batch call's.
        add_packet_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if service:
        shared.insert(0, _add_service(service))
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(serializer=_json_text)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    # The receiver logs a line per packet, so the JSON path is the lean one: orjson renders bytes
    # and they go to stdout's byte buffer, with no encoding step (about a quarter of a line's cost).
    stdout_bytes = getattr(sys.stdout, "buffer", None) if use_json else None
    if stdout_bytes is not None:
        sys.stdout.flush()  # anything already written as text goes first
        final: structlog.types.Processor = structlog.processors.JSONRenderer(serializer=_json_bytes)
        factory: structlog.types.WrappedLogger = structlog.BytesLoggerFactory(stdout_bytes)
    else:
        final, factory = renderer, structlog.PrintLoggerFactory(file=sys.stdout)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, final],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Route the standard library's loggers (uvicorn, grpc, alembic, sqlalchemy) through the same renderer.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # uvicorn's access log would print every request; our own request lines are enough.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    for name in ("uvicorn", "uvicorn.error", "alembic"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def _json_bytes(event: dict[str, Any], default: Callable[[Any], Any] | None = None) -> bytes:
    try:
        return orjson.dumps(event, default=default, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # what orjson refuses (integers past 64 bits) the stdlib writes
        return json.dumps(event, default=default).encode()


def _json_text(event: dict[str, Any], default: Callable[[Any], Any] | None = None) -> str:
    return _json_bytes(event, default).decode()


def _add_service(service: str) -> structlog.types.Processor:
    def processor(_logger: object, _name: str, event: dict) -> dict:
        event.setdefault("service", service)
        return event

    return processor


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
