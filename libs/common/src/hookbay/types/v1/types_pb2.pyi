import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ActionRunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_RUN_STATUS_UNSPECIFIED: _ClassVar[ActionRunStatus]
    ACTION_RUN_STATUS_PENDING: _ClassVar[ActionRunStatus]
    ACTION_RUN_STATUS_SUCCEEDED: _ClassVar[ActionRunStatus]
    ACTION_RUN_STATUS_FAILED: _ClassVar[ActionRunStatus]
    ACTION_RUN_STATUS_DEAD: _ClassVar[ActionRunStatus]
    ACTION_RUN_STATUS_RUNNING: _ClassVar[ActionRunStatus]
ACTION_RUN_STATUS_UNSPECIFIED: ActionRunStatus
ACTION_RUN_STATUS_PENDING: ActionRunStatus
ACTION_RUN_STATUS_SUCCEEDED: ActionRunStatus
ACTION_RUN_STATUS_FAILED: ActionRunStatus
ACTION_RUN_STATUS_DEAD: ActionRunStatus
ACTION_RUN_STATUS_RUNNING: ActionRunStatus

class PacketOrigin(_message.Message):
    __slots__ = ("packet_id", "request_id", "traceparent")
    PACKET_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    packet_id: str
    request_id: str
    traceparent: str
    def __init__(self, packet_id: _Optional[str] = ..., request_id: _Optional[str] = ..., traceparent: _Optional[str] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("id", "packet_id", "source", "type", "ordinal", "parent", "data", "created_at", "data_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    PACKET_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ORDINAL_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    packet_id: str
    source: str
    type: str
    ordinal: int
    parent: int
    data: _struct_pb2.Struct
    created_at: _timestamp_pb2.Timestamp
    data_json: str
    def __init__(self, id: _Optional[str] = ..., packet_id: _Optional[str] = ..., source: _Optional[str] = ..., type: _Optional[str] = ..., ordinal: _Optional[int] = ..., parent: _Optional[int] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., data_json: _Optional[str] = ...) -> None: ...

class ActionRun(_message.Message):
    __slots__ = ("id", "source", "rule", "action_type", "packet_id", "record_ordinal", "status", "attempts", "last_error", "created_at", "updated_at", "next_attempt_at", "message_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    ACTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    PACKET_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_ORDINAL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    source: str
    rule: str
    action_type: str
    packet_id: str
    record_ordinal: int
    status: ActionRunStatus
    attempts: int
    last_error: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    next_attempt_at: _timestamp_pb2.Timestamp
    message_id: str
    def __init__(self, id: _Optional[str] = ..., source: _Optional[str] = ..., rule: _Optional[str] = ..., action_type: _Optional[str] = ..., packet_id: _Optional[str] = ..., record_ordinal: _Optional[int] = ..., status: _Optional[_Union[ActionRunStatus, str]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message_id: _Optional[str] = ...) -> None: ...

class ActionRule(_message.Message):
    __slots__ = ("name", "type", "on", "when", "to", "subject", "body", "sender")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ON_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    on: str
    when: str
    to: str
    subject: str
    body: str
    sender: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., on: _Optional[str] = ..., when: _Optional[str] = ..., to: _Optional[str] = ..., subject: _Optional[str] = ..., body: _Optional[str] = ..., sender: _Optional[str] = ...) -> None: ...
