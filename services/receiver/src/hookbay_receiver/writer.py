"""Group commit: one writer per process turns many concurrent receipts into few transactions.

A request hands its packet row to the writer and waits. As soon as a connection is free, the writer
takes everything queued (up to ``max_batch``), inserts it, commits once, and only then releases
every waiting request: one fsync acknowledges a whole group. There is no timer: the group is what
arrived while the previous commits were in flight, so it is one row when the receiver is idle (no
added latency) and grows with the load (fewer, larger commits), as PostgreSQL's own WAL flush does.

On PostgreSQL, up to ``concurrency`` groups commit at once, each on its own psycopg *async*
connection, on the event loop itself: while a group waits for its fsync the loop reads the next
requests, and no thread competes with it for the GIL (a committing thread made every request pay
for GIL hand-offs). SQLite's driver has no async API and one writer at a time: a thread commits
one group after another there.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import psycopg
import structlog
from sqlalchemy import Engine

from hookbay_common.errors import Unavailable
from hookbay_receiver import repository

log = structlog.get_logger("hookbay.receiver.writer")

# A queued row, the future its request awaits, and the loop time by which it must be answered.
Item = tuple[dict[str, Any], "asyncio.Future[uuid.UUID]", float]


class Committer(Protocol):
    concurrency: int

    async def insert(self, rows: list[dict[str, Any]]) -> list[uuid.UUID]:
        """Insert and commit ``rows``; their packet ids once committed."""
        ...

    async def close(self) -> None: ...


class ThreadCommitter:
    """Commits through a SQLAlchemy engine in a thread of its own (SQLite: one writer at a time)."""

    concurrency = 1

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # Its own thread, so commits never queue behind reads stuck on a dead database connection.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="group-commit")

    async def insert(self, rows: list[dict[str, Any]]) -> list[uuid.UUID]:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._insert, rows)

    def _insert(self, rows: list[dict[str, Any]]) -> list[uuid.UUID]:
        with self._engine.begin() as conn:
            return repository.insert_packets(conn, rows)

    async def close(self) -> None:
        self._thread.shutdown(wait=False)


class PgCommitter:
    """Commits on PostgreSQL over up to ``concurrency`` async connections, kept between commits.

    A connection that fails in any way is closed and replaced by a new one on the next commit, so the
    receiver recovers by itself when the database comes back. One that sat idle for ``idle_check``
    seconds is pinged before use: after a database restart it would otherwise fail its first group.
    """

    def __init__(
        self, conninfo: str, connect_args: dict[str, Any], *, concurrency: int, idle_check: float = 1.0
    ) -> None:
        self.concurrency = concurrency
        self._conninfo = conninfo
        self._connect_args = connect_args
        self._idle_check = idle_check
        self._idle: list[tuple[psycopg.AsyncConnection[Any], float]] = []

    async def insert(self, rows: list[dict[str, Any]]) -> list[uuid.UUID]:
        conn = await self._checkout()
        try:
            async with conn.transaction():
                ids = await repository.insert_packets_pg(conn, rows)
        except BaseException:
            # Failed, timed out or cancelled mid-statement: the connection's state is unknown.
            await conn.close()
            raise
        self._idle.append((conn, time.monotonic()))
        return ids

    async def _checkout(self) -> psycopg.AsyncConnection[Any]:
        while self._idle:
            conn, since = self._idle.pop()
            if time.monotonic() - since < self._idle_check:
                return conn
            try:
                await repository.ping_pg(conn)
            except psycopg.Error:
                await conn.close()  # gone while idle: try the next one, or connect anew
                continue
            except BaseException:
                await conn.close()
                raise
            return conn
        # Autocommit, so that only ``transaction()`` opens transactions: in psycopg's default mode the
        # ping above would open one implicitly, and every later group would commit only a savepoint
        # inside it, acknowledged but never durable.
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True, **self._connect_args)
        repository.configure_pg(conn)
        return conn

    async def close(self) -> None:
        while self._idle:
            conn, _ = self._idle.pop()
            await conn.close()


class GroupCommitWriter:
    """Every write is answered within ``timeout`` of its arrival: committed, or :class:`Unavailable`.

    A group commits under the deadline of its oldest row, and rows still queued at their deadline
    are refused without being written. All rows get the same timeout and are queued in arrival
    order, so a group's first row has its earliest deadline, and a busy connection frees up before
    the deadline of any row queued behind it: no timer per request is needed.
    """

    def __init__(
        self,
        committer: Committer,
        *,
        max_batch: int,
        timeout: float,
        max_queue: int = 20_000,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._committer = committer
        self._max_batch = max_batch
        self._timeout = timeout
        self._max_queue = max_queue
        self._on_commit = on_commit
        self._pending: list[Item] = []
        self._in_flight = 0
        self._flush_scheduled = False
        self._commits: set[asyncio.Task[None]] = set()
        self._drained = asyncio.Event()
        self._drained.set()

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        await self._drained.wait()
        await self._committer.close()

    async def write(self, row: dict[str, Any]) -> uuid.UUID:
        """Return once ``row`` is committed, with its packet id (the original's, for a duplicate
        delivery); raise :class:`Unavailable` if that cannot happen within the timeout."""
        if len(self._pending) >= self._max_queue:
            raise Unavailable("the database is not keeping up; retry later", retry_after=1)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[uuid.UUID] = loop.create_future()
        self._pending.append((row, future, loop.time() + self._timeout))
        self._drained.clear()
        if not self._flush_scheduled:
            # Once the requests that are ready now have queued their rows too: they share the group.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        now = asyncio.get_running_loop().time()
        while self._pending and self._in_flight < self._committer.concurrency:
            batch: list[Item] = []
            for item in self._pending[: self._max_batch]:
                _, future, deadline = item
                if future.done():  # its request is gone (cancelled): do not write it
                    continue
                if deadline <= now:
                    future.set_exception(_late())
                    continue
                batch.append(item)
            del self._pending[: self._max_batch]
            if batch:
                self._in_flight += 1
                task = asyncio.get_running_loop().create_task(self._commit(batch))
                self._commits.add(task)
                task.add_done_callback(self._commits.discard)
        if not self._pending and not self._in_flight:
            self._drained.set()

    async def _commit(self, batch: list[Item]) -> None:
        rows = [row for row, _, _ in batch]
        try:
            # A commit that hangs (a stalled server) fails its group rather than hold the connection.
            async with asyncio.timeout_at(batch[0][2]):
                ids = await self._committer.insert(rows)
        except TimeoutError:
            log.warning("receiver.group_commit_timed_out", packets=len(rows))
            # It may still have committed; the senders' retries then store second copies, which is
            # the safe side of at-least-once: an answer other than 2xx never hides a loss.
            self._fail(batch, _late())
        except Exception as exc:  # any database failure: nobody in this group is acknowledged
            log.warning("receiver.group_commit_failed", packets=len(rows), error=type(exc).__name__)
            self._fail(batch, Unavailable("the database is unavailable; retry later", retry_after=1))
        else:
            for (_, future, _), packet_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(packet_id)
            if self._on_commit is not None:
                self._on_commit(len(rows))
        finally:
            self._in_flight -= 1
            self._flush()

    @staticmethod
    def _fail(batch: list[Item], error: Unavailable) -> None:
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(error)


def _late() -> Unavailable:
    return Unavailable("the database did not confirm the write in time", retry_after=1)
