"""Observability end to end, on real processes: Prometheus metrics on every service, one request
id from the sender's POST to the actions service's log lines, and one trace across the hand-offs."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from harness import Proc, SmtpSink, Stack, free_port, wait_until

from hookbay.admin.v1 import admin_service_pb2 as admin_pb
from hookbay.types.v1 import types_pb2

ORDER = {"id": 727, "number": "727", "total": "29.35", "billing": {"email": "jo@example.com"}}
EMAIL = types_pb2.ActionRule(
    name="confirm",
    type="email",
    on="root",
    when="billing.email",
    to="{{ billing.email }}",
    subject="Order {{ number }}",
    body="Thanks.",
)
JSON_HEADERS = {"Content-Type": "application/json"}


def start_pipeline(stack: Stack, **env: str) -> tuple[int, int]:
    """All three services, the parser's and actions' metrics on free ports (returned)."""
    parser_metrics, actions_metrics = free_port(), free_port()
    stack.parser(HOOKBAY_PARSER_METRICS_PORT=str(parser_metrics), **env)
    stack.actions(HOOKBAY_ACTIONS_METRICS_PORT=str(actions_metrics), **env)
    stack.receiver(**env)
    return parser_metrics, actions_metrics


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format (labels given must all match)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return None


def json_lines(proc: Proc) -> list[dict[str, Any]]:
    lines = []
    for line in proc.log().splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


def proc_named(stack: Stack, name: str) -> Proc:
    return next(p for p in stack.procs if p.name == name)


def wait_parsed(stack: Stack, packet_id: str) -> admin_pb.Packet:
    def done() -> admin_pb.Packet | None:
        packet = stack.packet(packet_id)
        return packet if packet.status != admin_pb.PACKET_STATUS_RECEIVED else None

    return wait_until(done, 30, interval=0.1, what=f"packet {packet_id} to be parsed")


def test_every_service_serves_metrics_that_move(tmp_path: Path, database_url: str, smtp: SmtpSink) -> None:
    stack = Stack(tmp_path, database_url, HOOKBAY_SMTP_URL=smtp.url, HOOKBAY_DISPATCH_IDLE_POLL="0.1")
    try:
        parser_port, actions_port = start_pipeline(stack)
        source = stack.create_source("shop", format="json", actions=[EMAIL])
        ids = []
        for _ in range(3):
            response = stack.http.post(stack.url(source), content=json.dumps(ORDER), headers=JSON_HEADERS)
            assert response.status_code == 200
            ids.append(response.json()["id"])
        unknown = f"http://127.0.0.1:{stack.http_port}/V1/Data/{uuid.uuid4()}"
        assert stack.http.post(unknown, content=b"{}", headers=JSON_HEADERS).status_code == 404
        for packet_id in ids:
            assert wait_parsed(stack, packet_id).status == admin_pb.PACKET_STATUS_PARSED
        wait_until(lambda: len(smtp.messages) == 3, 30, what="three emails")

        receiver = stack.http.get(f"http://127.0.0.1:{stack.http_port}/metrics")
        assert receiver.status_code == 200
        assert receiver.headers["content-type"].startswith("text/plain")
        text = receiver.text
        assert sample(text, "hookbay_receiver_requests_total", source="shop", status="200") == 3
        assert sample(text, "hookbay_receiver_requests_total", source="unknown", status="404") == 1
        assert str(source.guid) not in text  # GUIDs are credentials: never in a label
        assert sample(text, "hookbay_receiver_ack_seconds_count") == 4
        assert sample(text, "hookbay_receiver_body_bytes_count") == 3
        assert sample(text, "hookbay_receiver_outbox_backlog") is not None
        assert sample(text, "hookbay_receiver_outbox_oldest_age_seconds") is not None

        parser = stack.http.get(f"http://127.0.0.1:{parser_port}/metrics").text
        assert sample(parser, "hookbay_parser_packets_total", format="json", outcome="parsed") == 3
        assert sample(parser, "hookbay_parser_records_total") == 3
        assert sample(parser, "hookbay_parser_parse_seconds_count") == 3

        def actions_counted() -> str | None:
            text = stack.http.get(f"http://127.0.0.1:{actions_port}/metrics").text
            done = sample(text, "hookbay_actions_runs_total", type="email", status="succeeded")
            return text if done == 3 else None

        actions = wait_until(actions_counted, 20, what="three succeeded runs in the actions metrics")
        assert sample(actions, "hookbay_actions_send_seconds_count") == 3
        assert sample(actions, "hookbay_actions_dead_runs") == 0
    finally:
        stack.close()


def test_backlog_gauge_counts_packets_waiting_for_the_parser(tmp_path: Path, database_url: str) -> None:
    stack = Stack(tmp_path, database_url, HOOKBAY_DISPATCH_ENABLED="false")
    try:
        stack.receiver()
        source = stack.create_source("queue")
        for _ in range(2):
            stack.http.post(stack.url(source), content=b"{}", headers=JSON_HEADERS)
        text = stack.http.get(f"http://127.0.0.1:{stack.http_port}/metrics").text
        assert sample(text, "hookbay_receiver_outbox_backlog") == 2
        assert sample(text, "hookbay_receiver_outbox_oldest_age_seconds") >= 0
    finally:
        stack.close()


def test_request_id_follows_the_packet_through_every_service(
    tmp_path: Path, database_url: str, smtp: SmtpSink
) -> None:
    stack = Stack(tmp_path, database_url, HOOKBAY_SMTP_URL=smtp.url, HOOKBAY_DISPATCH_IDLE_POLL="0.1")
    try:
        start_pipeline(stack)
        source = stack.create_source("shop", format="json", actions=[EMAIL])
        response = stack.http.post(
            stack.url(source), content=json.dumps(ORDER), headers={**JSON_HEADERS, "X-Request-ID": "abc-123"}
        )
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "abc-123"
        packet_id = response.json()["id"]

        # No header, or one unfit to log (too long, control characters): a fresh id, echoed.
        generated = stack.http.post(stack.url(source), content=json.dumps(ORDER), headers=JSON_HEADERS)
        assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
        too_long = stack.http.post(
            stack.url(source), content=json.dumps(ORDER), headers={**JSON_HEADERS, "X-Request-ID": "x" * 129}
        )
        assert re.fullmatch(r"[0-9a-f]{32}", too_long.headers["x-request-id"])
        refused = stack.http.post(
            f"http://127.0.0.1:{stack.http_port}/V1/Data/{uuid.uuid4()}", headers={"X-Request-ID": "nope-1"}
        )
        assert refused.status_code == 404 and refused.headers["x-request-id"] == "nope-1"

        wait_until(lambda: len(smtp.messages) == 3, 30, what="three emails")
        assert stack.scalar("SELECT count(*) FROM packets WHERE request_id = 'abc-123'") == 1

        def lines_with(name: str, request_id: str) -> list[dict[str, Any]]:
            return [
                line for line in json_lines(proc_named(stack, name)) if line.get("request_id") == request_id
            ]

        def events(name: str, request_id: str) -> set[str]:
            return {line["event"] for line in lines_with(name, request_id)}

        assert "receiver.packet_accepted" in events("receiver", "abc-123")
        assert "parser.packet_parsed" in events("parser", "abc-123")
        wait_until(lambda: "actions.email_sent" in events("actions", "abc-123"), 20, what="actions log line")
        for name in ("parser", "actions"):
            assert all(line.get("packet_id") == packet_id for line in lines_with(name, "abc-123"))

        generated_id = generated.headers["x-request-id"]
        assert "receiver.packet_accepted" in events("receiver", generated_id)
        assert "parser.packet_parsed" in events("parser", generated_id)
        wait_until(lambda: "actions.email_sent" in events("actions", generated_id), 20, what="actions line")
    finally:
        stack.close()


def spans(proc: Proc) -> list[dict[str, Any]]:
    return [line for line in json_lines(proc) if "context" in line and "kind" in line]


def test_one_trace_from_the_post_to_the_email(tmp_path: Path, database_url: str, smtp: SmtpSink) -> None:
    otel = {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    stack = Stack(tmp_path, database_url, HOOKBAY_SMTP_URL=smtp.url, HOOKBAY_DISPATCH_IDLE_POLL="0.1", **otel)
    try:
        start_pipeline(stack)
        source = stack.create_source("shop", format="json", actions=[EMAIL])
        response = stack.http.post(stack.url(source), content=json.dumps(ORDER), headers=JSON_HEADERS)
        assert response.status_code == 200
        wait_until(lambda: len(smtp.messages) == 1, 30, what="the email")

        def root() -> dict[str, Any] | None:
            return next(
                (s for s in spans(proc_named(stack, "receiver")) if s["name"] == "POST /V1/Data/{guid}"), None
            )

        post = wait_until(root, 20, what="the receiver's POST span")
        trace_id = post["context"]["trace_id"]
        assert post["resource"]["attributes"]["service.name"] == "hookbay-receiver"

        def names_in_trace(name: str) -> set[str]:
            return {s["name"] for s in spans(proc_named(stack, name)) if s["context"]["trace_id"] == trace_id}

        wait_until(
            lambda: (
                {"parser.parse_packet", "/hookbay.parser.v1.ParserService/ParsePackets"}
                <= names_in_trace("parser")
            ),
            20,
            what="the parser's spans in the POST's trace",
        )
        wait_until(
            lambda: (
                {"/hookbay.actions.v1.ActionsService/ExecuteActions", "actions.send_email"}
                <= names_in_trace("actions")
            ),
            20,
            what="the actions service's spans in the POST's trace",
        )
        # The hand-off spans end after the calls they wrap return, so they are exported last.
        wait_until(
            lambda: (
                {"receiver.dispatch", "/hookbay.parser.v1.ParserService/ParsePackets"}
                <= names_in_trace("receiver")
            ),
            20,
            what="the receiver's dispatch spans in the POST's trace",
        )
        wait_until(
            lambda: "parser.actions_handoff" in names_in_trace("parser"),
            20,
            what="the parser's hand-off span in the POST's trace",
        )
    finally:
        stack.close()


def test_grpc_ingest_stores_the_calls_request_id(tmp_path: Path, database_url: str) -> None:
    import grpc

    from hookbay.ingest.v1 import ingest_service_pb2 as ingest_pb
    from hookbay.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc

    stack = Stack(tmp_path, database_url, HOOKBAY_DISPATCH_ENABLED="false")
    try:
        stack.receiver()
        stack.create_source("internal")
        with grpc.insecure_channel(f"127.0.0.1:{stack.admin_port}") as channel:
            ingest = ingest_grpc.IngestServiceStub(channel)
            request = ingest_pb.SubmitPacketRequest(
                source="internal", content_type="application/json", body=b"{}"
            )
            ingest.SubmitPacket(request, metadata=[("x-request-id", "ingest-7")], timeout=10)
            ingest.SubmitPacket(request, timeout=10)
        assert stack.scalar("SELECT count(*) FROM packets WHERE request_id = 'ingest-7'") == 1
        assert stack.scalar("SELECT count(*) FROM packets WHERE request_id IS NOT NULL") == 2
        accepted = [
            line
            for line in json_lines(proc_named(stack, "receiver"))
            if line.get("event") == "receiver.packet_accepted"
        ]
        assert accepted[0]["request_id"] == "ingest-7"
    finally:
        stack.close()
