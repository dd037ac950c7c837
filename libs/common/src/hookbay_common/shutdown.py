"""A bounded stop: from SIGTERM every Hookbay process has ``shutdown_grace`` seconds to exit.

The order is the same everywhere: report not ready (gRPC health NOT_SERVING, HTTP ``/readyz`` 503),
keep serving for ``shutdown_delay`` seconds while load balancers (Kubernetes endpoints) notice, stop
listening, let the work in flight finish within what is left of the budget, then stop the workers.
Each step is given the time that remains; a watchdog ends the process at the deadline if something
outside our control (a thread stuck on a dead connection) still holds it, before Kubernetes'
SIGKILL would, and says so in the log.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Awaitable
from typing import TypeVar

import structlog

log = structlog.get_logger("hookbay.shutdown")

T = TypeVar("T")

# Kept back from every step for the teardown after it (closing pools, joining threads at exit).
TEARDOWN_RESERVE = 1.0
WATCHDOG_EXIT_CODE = 70


class Shutdown:
    """The time budget of one process's stop; its clock starts at :meth:`begin` (on SIGTERM)."""

    def __init__(self, grace: float, delay: float = 0.0) -> None:
        self.grace = grace
        self.delay = min(delay, grace)
        self._deadline: float | None = None
        self._watchdog: threading.Timer | None = None

    @property
    def started(self) -> bool:
        return self._deadline is not None

    def begin(self) -> None:
        """Start the clock and the watchdog; later calls do nothing."""
        if self._deadline is not None:
            return
        self._deadline = time.monotonic() + self.grace
        self._watchdog = threading.Timer(self.grace, self._expired)
        self._watchdog.daemon = True
        self._watchdog.start()

    def remaining(self) -> float:
        """Seconds the next step may take, keeping :data:`TEARDOWN_RESERVE` back for the end."""
        self.begin()
        assert self._deadline is not None
        return max(self._deadline - time.monotonic() - TEARDOWN_RESERVE, 0.0)

    async def bound(self, step: Awaitable[T], what: str) -> T | None:
        """Await ``step`` within the time that remains; past it, cancel it, log, and go on."""
        try:
            return await asyncio.wait_for(step, self.remaining())
        except TimeoutError:
            log.warning("shutdown.step_timed_out", step=what, grace=self.grace)
            return None

    def _expired(self) -> None:
        log.error("shutdown.grace_exceeded", grace=self.grace)
        sys.stdout.flush()
        os._exit(WATCHDOG_EXIT_CODE)
