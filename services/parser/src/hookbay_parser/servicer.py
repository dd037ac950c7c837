"""The parser's gRPC transport. Parsing itself arrives with the pipeline issue: until then the work
RPCs answer UNIMPLEMENTED, which the receiver's dispatcher treats as "try again later"."""

from __future__ import annotations

from hookbay.parser.v1 import parser_service_pb2_grpc as pb_grpc


class ParserServicer(pb_grpc.ParserServiceServicer):
    pass
