"""The one way a Hookbay service opens a channel to another."""

from __future__ import annotations

import grpc

from hookbay_common import tracing

CHANNEL_OPTIONS = [
    # With a headless Service (dns:///name:port) calls spread over every replica, not one pinned pod.
    ("grpc.lb_policy_name", "round_robin"),
    # Retries are the outbox's job (with leases and backoff), not the channel's.
    ("grpc.enable_retries", 0),
    # Reconnect quickly once the peer is back: gRPC's default backoff grows to two minutes, which
    # would leave an outbox idle long after its peer recovered.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def internal_channel(target: str) -> grpc.aio.Channel:
    # With tracing on, every call carries its span's context to the callee (empty list otherwise).
    return grpc.aio.insecure_channel(
        target, options=CHANNEL_OPTIONS, interceptors=tracing.client_interceptors()
    )
