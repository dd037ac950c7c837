"""What the CLI prints: protobuf messages as the documented ``--json`` objects, and the same
objects as aligned tables or ``key: value`` lines for people.

The ``--json`` shapes are a stable interface: add keys, never rename or remove them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from hookbay.admin.v1 import admin_service_pb2 as pb
from hookbay.types.v1 import types_pb2

MAX_CELL = 60
# The keys of an action rule, in the order sources.yaml documents them.
RULE_KEYS = ("name", "type", "on", "when", "to", "subject", "body", "sender")


# -- conversions -----------------------------------------------------------------------------------


def iso(message: Message, field: str) -> str | None:
    """A Timestamp field as ISO 8601 UTC (``...Z``), or None when unset."""
    if not message.HasField(field):
        return None
    ts: timestamp_pb2.Timestamp = getattr(message, field)
    return ts.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def enum_word(enum: Any, value: int, prefix: str) -> str:
    """``PACKET_STATUS_RECEIVED`` → ``received``; unknown numbers survive as ``status_<n>``."""
    try:
        return enum.Name(value).removeprefix(prefix).lower()
    except ValueError:
        return f"status_{value}"


def plain(value: Any) -> Any:
    """Undo Struct's doubles: ``3.0`` back to ``3`` where that is exact."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def struct_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return plain(json_format.MessageToDict(struct))


def rule_dict(rule: types_pb2.ActionRule) -> dict[str, Any]:
    """Every key, "" when unset, except ``on``, which means ``root`` when unset."""
    data = {key: getattr(rule, key) for key in RULE_KEYS}
    data["on"] = data["on"] or "root"
    return data


def source_dict(source: pb.Source) -> dict[str, Any]:
    return {
        "id": source.id,
        "name": source.name,
        "guid": source.guid,
        "url": source.url,
        "status": enum_word(pb.SourceStatus, source.status, "SOURCE_STATUS_"),
        "client": source.client,
        "format": source.format,
        "max_body": source.max_body,
        "settings": struct_dict(source.settings),
        "actions": [rule_dict(rule) for rule in source.actions],
        # After a rotation with overlap: the old GUID, still accepted until then.
        "previous_guid": source.previous_guid or None,
        "previous_guid_expires_at": iso(source, "previous_guid_expires_at"),
        "created_at": iso(source, "created_at"),
        "updated_at": iso(source, "updated_at"),
    }


def packet_dict(packet: pb.Packet, *, detail: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": packet.id,
        "source": packet.source,
        "source_id": packet.source_id,
        "status": enum_word(pb.PacketStatus, packet.status, "PACKET_STATUS_"),
        "method": packet.method,
        "content_type": packet.content_type,
        "size": packet.size,
        "sha256": packet.sha256,
        "received_at": iso(packet, "received_at"),
        "parsed_at": iso(packet, "parsed_at"),
        "attempts": packet.attempts,
        "error": packet.error,
        "receipts": packet.receipts,
        "client_addr": packet.client_addr,
        "archived": packet.archived,
        "format": packet.format,
        "record_count": packet.record_count,
        "actions_state": packet.actions_state,
    }
    if detail:
        data["query_string"] = packet.query_string
        data["headers"] = [[h.name, h.value] for h in packet.headers]
        data["raw_key"] = packet.raw_key
    return data


def record_dict(record: types_pb2.Record) -> dict[str, Any]:
    # data_json, not the Struct: Struct numbers are doubles and would round big integers.
    data = json.loads(record.data_json) if record.data_json else struct_dict(record.data)
    return {
        "id": record.id,
        "packet_id": record.packet_id,
        "source": record.source,
        "type": record.type,
        "ordinal": record.ordinal,
        "parent": record.parent if record.HasField("parent") else None,
        "data": data,
        "created_at": iso(record, "created_at"),
    }


def action_run_dict(run: types_pb2.ActionRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "source": run.source,
        "rule": run.rule,
        "action_type": run.action_type,
        "packet_id": run.packet_id,
        "record_ordinal": run.record_ordinal,
        "status": enum_word(types_pb2.ActionRunStatus, run.status, "ACTION_RUN_STATUS_"),
        "attempts": run.attempts,
        "last_error": run.last_error,
        "message_id": run.message_id,
        "created_at": iso(run, "created_at"),
        "updated_at": iso(run, "updated_at"),
        "next_attempt_at": iso(run, "next_attempt_at"),
    }


