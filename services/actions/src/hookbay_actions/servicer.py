"""The actions service's gRPC transport. Running actions arrives with the pipeline issue: until then
ExecuteActions answers UNIMPLEMENTED."""

from __future__ import annotations

from hookbay.actions.v1 import actions_service_pb2_grpc as pb_grpc


class ActionsServicer(pb_grpc.ActionsServiceServicer):
    pass
