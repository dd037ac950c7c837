from hookbay.types.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ParseOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARSE_OUTCOME_UNSPECIFIED: _ClassVar[ParseOutcome]
    PARSE_OUTCOME_PARSED: _ClassVar[ParseOutcome]
    PARSE_OUTCOME_FAILED: _ClassVar[ParseOutcome]
    PARSE_OUTCOME_IGNORED: _ClassVar[ParseOutcome]
    PARSE_OUTCOME_RETRY: _ClassVar[ParseOutcome]
    PARSE_OUTCOME_NOT_FOUND: _ClassVar[ParseOutcome]
PARSE_OUTCOME_UNSPECIFIED: ParseOutcome
PARSE_OUTCOME_PARSED: ParseOutcome
PARSE_OUTCOME_FAILED: ParseOutcome
PARSE_OUTCOME_IGNORED: ParseOutcome
PARSE_OUTCOME_RETRY: ParseOutcome
PARSE_OUTCOME_NOT_FOUND: ParseOutcome

class ParsePacketsRequest(_message.Message):
    __slots__ = ("packet_ids", "origins")
    PACKET_IDS_FIELD_NUMBER: _ClassVar[int]
    ORIGINS_FIELD_NUMBER: _ClassVar[int]
    packet_ids: _containers.RepeatedScalarFieldContainer[str]
    origins: _containers.RepeatedCompositeFieldContainer[_types_pb2.PacketOrigin]
    def __init__(self, packet_ids: _Optional[_Iterable[str]] = ..., origins: _Optional[_Iterable[_Union[_types_pb2.PacketOrigin, _Mapping]]] = ...) -> None: ...

class PacketParseResult(_message.Message):
    __slots__ = ("packet_id", "outcome", "record_count", "error")
    PACKET_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RECORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    packet_id: str
    outcome: ParseOutcome
    record_count: int
    error: str
    def __init__(self, packet_id: _Optional[str] = ..., outcome: _Optional[_Union[ParseOutcome, str]] = ..., record_count: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class ParsePacketsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PacketParseResult]
    def __init__(self, results: _Optional[_Iterable[_Union[PacketParseResult, _Mapping]]] = ...) -> None: ...

class PreviewParseRequest(_message.Message):
    __slots__ = ("source", "format", "content_type", "body")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    source: str
    format: str
    content_type: str
    body: bytes
    def __init__(self, source: _Optional[str] = ..., format: _Optional[str] = ..., content_type: _Optional[str] = ..., body: _Optional[bytes] = ...) -> None: ...

class PreviewParseResponse(_message.Message):
    __slots__ = ("records", "format", "error")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_types_pb2.Record]
    format: str
    error: str
    def __init__(self, records: _Optional[_Iterable[_Union[_types_pb2.Record, _Mapping]]] = ..., format: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...
