import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from hookbay.types.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SourceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_STATUS_UNSPECIFIED: _ClassVar[SourceStatus]
    SOURCE_STATUS_ACTIVE: _ClassVar[SourceStatus]
    SOURCE_STATUS_PAUSED: _ClassVar[SourceStatus]

class PacketStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PACKET_STATUS_UNSPECIFIED: _ClassVar[PacketStatus]
    PACKET_STATUS_RECEIVED: _ClassVar[PacketStatus]
    PACKET_STATUS_PARSED: _ClassVar[PacketStatus]
    PACKET_STATUS_FAILED: _ClassVar[PacketStatus]
    PACKET_STATUS_IGNORED: _ClassVar[PacketStatus]
    PACKET_STATUS_REJECTED: _ClassVar[PacketStatus]
SOURCE_STATUS_UNSPECIFIED: SourceStatus
SOURCE_STATUS_ACTIVE: SourceStatus
SOURCE_STATUS_PAUSED: SourceStatus
PACKET_STATUS_UNSPECIFIED: PacketStatus
PACKET_STATUS_RECEIVED: PacketStatus
PACKET_STATUS_PARSED: PacketStatus
PACKET_STATUS_FAILED: PacketStatus
PACKET_STATUS_IGNORED: PacketStatus
PACKET_STATUS_REJECTED: PacketStatus

