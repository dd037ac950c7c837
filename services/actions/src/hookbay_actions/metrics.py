"""The actions service's Prometheus metrics, served on ``actions_metrics_port``."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from hookbay_actions import repository
from hookbay_common.metrics import ThrottledRead, latency_buckets

RUNS = Counter(
    "hookbay_actions_runs",
    "Action runs this process brought to an end or to a retry, by action type and status"
    " (succeeded, failed = will retry, dead = gave up).",
    ["type", "status"],
)
SEND_SECONDS = Histogram(
    "hookbay_actions_send_seconds",
    "Seconds one SMTP conversation took (connect to QUIT), failures included.",
    buckets=latency_buckets(0.001, 60.0),
)


def run_finished(action_type: str, status: str) -> None:
    RUNS.labels(action_type, str(status)).inc()


class DeadRuns(Collector):
    """Runs in status 'dead' right now (they wait for an operator's retry): a gauge, so it falls
    when they are retried, read by one count query at most every ``ttl`` seconds.

    Scrapes are served from the metrics server's own thread, so the query never blocks the event loop.
    """

    def __init__(self, engine: Engine, ttl: float = 10.0) -> None:
        self._engine = engine
        self._read = ThrottledRead(self._query, ttl, "dead runs")

    def _query(self) -> int:
        with self._engine.connect() as conn:
            return repository.count_dead_runs(conn)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count = self._read.refresh()
        if count is not None:
            yield GaugeMetricFamily(
                "hookbay_actions_dead_runs",
                "Action runs that gave up and wait for a retry by hand.",
                value=count,
            )
