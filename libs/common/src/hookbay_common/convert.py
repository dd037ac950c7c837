"""Model → protobuf conversions shared by more than one service."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from hookbay.types.v1 import types_pb2
from hookbay_common.db.models import ActionRun, ActionRunStatus, Record

RULE_FIELDS = ("name", "type", "on", "when", "to", "subject", "body", "sender")

ACTION_RUN_STATUS = {
    ActionRunStatus.PENDING: types_pb2.ACTION_RUN_STATUS_PENDING,
    ActionRunStatus.RUNNING: types_pb2.ACTION_RUN_STATUS_RUNNING,
    ActionRunStatus.SUCCEEDED: types_pb2.ACTION_RUN_STATUS_SUCCEEDED,
    ActionRunStatus.FAILED: types_pb2.ACTION_RUN_STATUS_FAILED,
    ActionRunStatus.DEAD: types_pb2.ACTION_RUN_STATUS_DEAD,
}
ACTION_RUN_STATUS_NAMES = {v: k.value for k, v in ACTION_RUN_STATUS.items()}


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def to_struct(data: dict[str, Any] | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if data:
        # Struct numbers are doubles: integers beyond 2**53 lose precision there, so callers that care
        # read the exact JSON text carried beside it.
        struct.update(json.loads(json.dumps(data), parse_int=_safe_int))
    return struct


def _safe_int(text: str) -> float | str:
    value = int(text)
    return float(value) if abs(value) < 2**53 else text


def record_to_pb(record: Record, source_name: str) -> types_pb2.Record:
    message = types_pb2.Record(
        id=str(record.id),
        packet_id=str(record.packet_id),
        source=source_name,
        type=record.type,
        ordinal=record.ordinal,
        data=to_struct(record.data),
        created_at=timestamp(record.created_at),
        data_json=json.dumps(record.data, ensure_ascii=False, separators=(",", ":")),
    )
    if record.parent is not None:
        message.parent = record.parent
    return message


def action_run_to_pb(run: ActionRun, source_name: str) -> types_pb2.ActionRun:
    return types_pb2.ActionRun(
        id=str(run.id),
        source=source_name,
        rule=run.rule,
        action_type=run.action_type,
        packet_id=str(run.packet_id),
        record_ordinal=run.record_ordinal,
        status=ACTION_RUN_STATUS.get(ActionRunStatus(run.status), types_pb2.ACTION_RUN_STATUS_UNSPECIFIED),
        attempts=run.attempts,
        last_error=run.last_error or "",
        created_at=timestamp(run.created_at),
        updated_at=timestamp(run.updated_at),
        next_attempt_at=timestamp(run.next_attempt_at),
        message_id=run.message_id or "",
    )


def rule_to_pb(rule: dict[str, Any]) -> types_pb2.ActionRule:
    return types_pb2.ActionRule(**{f: str(rule.get(f) or "") for f in RULE_FIELDS})


def rule_from_pb(rule: types_pb2.ActionRule) -> dict[str, Any]:
    """Only the fields that were set, so defaults (``on: root``) apply on the server."""
    return {f: getattr(rule, f) for f in RULE_FIELDS if getattr(rule, f)}