class Source(_message.Message):
    __slots__ = ("id", "name", "client", "guid", "status", "format", "max_body", "settings", "url", "created_at", "updated_at", "actions", "previous_guid", "previous_guid_expires_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    GUID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    MAX_BODY_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_GUID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_GUID_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    client: str
    guid: str
    status: SourceStatus
    format: str
    max_body: int
    settings: _struct_pb2.Struct
    url: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    actions: _containers.RepeatedCompositeFieldContainer[_types_pb2.ActionRule]
    previous_guid: str
    previous_guid_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., client: _Optional[str] = ..., guid: _Optional[str] = ..., status: _Optional[_Union[SourceStatus, str]] = ..., format: _Optional[str] = ..., max_body: _Optional[int] = ..., settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., url: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actions: _Optional[_Iterable[_Union[_types_pb2.ActionRule, _Mapping]]] = ..., previous_guid: _Optional[str] = ..., previous_guid_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ActionRules(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[_types_pb2.ActionRule]
    def __init__(self, rules: _Optional[_Iterable[_Union[_types_pb2.ActionRule, _Mapping]]] = ...) -> None: ...

class SourceRef(_message.Message):
    __slots__ = ("id", "name", "guid")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GUID_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    guid: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., guid: _Optional[str] = ...) -> None: ...

class CreateSourceRequest(_message.Message):
    __slots__ = ("name", "client", "format", "max_body", "settings", "actions", "status")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    MAX_BODY_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    name: str
    client: str
    format: str
    max_body: int
    settings: _struct_pb2.Struct
    actions: _containers.RepeatedCompositeFieldContainer[_types_pb2.ActionRule]
    status: SourceStatus
    def __init__(self, name: _Optional[str] = ..., client: _Optional[str] = ..., format: _Optional[str] = ..., max_body: _Optional[int] = ..., settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., actions: _Optional[_Iterable[_Union[_types_pb2.ActionRule, _Mapping]]] = ..., status: _Optional[_Union[SourceStatus, str]] = ...) -> None: ...

class GetSourceRequest(_message.Message):
    __slots__ = ("source",)
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    source: SourceRef
    def __init__(self, source: _Optional[_Union[SourceRef, _Mapping]] = ...) -> None: ...

class ListSourcesRequest(_message.Message):
    __slots__ = ("client",)
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    client: str
    def __init__(self, client: _Optional[str] = ...) -> None: ...

class ListSourcesResponse(_message.Message):
    __slots__ = ("sources",)
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    sources: _containers.RepeatedCompositeFieldContainer[Source]
    def __init__(self, sources: _Optional[_Iterable[_Union[Source, _Mapping]]] = ...) -> None: ...

class UpdateSourceRequest(_message.Message):
    __slots__ = ("source", "client", "format", "max_body", "settings", "name", "actions")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    MAX_BODY_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    source: SourceRef
    client: str
    format: str
    max_body: int
    settings: _struct_pb2.Struct
    name: str
    actions: ActionRules
    def __init__(self, source: _Optional[_Union[SourceRef, _Mapping]] = ..., client: _Optional[str] = ..., format: _Optional[str] = ..., max_body: _Optional[int] = ..., settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., name: _Optional[str] = ..., actions: _Optional[_Union[ActionRules, _Mapping]] = ...) -> None: ...

class PauseSourceRequest(_message.Message):
    __slots__ = ("source",)
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    source: SourceRef
    def __init__(self, source: _Optional[_Union[SourceRef, _Mapping]] = ...) -> None: ...

class ResumeSourceRequest(_message.Message):
    __slots__ = ("source",)
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    source: SourceRef
    def __init__(self, source: _Optional[_Union[SourceRef, _Mapping]] = ...) -> None: ...

class RotateSourceGuidRequest(_message.Message):
    __slots__ = ("source", "overlap_seconds")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    source: SourceRef
    overlap_seconds: int
    def __init__(self, source: _Optional[_Union[SourceRef, _Mapping]] = ..., overlap_seconds: _Optional[int] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Packet(_message.Message):
    __slots__ = ("id", "source", "source_id", "status", "method", "query_string", "headers", "content_type", "client_addr", "size", "sha256", "received_at", "attempts", "error", "parsed_at", "archived", "raw_key", "format", "record_count", "actions_state", "receipts")
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    QUERY_STRING_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDR_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PARSED_AT_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    RAW_KEY_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    RECORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_STATE_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    source: str
    source_id: str
    status: PacketStatus
    method: str
    query_string: str
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    content_type: str
    client_addr: str
    size: int
    sha256: str
    received_at: _timestamp_pb2.Timestamp
    attempts: int
    error: str
    parsed_at: _timestamp_pb2.Timestamp
    archived: bool
    raw_key: str
    format: str
    record_count: int
    actions_state: str
    receipts: int
    def __init__(self, id: _Optional[str] = ..., source: _Optional[str] = ..., source_id: _Optional[str] = ..., status: _Optional[_Union[PacketStatus, str]] = ..., method: _Optional[str] = ..., query_string: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., content_type: _Optional[str] = ..., client_addr: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[int] = ..., error: _Optional[str] = ..., parsed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., archived: _Optional[bool] = ..., raw_key: _Optional[str] = ..., format: _Optional[str] = ..., record_count: _Optional[int] = ..., actions_state: _Optional[str] = ..., receipts: _Optional[int] = ...) -> None: ...

class ListPacketsRequest(_message.Message):
    __slots__ = ("source", "status", "received_after", "received_before", "page_size", "page_token")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AFTER_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    source: str
    status: PacketStatus
    received_after: _timestamp_pb2.Timestamp
    received_before: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, source: _Optional[str] = ..., status: _Optional[_Union[PacketStatus, str]] = ..., received_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPacketsResponse(_message.Message):
    __slots__ = ("packets", "next_page_token")
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    packets: _containers.RepeatedCompositeFieldContainer[Packet]
    next_page_token: str
    def __init__(self, packets: _Optional[_Iterable[_Union[Packet, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetPacketRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetPacketRawRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetPacketRawResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    def __init__(self, chunk: _Optional[bytes] = ...) -> None: ...

class ReparsePacketsRequest(_message.Message):
    __slots__ = ("ids", "source", "status")
    IDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    source: str
    status: PacketStatus
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., source: _Optional[str] = ..., status: _Optional[_Union[PacketStatus, str]] = ...) -> None: ...

class ReparsePacketsResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class ListRecordsRequest(_message.Message):
    __slots__ = ("source", "packet_id", "page_size", "page_token")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PACKET_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    source: str
    packet_id: str
    page_size: int
    page_token: str
    def __init__(self, source: _Optional[str] = ..., packet_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRecordsResponse(_message.Message):
    __slots__ = ("records", "next_page_token")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_types_pb2.Record]
    next_page_token: str
    def __init__(self, records: _Optional[_Iterable[_Union[_types_pb2.Record, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListActionRunsRequest(_message.Message):
    __slots__ = ("source", "status", "page_size", "page_token")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    source: str
    status: _types_pb2.ActionRunStatus
    page_size: int
    page_token: str
    def __init__(self, source: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.ActionRunStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListActionRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[_types_pb2.ActionRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[_types_pb2.ActionRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RetryActionRunRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...
