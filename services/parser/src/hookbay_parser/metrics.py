"""The parser's Prometheus metrics, and the scope every packet is parsed in (log context, trace span,
parse timing), so the parsing code itself needs one ``with`` line for all three."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import structlog
from prometheus_client import Counter, Histogram

from hookbay_common import tracing
from hookbay_common.correlation import origin_of
from hookbay_common.metrics import latency_buckets

PACKETS = Counter(
    "hookbay_parser_packets",
    "Packets the parser finished, by format (the source's setting when parsing failed) and outcome"
    " (parsed, failed, ignored; retry and not_found with format 'unknown').",
    ["format", "outcome"],
)
RECORDS = Counter("hookbay_parser_records", "Records written by the parser.")
PARSE_SECONDS = Histogram(
    "hookbay_parser_parse_seconds",
    "Seconds to read (from the raw store when archived) and parse one packet, before the commit.",
    buckets=latency_buckets(0.0001, 10.0),
)


@contextlib.contextmanager
def packet_scope(packet_id: uuid.UUID, source: str) -> Iterator[None]:
    """Parse one packet: its log lines carry packet_id, source and the receiving request's id; with
    tracing on, a span continues the receiving request's trace; the time goes to PARSE_SECONDS."""
    pid = str(packet_id)
    started = time.perf_counter()
    try:
        with structlog.contextvars.bound_contextvars(packet_id=pid, source=source):
            if tracing.enabled():
                origin = origin_of(pid)
                with tracing.span(
                    "parser.parse_packet",
                    parent=origin.traceparent if origin else None,
                    attributes={"hookbay.packet_id": pid, "hookbay.source": source},
                ):
                    yield
            else:
                yield
    finally:
        PARSE_SECONDS.observe(time.perf_counter() - started)


def packet_finished(fmt: str | None, outcome: str, records: int) -> None:
    PACKETS.labels(fmt or "none", outcome).inc()
    if records:
        RECORDS.inc(records)


def packet_not_finished(outcome: str) -> None:
    """A packet handed back without a result of its own (retry later, or no such packet)."""
    PACKETS.labels("unknown", outcome).inc()
