"""The loop every outbox in Hookbay runs: claim due work, deliver it, repeat.

A claim leases rows in the database (so replicas do not take the same rows, and a crashed owner's
rows come due again when the lease runs out); delivery hands them to the next service and gives back
what it could not deliver. This module owns only the loop: concurrency, wake-ups, graceful stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

T = TypeVar("T")
log = structlog.get_logger("hookbay.outbox")


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter, so a failed batch does not come back as one thundering herd."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(0, attempts - 1))


class OutboxPump(Generic[T]):
    def __init__(
        self,
        name: str,
        claim: Callable[[], Awaitable[Sequence[T]]],
        deliver: Callable[[Sequence[T]], Awaitable[None]],
        *,
        concurrency: int,
        idle_poll: float,
        drain_timeout: float,
    ) -> None:
        self.name = name
        self._claim = claim
        self._deliver = deliver
        self._slots = asyncio.Semaphore(concurrency)
        self._idle_poll = idle_poll
        self._drain_timeout = drain_timeout
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    def wake(self, *_: object) -> None:
        """New work was committed: look now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._inflight:
            # Deliveries in flight finish or hit their deadline; anything unfinished comes due again.
            await asyncio.wait(self._inflight, timeout=self._drain_timeout)

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                claimed = await self._claim()
            except Exception as exc:
                self._slots.release()
                log.warning(
                    "outbox.claim_failed", outbox=self.name, error=type(exc).__name__, detail=str(exc)[:300]
                )
                await self._sleep(max(self._idle_poll, 1.0))
                continue
            if not claimed:
                self._slots.release()
                await self._sleep(self._idle_poll)
                continue
            task = asyncio.create_task(self._deliver_and_release(claimed))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _deliver_and_release(self, claimed: Sequence[T]) -> None:
        try:
            await self._deliver(claimed)
        except Exception as exc:  # the leases run out and the work comes due again; nothing is lost
            log.warning(
                "outbox.deliver_error", outbox=self.name, error=type(exc).__name__, detail=str(exc)[:300]
            )
        finally:
            self._slots.release()

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
