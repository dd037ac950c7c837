"""The receiver's Prometheus metrics, served at ``/metrics`` on its public HTTP port.

Per-request updates stay O(1) on the hot path: the labelled counter child for a (source, status)
pair is looked up once and cached. Labels carry source names (chosen by operators, few) and never
GUIDs (credentials, unbounded); a URL that names no active source counts as ``source="unknown"``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from hookbay_common.db.models import utcnow
from hookbay_common.metrics import ThrottledRead, latency_buckets, render, size_buckets
from hookbay_receiver import repository

UNKNOWN_SOURCE = "unknown"

REQUESTS = Counter(
    "hookbay_receiver_requests",
    "POSTs to /V1/Data/{guid} by source name ('unknown' when the URL names no active source) and status.",
    ["source", "status"],
)
ACK_SECONDS = Histogram(
    "hookbay_receiver_ack_seconds",
    "Seconds from a POST's arrival to its answer (for a 200: the packet is committed).",
    buckets=latency_buckets(0.0005, 10.0),
)
BODY_BYTES = Histogram(
    "hookbay_receiver_body_bytes", "Sizes of the bodies read from POSTs.", buckets=size_buckets()
)


class OutboxBacklog(Collector):
    """Packets waiting for the parser, and how long the oldest has waited.

    One aggregate query over the outbox index, run in a thread at most every ``ttl`` seconds when
    a scrape asks; scrapes in between (and scrapes while the database is away) see the last values.
    """

    def __init__(self, engine: Engine, ttl: float = 5.0, timeout: float = 2.0) -> None:
        self._engine = engine
        self._read = ThrottledRead(self._query, ttl, "outbox backlog")
        self._timeout = timeout

    def _query(self) -> tuple[int, datetime | None]:
        with self._engine.connect() as conn:
            return repository.outbox_backlog(conn)

    async def refresh(self) -> None:
        # A slow read finishes in its thread and serves the next scrape; this one sees the last values.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(self._read.refresh), self._timeout)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self._read.value is None:
            return
        count, oldest = self._read.value
        yield GaugeMetricFamily(
            "hookbay_receiver_outbox_backlog",
            "Packets received and not yet parsed (the dispatcher's outbox).",
            value=count,
        )
        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "hookbay_receiver_outbox_oldest_age_seconds",
            "Seconds the oldest packet still waiting for the parser has waited (0 when none waits).",
            value=max(0.0, age),
        )


class ReceiverMetrics:
    def __init__(self, backlog: OutboxBacklog | None = None, registry: CollectorRegistry = REGISTRY) -> None:
        self._backlog = backlog
        self._registry = registry
        self._requests: dict[tuple[str, int], Counter] = {}

    def observe(self, source: str, status: int, seconds: float, size: int | None) -> None:
        key = (source, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = REQUESTS.labels(source, str(status))
        child.inc()
        ACK_SECONDS.observe(seconds)
        if size is not None:
            BODY_BYTES.observe(size)

    async def exposition(self) -> bytes:
        if self._backlog is not None:
            await self._backlog.refresh()
        # Rendering walks every metric: a thread keeps it off the loop that answers senders.
        return await asyncio.to_thread(render, self._registry)
