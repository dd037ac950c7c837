"""The parser's gRPC transport: thin over :class:`ParseService`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import grpc

from hookbay.parser.v1 import parser_service_pb2 as pb
from hookbay.parser.v1 import parser_service_pb2_grpc as pb_grpc
from hookbay.types.v1 import types_pb2
from hookbay_common.convert import to_struct
from hookbay_common.correlation import bind_origins, origins_from_pb
from hookbay_common.errors import HookbayError, grpc_abort
from hookbay_parser import metrics
from hookbay_parser.formats import NoParser, ParseError
from hookbay_parser.service import ParseService

OUTCOMES = {
    "parsed": pb.PARSE_OUTCOME_PARSED,
    "failed": pb.PARSE_OUTCOME_FAILED,
    "ignored": pb.PARSE_OUTCOME_IGNORED,
    "retry": pb.PARSE_OUTCOME_RETRY,
    "not_found": pb.PARSE_OUTCOME_NOT_FOUND,
}
MAX_PREVIEW_RECORDS = 1000


class ParserServicer(pb_grpc.ParserServiceServicer):
    def __init__(self, service: ParseService, on_parsed: Callable[[], None]) -> None:
        self._service = service
        self._on_parsed = on_parsed

    async def ParsePackets(self, request: pb.ParsePacketsRequest, context: Any) -> pb.ParsePacketsResponse:
        # The whole batch in one thread: parsing is CPU-bound (more threads would only queue on the
        # GIL), and one transaction per batch is what keeps commits cheap. The thread inherits the
        # packets' origins, so each packet's log lines carry its own request id.
        with bind_origins(origins_from_pb(request.origins)):
            outcomes = await asyncio.to_thread(self._service.parse_packets, list(request.packet_ids))
        results = [
            pb.PacketParseResult(
                packet_id=outcome.packet_id,
                outcome=OUTCOMES.get(outcome.status, pb.PARSE_OUTCOME_PARSED),
                record_count=outcome.records,
                error=outcome.error,
            )
            for outcome in outcomes
        ]
        for outcome in outcomes:
            if outcome.status in ("retry", "not_found"):
                metrics.packet_not_finished(outcome.status)
        self._on_parsed()
        return pb.ParsePacketsResponse(results=results)

    async def PreviewParse(
        self, request: pb.PreviewParseRequest, context: grpc.aio.ServicerContext
    ) -> pb.PreviewParseResponse:
        try:
            fmt, records = await asyncio.to_thread(
                self._service.preview, request.source, request.format, request.content_type, request.body
            )
        except HookbayError as exc:
            await grpc_abort(context, exc)
            raise
        except (ParseError, NoParser) as exc:
            return pb.PreviewParseResponse(error=str(exc))
        return pb.PreviewParseResponse(
            format=fmt,
            records=[
                types_pb2.Record(
                    type=r.type,
                    ordinal=r.ordinal,
                    source=request.source,
                    data=to_struct(r.data),
                    data_json=_json(r.data),
                    **({"parent": r.parent} if r.parent is not None else {}),
                )
                for r in records[:MAX_PREVIEW_RECORDS]
            ],
        )


def _json(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
