from hookbay.types.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecuteActionsRequest(_message.Message):
    __slots__ = ("packet_id", "packet_ids", "origins")
    PACKET_ID_FIELD_NUMBER: _ClassVar[int]
    PACKET_IDS_FIELD_NUMBER: _ClassVar[int]
    ORIGINS_FIELD_NUMBER: _ClassVar[int]
    packet_id: str
    packet_ids: _containers.RepeatedScalarFieldContainer[str]
    origins: _containers.RepeatedCompositeFieldContainer[_types_pb2.PacketOrigin]
    def __init__(self, packet_id: _Optional[str] = ..., packet_ids: _Optional[_Iterable[str]] = ..., origins: _Optional[_Iterable[_Union[_types_pb2.PacketOrigin, _Mapping]]] = ...) -> None: ...

class ExecuteActionsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[_types_pb2.ActionRun]
    def __init__(self, runs: _Optional[_Iterable[_Union[_types_pb2.ActionRun, _Mapping]]] = ...) -> None: ...
