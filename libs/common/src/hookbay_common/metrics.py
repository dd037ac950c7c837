"""Prometheus metrics: the pieces every service shares. Each service defines its own metrics in its
own ``metrics`` module; this one only serves them and keeps their buckets consistent.

The parser and the actions service serve ``/metrics`` on a port of their own (a small HTTP server in
a thread, so a scrape never waits on the event loop); the receiver serves it on its public HTTP port.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import start_http_server as _start_http_server

from hookbay_common.grpc_server import PortInUse

log = structlog.get_logger("hookbay.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
T = TypeVar("T")


class ThrottledRead(Generic[T]):
    """A database read behind a gauge, run at most every ``ttl`` seconds however often scrapes come.
    Between reads, and while the database is slow or away, the last value stands: a scrape must not
    fail, nor load the database, because of a gauge."""

    def __init__(self, read: Callable[[], T], ttl: float, what: str) -> None:
        self._read = read
        self._ttl = ttl
        self._what = what
        self._checked = float("-inf")
        self.value: T | None = None

    def refresh(self) -> T | None:
        if time.monotonic() - self._checked >= self._ttl:
            self._checked = time.monotonic()
            try:
                self.value = self._read()
            except Exception as exc:
                log.debug("metrics.read_failed", what=self._what, error=type(exc).__name__)
        return self.value


def latency_buckets(fastest: float = 0.0005, slowest: float = 30.0) -> tuple[float, ...]:
    """Buckets in seconds, 1-2.5-5 per decade from ``fastest`` to ``slowest``: one shape for every
    latency, so dashboards compare like with like (sub-millisecond acks to half-minute sends)."""
    buckets: list[float] = []
    decade = fastest
    while decade <= slowest:
        buckets += [round(decade * step, 10) for step in (1.0, 2.5, 5.0) if decade * step <= slowest]
        decade *= 10
    if buckets[-1] < slowest:
        buckets.append(float(slowest))
    return tuple(buckets)


def size_buckets(smallest: int = 256, largest: int = 16 * 1024 * 1024) -> tuple[float, ...]:
    """Byte-size buckets, x4 apart."""
    buckets: list[float] = []
    value = smallest
    while value <= largest:
        buckets.append(float(value))
        value *= 4
    return tuple(buckets)


def render(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The text exposition of every metric in ``registry``."""
    return generate_latest(registry)


def start_metrics_server(host: str, port: int, registry: CollectorRegistry = REGISTRY) -> int | None:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; return the bound port, or None when
    ``port`` is 0 (metrics off). A taken port stops the process like any other taken port."""
    if not port:
        return None
    try:
        server, _thread = _start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise PortInUse(f"cannot listen on {host}:{port} for metrics: {exc.strerror or exc}") from None
    return server.server_address[1]
