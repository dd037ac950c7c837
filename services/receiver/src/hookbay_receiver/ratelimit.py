"""Token buckets, per source and per client address. In memory and per replica: each receiver
enforces its share, which keeps the hot path free of any shared state or extra round trip."""

from __future__ import annotations

import math
import time
from collections import OrderedDict


class TokenBucket:
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self, now: float | None = None) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Limiter:
    """Buckets by key, the least recently used dropped beyond ``max_keys`` (addresses are unbounded)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: OrderedDict[object, TokenBucket] = OrderedDict()
        self._max_keys = max_keys

    def take(self, key: object, rate: float, burst: int) -> int:
        """0 when allowed, else the whole seconds to put in Retry-After."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            bucket = self._buckets[key] = TokenBucket(rate, burst)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        wait = bucket.take()
        return max(1, math.ceil(wait)) if wait > 0 else 0

    def peek_blocked(self, key: object) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            return False
        bucket.tokens = min(bucket.burst, bucket.tokens + (time.monotonic() - bucket.updated) * bucket.rate)
        bucket.updated = time.monotonic()
        return bucket.tokens < 1
