"""Group commit: one writer per process turns many concurrent receipts into few transactions.

A request hands its packet row to the writer and waits. The writer takes everything queued (up to
``max_batch``, waiting at most ``interval`` for company), inserts it in one statement, commits once,
and only then releases every waiting request. One fsync then acknowledges a whole group.

Up to ``concurrency`` groups commit at once (each on its own connection and thread): while one
waits for its fsync, the next is already being gathered and sent, so throughput is not capped at
one group per fsync. SQLite has one writer at a time, so it gets a concurrency of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from sqlalchemy import Engine

from hookbay_common.errors import Unavailable
from hookbay_receiver import repository

log = structlog.get_logger("hookbay.receiver.writer")

Item = tuple[dict[str, Any], "asyncio.Future[uuid.UUID]"]


class GroupCommitWriter:
    def __init__(
        self,
        engine: Engine,
        *,
        interval: float,
        max_batch: int,
        max_queue: int = 20_000,
        concurrency: int = 1,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._engine = engine
        self._slots = asyncio.Semaphore(concurrency)
        self._commits: set[asyncio.Task[None]] = set()
        self._interval = interval
        self._max_batch = max_batch
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=max_queue)
        self._on_commit = on_commit
        self._task: asyncio.Task[None] | None = None
        # Its own threads, so commits never queue behind reads stuck on a dead database connection.
        self._thread = ThreadPoolExecutor(concurrency, thread_name_prefix="group-commit")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self._thread.shutdown(wait=False)

    async def write(self, row: dict[str, Any], timeout: float) -> uuid.UUID:
        """Return once ``row`` is committed, with its packet id (the original's, for a duplicate
        delivery); raise :class:`Unavailable` if that cannot happen in time."""
        future: asyncio.Future[uuid.UUID] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((row, future))
        except asyncio.QueueFull:
            raise Unavailable("the database is not keeping up; retry later", retry_after=1) from None
        try:
            # The future is this request's alone, so a timeout may cancel it: the writer skips
            # cancelled futures when it reports back.
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            # The row may still commit later; the sender's retry then stores a second copy, which is
            # the safe side of at-least-once: an answer other than 2xx never hides a loss.
            raise Unavailable("the database did not confirm the write in time", retry_after=1) from None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Take a commit slot first, so a group keeps growing while every slot is busy.
            await self._slots.acquire()
            batch = [await self._queue.get()]
            deadline = loop.time() + self._interval
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            task = asyncio.create_task(self._commit(batch))
            self._commits.add(task)
            task.add_done_callback(self._commits.discard)

    async def _commit(self, batch: list[Item]) -> None:
        rows = [row for row, _ in batch]
        try:
            ids = await asyncio.get_running_loop().run_in_executor(self._thread, self._insert, rows)
        except Exception as exc:  # any database failure: nobody in this group is acknowledged
            log.warning("receiver.group_commit_failed", packets=len(rows), error=type(exc).__name__)
            error = Unavailable("the database is unavailable; retry later", retry_after=1)
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
        else:
            for (_, future), packet_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(packet_id)
            if self._on_commit is not None:
                self._on_commit(len(rows))
        finally:
            self._slots.release()
            for _ in batch:
                self._queue.task_done()

    def _insert(self, rows: list[dict[str, Any]]) -> list[uuid.UUID]:
        with self._engine.begin() as conn:
            return repository.insert_packets(conn, rows)