# -- printing --------------------------------------------------------------------------------------


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return " ".join(str(value).split())  # one line per row, whatever the value holds


def clip(text: str, width: int = MAX_CELL) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str, clipped: Sequence[str] = ()
) -> None:
    """Aligned columns; only the ``clipped`` ones (free text) are cut, never ids or URLs."""
    cut = [h in clipped for h in headers]
    cells = [[clip(cell(v)) if c else cell(v) for v, c in zip(row, cut, strict=True)] for row in rows]
    if not cells:
        print(empty)
        return
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def print_fields(data: dict[str, Any], keys: Sequence[str] | None = None) -> None:
    keys = list(keys or data)
    width = max(len(k) for k in keys)
    for key in keys:
        value = data[key]
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else cell(value)
        print(f"{key + ':':<{width + 1}} {text}")


def short_time(value: str | None) -> str | None:
    """``2026-12-03T09:41:17.123456Z`` → ``2026-12-03 09:41:17Z`` for tables."""
    return None if value is None else value[:19].replace("T", " ") + "Z"


# -- per command -----------------------------------------------------------------------------------


def show_sources(sources: list[dict[str, Any]]) -> None:
    print_table(
        ["NAME", "STATUS", "FORMAT", "MAX BODY", "CLIENT", "URL"],
        [
            [s["name"], s["status"], s["format"], s["max_body"] or "default", s["client"], s["url"]]
            for s in sources
        ],
        empty="no sources yet; create one with `hookbay sources create --name NAME`",
    )


def show_source(source: dict[str, Any]) -> None:
    print_fields(
        {**source, "max_body": source["max_body"] or "0 (default)"},
        [
            "name",
            "status",
            "url",
            "id",
            "guid",
            "client",
            "format",
            "max_body",
            "settings",
            "created_at",
            "updated_at",
        ],
    )
    if source["actions"]:
        print("actions:")
        for rule in source["actions"]:
            print(f"  - {rule['name']} ({rule['type']} on {rule['on']})")
            for key in RULE_KEYS[3:]:
                if rule[key]:
                    print(f"      {key}: {cell(rule[key])}")


def show_packets(packets: list[dict[str, Any]]) -> None:
    print_table(
        [
            "ID",
            "RECEIVED",
            "SOURCE",
            "STATUS",
            "SIZE",
            "CONTENT TYPE",
            "FORMAT",
            "RECORDS",
            "ATTEMPTS",
            "ERROR",
        ],
        [
            [
                p["id"],
                short_time(p["received_at"]),
                p["source"],
                p["status"],
                p["size"],
                p["content_type"],
                p["format"],
                p["record_count"],
                p["attempts"],
                p["error"],
            ]
            for p in packets
        ],
        empty="no packets",
        clipped=["CONTENT TYPE", "ERROR"],
    )


def show_packet(packet: dict[str, Any]) -> None:
    print_fields(
        packet,
        [
            "id",
            "source",
            "status",
            "received_at",
            "parsed_at",
            "format",
            "record_count",
            "actions_state",
            "method",
            "query_string",
            "content_type",
            "size",
            "sha256",
            "client_addr",
            "attempts",
            "error",
            "archived",
        ],
    )
    print("headers:")
    for name, value in packet["headers"]:
        print(f"  {name}: {value}")


def show_records(records: list[dict[str, Any]]) -> None:
    print_table(
        ["ID", "PACKET", "SOURCE", "ORDINAL", "PARENT", "TYPE", "DATA"],
        [
            [r["id"], r["packet_id"], r["source"], r["ordinal"], r["parent"], r["type"], r["data"]]
            for r in records
        ],
        empty="no records",
        clipped=["DATA"],
    )


def show_action_runs(runs: list[dict[str, Any]]) -> None:
    print_table(
        ["ID", "CREATED", "SOURCE", "RULE", "ACTION", "PACKET", "RECORD", "STATUS", "ATTEMPTS", "LAST ERROR"],
        [
            [
                r["id"],
                short_time(r["created_at"]),
                r["source"],
                r["rule"],
                r["action_type"],
                r["packet_id"],
                r["record_ordinal"],
                r["status"],
                r["attempts"],
                r["last_error"],
            ]
            for r in runs
        ],
        empty="no action runs",
        clipped=["LAST ERROR"],
    )
