"""The shared observability pieces, in process: request ids, the tracing switch, buckets, and the
logging processor that gives a packet's log lines its own request id."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import sys
import urllib.request
import uuid

import pytest
import structlog
from prometheus_client import CollectorRegistry, Counter

from hookbay_common.correlation import DuePacket, Origin, bind_origins, call_metadata, origin_of
from hookbay_common.grpc_server import PortInUse
from hookbay_common.ids import request_id_or_new
from hookbay_common.logging import configure_logging
from hookbay_common.metrics import latency_buckets, size_buckets, start_metrics_server
from hookbay_common.tracing import wanted


def test_request_ids_fit_to_log_are_kept_others_replaced() -> None:
    assert request_id_or_new("abc-123") == "abc-123"
    assert request_id_or_new("x" * 128) == "x" * 128
    for unfit in [None, "", "x" * 129, "line\nbreak", "tab\there", "é-accent", "\x1b[31mred"]:
        assert re.fullmatch(r"[0-9a-f]{32}", request_id_or_new(unfit)), unfit


@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_SDK_DISABLED": "TRUE"}, []),
    ],
)
def test_tracing_is_off_unless_the_otel_variables_ask(environ: dict[str, str], exporters: list[str]) -> None:
    assert wanted(environ) == exporters


def test_buckets_rise_and_end_at_the_limit() -> None:
    buckets = latency_buckets(0.0005, 10.0)
    assert buckets[0] == 0.0005 and buckets[-1] == 10.0
    assert list(buckets) == sorted(set(buckets))
    sizes = size_buckets()
    assert sizes[0] == 256 and list(sizes) == sorted(sizes)


def test_metrics_server_serves_and_a_taken_port_stops_the_process() -> None:
    registry = CollectorRegistry()
    Counter("hookbay_test_things", "Things.", registry=registry).inc(3)
    assert start_metrics_server("127.0.0.1", 0, registry) is None  # 0: off
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert start_metrics_server("127.0.0.1", port, registry) == port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert "hookbay_test_things_total 3.0" in response.read().decode()
    with pytest.raises(PortInUse, match="for metrics"):
        start_metrics_server("127.0.0.1", port, registry)


def test_a_packets_log_lines_carry_its_own_request_id(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    handlers = logging.getLogger().handlers[:]
    configure_logging("info", "json", service="test")
    log = structlog.get_logger("test")
    try:
        with structlog.contextvars.bound_contextvars(request_id="batch-call"):
            with bind_origins(
                {"p1": Origin("req-1"), "p2": Origin("req-2", "00-" + "a" * 32 + "-" + "b" * 16 + "-01")}
            ):
                assert origin_of("p2").traceparent.startswith("00-")
                log.info("about.p1", packet_id="p1")
                with structlog.contextvars.bound_contextvars(packet_id="p2"):
                    log.info("about.p2")
                log.info("about.p3", packet_id="p3")
            log.info("after", packet_id="p1")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers[:] = handlers
    lines = {line["event"]: line for line in map(json.loads, out.getvalue().splitlines())}
    assert lines["about.p1"]["request_id"] == "req-1"
    assert lines["about.p2"]["request_id"] == "req-2"
    assert lines["about.p3"]["request_id"] == "batch-call"  # no origin: the call's own id
    assert lines["after"]["request_id"] == "batch-call"


def test_a_call_about_one_packet_carries_its_request_id_in_metadata() -> None:
    one, two = (DuePacket(uuid.uuid4(), f"req-{n}", None) for n in (1, 2))
    assert call_metadata([one]) == (("x-request-id", "req-1"),)
    # A batch speaks through PacketOrigin; one request id cannot stand for several packets.
    assert call_metadata([one, two]) == ()
    assert call_metadata([DuePacket(uuid.uuid4(), None, None)]) == ()
